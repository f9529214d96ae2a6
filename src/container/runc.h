// The runc command line as relive's container commands drive it: state, pause/resume,
// checkpoint and restore (runc runs CRIU itself and handles what is specific to an OCI
// container: its cgroups, its mounts, an external network namespace given by path, the stdio
// pipes it was started with). Every failure quotes runc's own message and CRIU's error lines.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "drivers/criu/criu_process.h"
#include "relive/result.h"

namespace relive::container {

// What `runc state NAME` says about a container.
struct RuncState {
  std::string id;
  pid_t pid = 0;       // its init, in the caller's PID namespace
  std::string status;  // "running", "paused", "created", "stopped"
  std::string bundle;
  std::string rootfs;
  std::string created;  // RFC 3339, as runc prints it
};

class Runc {
 public:
  // $RELIVE_RUNC when set, else the first runc in /usr/sbin, /usr/bin, /usr/local/sbin,
  // /usr/local/bin. NotFound when there is none. `timeout` bounds every runc command.
  // `root`, when set, is runc's --root (its state directory; runc's default is /run/runc).
  static Result<Runc> find(std::chrono::seconds timeout = std::chrono::seconds(300),
                           std::string root = "");

  const std::string& path() const { return path_; }
  // The first line of `runc --version`.
  Result<std::string> version() const;
  // NotFound (with runc's message) when no such container exists.
  Result<RuncState> state(const std::string& name) const;
  Status pause(const std::string& name) const;
  Status resume(const std::string& name) const;
  // `runc kill --all NAME SIGNAL`: every process of the container.
  Status signal_all(const std::string& name, const std::string& signal) const;
  // SIGKILL to every process of the container, then `runc delete --force`.
  Status destroy(const std::string& name) const;

  struct CriuArgs {
    std::string criu;    // the CRIU executable runc is to run (--criu)
    std::string images;  // --image-path
    std::string work;    // --work-path: CRIU's log and stats go there
    bool tcp_established = false;
    // A CRIU configuration file for this command only (CRIU_CONFIG_FILE, which CRIU reads in
    // runc's RPC mode too): options runc has no flag for, e.g. leave-stopped or TLS.
    std::string config_file;
  };
  // `runc checkpoint`; the container is killed and deleted afterwards unless leave_running.
  Status checkpoint(const std::string& name, const CriuArgs& args, bool leave_running) const;
  // `runc restore --detach` of `name` from args.images with the bundle `bundle`. runc and the
  // container get /dev/null as stdio (the container must never hold relive's output channel:
  // a later checkpoint could not dump it); runc's messages go to <work>/runc.log.
  Status restore(const std::string& name, const std::string& bundle, const CriuArgs& args) const;
  // `runc restore --lazy-pages`: the memory comes from a `criu lazy-pages` daemon that listens
  // in args.work (start it first, with that work dir).
  Status restore_lazy(const std::string& name, const std::string& bundle,
                      const CriuArgs& args) const;

  // `runc checkpoint --lazy-pages --page-server ADDR:PORT --status-fd` in the background: ready
  // once the images are written and CRIU's page server listens; it exits once the destination
  // has fetched every page. With leave_running runc leaves the container as it was (paused,
  // when it was paused), else it ends it then.
  Result<criu::CriuProcess> start_lazy_checkpoint(const std::string& name, const CriuArgs& args,
                                                  const std::string& page_server,
                                                  bool leave_running) const;

 private:
  Runc(std::string path, std::chrono::seconds timeout, std::string root)
      : path_(std::move(path)), timeout_(timeout), root_(std::move(root)) {}
  // env: "NAME=value" for runc and the CRIU it starts; empty: CRIU_FAULT only.
  Result<std::string> run(const std::vector<std::string>& args, const std::string& what,
                          std::vector<std::string> env = {}) const;
  Status run_restore(const std::string& name, const std::string& bundle, const CriuArgs& args,
                     bool lazy) const;
  // path_ plus --root when set.
  std::vector<std::string> argv0() const;

  std::string path_;
  std::chrono::seconds timeout_;
  std::string root_;
};

// Lines of a CRIU log that report an error (at most the last `max`), joined by newlines; empty
// when the log does not exist.
std::string criu_error_lines(const std::string& log_path, size_t max = 6);

}  // namespace relive::container
