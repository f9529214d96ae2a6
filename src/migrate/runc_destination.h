// runc containers, the destination's half: turns the received bundle entries into a bundle of
// this host, restores the container with `runc restore --detach` under its own name, stopped
// (CRIU's leave-stopped, given through CRIU_CONFIG_FILE), and lets it run only on commit. Until
// then, undo() kills and deletes it and removes the bundle.
//
// The bundle is <bundles>/<name>: config.json is the source's with three rewrites (the root is
// the bundle's rootfs/; a network namespace given by path becomes this host's, `netns`; a plain
// cgroupsPath becomes /relive/<node>/<name>, so that a container of the same name elsewhere
// on this machine never shares its cgroups); rootfs/ is the whole root file system the source
// sent.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>

#include "container/runc.h"
#include "relive/result.h"

namespace relive::migrate {

struct RuncDestinationOptions {
  std::string runc_root;  // runc --root; empty: runc's default
  std::string bundles;    // parent of the bundles
  std::string netns;      // replaces a netns path in config.json; empty: relived's own netns
  std::string node_name;
  std::chrono::seconds timeout{300};
};

class RuncIncoming {
 public:
  // Fails when runc is missing or a container `name` exists here already.
  static Result<RuncIncoming> create(const std::string& name, const RuncDestinationOptions& o);
  RuncIncoming(RuncIncoming&& o) noexcept
      : runc_(std::move(o.runc_)),
        name_(std::exchange(o.name_, {})),
        o_(std::move(o.o_)),
        bundle_(std::move(o.bundle_)),
        restored_(o.restored_),
        committed_(o.committed_),
        pid_(o.pid_) {}
  RuncIncoming& operator=(RuncIncoming&&) = delete;
  ~RuncIncoming() { undo(); }

  // `fs_dir` holds the bundle entries, `images` runc's images; `work` is for CRIU's logs (with
  // lazy_pages, the lazy-pages daemon's work dir, where its socket is); `criu` is the CRIU
  // runc is to run (drivers/criu/criu_compat.h). Restores stopped.
  Status restore(const std::string& fs_dir, const std::string& images, const std::string& work,
                 const std::string& criu, bool tcp_established, bool lazy_pages);
  // Lets the restored container run and checks that it does (tracee/resume_check.h); from
  // here it is this host's. On failure its processes have been killed (undo() removes it).
  Status commit();
  // The restored container's init, in this PID namespace.
  pid_t pid() const { return pid_; }
  const std::string& bundle() const { return bundle_; }

 private:
  RuncIncoming(container::Runc runc, std::string name, const RuncDestinationOptions& o)
      : runc_(std::move(runc)), name_(std::move(name)), o_(o) {}
  Status write_config(const std::string& fs_dir);
  void undo();

  container::Runc runc_;
  std::string name_;
  RuncDestinationOptions o_;
  std::string bundle_;
  bool restored_ = false;  // runc may have made the container (even half)
  bool committed_ = false;
  pid_t pid_ = 0;
};

}  // namespace relive::migrate
