// Whether a file may be trusted to run as root: a library relive preloads into CRIU, for one.
// Trusted means nobody but root (or this process's own user) could have written it or could
// replace it: the file is a regular file owned by root or us and not writable by group or
// others, and so is every directory above it, except that a directory with the sticky bit (such
// as /tmp) may be writable by others, since they cannot rename or remove what they do not own.
#pragma once

#include <string>

#include "relive/result.h"

namespace relive {

// The canonical path of `path` (symbolic links resolved, so that what is checked is what gets
// loaded) when it is trusted; otherwise InvalidArgument saying which file or directory is
// writable by whom, or NotFound.
Result<std::string> trusted_file(const std::string& path);

}  // namespace relive
