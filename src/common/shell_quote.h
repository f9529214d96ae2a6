// Quoting for the only shell text relive writes: the scripts CRIU must be given as files (its
// compatibility wrapper, HA action scripts), and argv shown to a person (trace dumps). Nothing
// relive runs is ever assembled from config, peer or user input by string: argv lists only.
#pragma once

#include <string>
#include <string_view>

namespace relive {

// `s` as one word for POSIX /bin/sh, in single quotes ('it'\''s'); any bytes but NUL.
std::string shell_quote(std::string_view s);

}  // namespace relive
