#include "drivers/criu/kdat_cache.h"

#include <linux/magic.h>
#include <stdio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <chrono>

#include "common/private_tmpfs.h"
#include "common/subprocess.h"

namespace relive::criu {
namespace {
constexpr const char* kCache = "/run/criu.kdat";
constexpr std::chrono::milliseconds kTimeout{30000};

// `criu check` in a private mount namespace whose /run is a fresh tmpfs (common/subprocess), and
// the cache it wrote there. No shell: nothing is parsed from `criu`.
Result<std::string> kdat_in_private_run(const std::string& criu) {
  RELIVE_ASSIGN_OR_RETURN(PrivateTmpfs run_dir, PrivateTmpfs::create("relive-kdat"));
  RunOptions o;
  o.timeout = kTimeout;
  o.discard_output = true;
  o.mounts = {{run_dir.fd(), "/run"}};
  RELIVE_ASSIGN_OR_RETURN(RunResult r, run({criu, "check"}, o));
  if (r.timed_out) return Status::IoError("criu check timed out");
  return run_dir.read("criu.kdat");  // whatever `criu check` said, as before
}

}  // namespace

KdatCache KdatCache::prime(const std::string& criu) {
  struct statfs s {};
  if (::statfs("/run", &s) == 0 && s.f_type == TMPFS_MAGIC) {
    return KdatCache(false, "/run is a tmpfs: CRIU keeps its own cache");
  }
  std::string tmp = std::string(kCache) + ".relive";
  Result<std::string> r = kdat_in_private_run(criu);
  if (!r.ok() || r->empty()) {
    return KdatCache(false, "could not make CRIU's kernel-feature cache");
  }
  FILE* f = ::fopen(tmp.c_str(), "we");
  bool written = f != nullptr && ::fwrite(r->data(), 1, r->size(), f) == r->size();
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
