#include "drivers/criu/criu_compat.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "common/file_util.h"
#include "common/shell_quote.h"
#include "common/trusted_path.h"

namespace relive::criu {
namespace {

constexpr const char* kShimName = "librelive_criu_sockopt_shim.so";
// Relative to the directory above the executable's (bin/ installed, bin/ or tests/ built).
constexpr const char* kShimDir = "lib/relive";

}  // namespace

Result<std::string> find_sockopt_shim() {
  std::string candidate;
  std::error_code ec;
  if (const char* forced = std::getenv("RELIVE_CRIU_SHIM"); forced != nullptr) {
    candidate = forced;
  } else {
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return std::string();
    candidate = (exe.parent_path().parent_path() / kShimDir / kShimName).string();
  }
  if (candidate.empty() || !std::filesystem::exists(candidate, ec)) return std::string();
  // CRIU runs as root with this library loaded into it.
  Result<std::string> trusted = trusted_file(candidate);
  if (!trusted.ok()) {
    return Status::InvalidArgument("refusing to preload the CRIU shim " + candidate + " (" +
                                   trusted.status().message() + ")");
  }
  return trusted;
}

Result<std::string> criu_with_compat(const std::string& dir, const std::string& criu,
                                     const std::string& netns) {
  RELIVE_ASSIGN_OR_RETURN(std::string shim, find_sockopt_shim());
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

}  // namespace relive::criu
