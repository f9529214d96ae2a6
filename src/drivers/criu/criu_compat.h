// How relive's container commands run CRIU 4.1.1 on current kernels: through a small wrapper
// script that preloads librelive_criu_sockopt_shim.so (criu_sockopt_shim.c explains the CRIU
// bug it works around). The CRIU driver runs whatever executable it is given, so the wrapper
// goes in as CriuRunOptions::criu.
#pragma once

#include <string>

#include "relive/result.h"

namespace relive::criu {

// The shim library: $RELIVE_CRIU_SHIM, else lib/relive/ beside the running executable's bin/
// (where `cmake --install` puts it, and where the build tree has it). Empty when there is none;
// InvalidArgument when it is there but could have been written by someone other than root
// (trusted_path.h): it is never loaded then.
Result<std::string> find_sockopt_shim();

// Writes `dir`/criu-wrapper (mode 0700) that execs `criu` with the shim preloaded and returns
// its path (the error of find_sockopt_shim() when the shim is not trusted); returns `criu`
// itself when no shim is found (CRIU then fails on inet sockets with
// its own error message). With `netns` (a path such as /run/netns/NAME), the wrapper runs CRIU
// in that network namespace, so that a workload living there is dumped and restored as part of
// it rather than with a namespace of its own.
Result<std::string> criu_with_compat(const std::string& dir, const std::string& criu,
                                     const std::string& netns = "");

}  // namespace relive::criu
