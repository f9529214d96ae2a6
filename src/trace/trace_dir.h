// The layout of a trace directory (described in schemas/trace.capnp): where each part lives.
#pragma once

#include <string>

namespace relive::trace {

inline std::string header_path(const std::string& dir) { return dir + "/header"; }
inline std::string events_path(const std::string& dir) { return dir + "/events"; }
inline std::string files_dir(const std::string& dir) { return dir + "/files"; }
inline std::string checkpoint_dir(const std::string& dir) { return dir + "/checkpoint"; }

}  // namespace relive::trace
