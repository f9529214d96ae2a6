#include "container/criu_compat.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "common/file_util.h"

namespace relive::container {
namespace {

constexpr const char* kShimName = "librelive_criu_sockopt_shim.so";

bool is_file(const std::string& path) {
  std::error_code ec;
  return !path.empty() && std::filesystem::is_regular_file(path, ec);
}

// Single quotes for /bin/sh: 'it'\''s'.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string find_sockopt_shim() {
  if (const char* forced = std::getenv("RELIVE_CRIU_SHIM"); forced != nullptr) {
    return is_file(forced) ? forced : "";
  }
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::string beside = (exe.parent_path().parent_path() / "lib" / kShimName).string();
    if (is_file(beside)) return beside;
  }
  std::string built = std::string(RELIVE_BUILD_LIB_DIR) + "/" + kShimName;
  return is_file(built) ? built : "";
}

Result<std::string> criu_with_compat(const std::string& dir, const std::string& criu,
                                     const std::string& netns) {
  std::string shim = find_sockopt_shim();
  if (shim.empty() && netns.empty()) return criu;
  std::string path = dir + "/criu-wrapper";
  std::string script = "#!/bin/sh\n";
  if (!shim.empty()) {
    script +=
        "LD_PRELOAD=" + shell_quote(shim) + "${LD_PRELOAD:+:$LD_PRELOAD}\nexport LD_PRELOAD\n";
  }
  script += "exec ";
  if (!netns.empty()) script += "/usr/bin/nsenter --net=" + shell_quote(netns) + " ";
  script += shell_quote(criu) + " \"$@\"\n";
  RELIVE_RETURN_IF_ERROR(write_file_atomic(path, script));
  if (::chmod(path.c_str(), 0700) != 0) return PosixError("chmod " + path, errno);
  return path;
}

}  // namespace relive::container
