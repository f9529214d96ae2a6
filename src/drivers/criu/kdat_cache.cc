#include "drivers/criu/kdat_cache.h"

#include <linux/magic.h>
#include <stdio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "drivers/criu/command.h"

namespace relive::criu {
namespace {
constexpr const char* kCache = "/run/criu.kdat";
}  // namespace

KdatCache KdatCache::prime(const std::string& criu) {
  struct statfs s {};
  if (::statfs("/run", &s) == 0 && s.f_type == TMPFS_MAGIC) {
    return KdatCache(false, "/run is a tmpfs: CRIU keeps its own cache");
  }
  std::string tmp = std::string(kCache) + ".relive";
  Result<CommandResult> r = run_command(
      {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
       "exec 2>/dev/null; mount -t tmpfs relive-kdat /run && \"$0\" check >/dev/null 2>&1; "
       "test -s /run/criu.kdat && cat /run/criu.kdat",
       criu},
      {{}, std::chrono::seconds(30)});
  if (!r.ok() || !r->ok() || r->output.empty()) {
    return KdatCache(false, "could not make CRIU's kernel-feature cache");
  }
  FILE* f = ::fopen(tmp.c_str(), "we");
  bool written =
      f != nullptr && ::fwrite(r->output.data(), 1, r->output.size(), f) == r->output.size();
  if (f != nullptr) written = (::fclose(f) == 0) && written;
  if (!written || ::rename(tmp.c_str(), kCache) != 0) {
    ::unlink(tmp.c_str());
    return KdatCache(false, "could not install CRIU's kernel-feature cache");
  }
  return KdatCache(true, "installed CRIU's kernel-feature cache in /run (not a tmpfs here)");
}

KdatCache::~KdatCache() {
  if (installed_) ::unlink(kCache);
}

}  // namespace relive::criu
