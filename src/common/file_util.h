// Whole-file helpers with Status errors. Paths are plain strings; callers own directories.
#pragma once

#include <string>
#include <string_view>

#include "relive/result.h"

namespace relive {

Result<std::string> read_file(const std::string& path);
// Writes `data` to `path` through a temporary file and rename, so readers never see half a file.
Status write_file_atomic(const std::string& path, std::string_view data);
// Writes all of `data` to `fd`, retrying short writes and EINTR.
Status write_all(int fd, std::string_view data);
// Reads exactly `len` bytes from `fd`; Corruption on a short read (end of file).
Status read_exact(int fd, void* buf, size_t len);
Status make_dirs(const std::string& path);
Status remove_tree(const std::string& path);

}  // namespace relive
