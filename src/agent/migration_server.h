// MigrationServer: relived's serving loop. One thread accepts TCP connections and does nothing
// else; each connection gets a worker thread of its own that authenticates it (the TLS
// handshake, bounded by the I/O timeout) and serves its migration with its own copy of the
// destination options and its own work dirs. Arrivals (agent/arrivals.h) admits at most
// max_concurrent migrations at once and refuses the next with an error the source prints. A
// peer that stalls (connects and sends nothing, or half a frame) holds one worker for at most
// the I/O timeout and no slot: slots are claimed only once a migration names its workload.
//
// What concurrent migrations share, checked for collisions: the RequestGate, ReplayGuard and
// AuditLog (each locks); stdout (LineWriter); work dirs, VM dirs (mkdtemp) and CRIU's compat
// wrapper (inside the work dir); QEMU's incoming port (QEMU picks one, tcp:0.0.0.0:0); post-copy
// page servers (the source's port); runc bundles and container ids and VM names (the workload's
// name, which Arrivals keeps unique). Not guarded: two migrations bringing the same service
// address under different names both pass the "address in use" check; the second fails when it
// adds the address. relived's signal handler only sets the stop flag; nothing in the destination
// path changes the working directory or the environment of the process.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/arrivals.h"
#include "agent/migrated_line.h"
#include "common/scoped_fd.h"
#include "migrate/destination.h"
#include "relive/status.h"
#include "security/listener.h"
#include "security/request_gate.h"

namespace relive::agent {

struct MigrationServerOptions {
  // Copied into each worker; its `admit` is the server's own.
  migrate::DestinationOptions destination;
  int max_concurrent = 4;
  // Admit this many migrations, let them end, then return from run() (0: serve until stopped).
  int once = 0;
  // Connections accepted but not yet holding a slot (in their handshake or before their
  // migrate.begin): beyond this many, a new connection is closed at once. 0: 4 * max_concurrent
  // + 16.
  int max_pending = 0;
  // Of those, from one address (the peer's IP): beyond this many, a new connection from there is
  // closed at once, so that one host that connects and stalls cannot fill max_pending and lock
  // every other source out. 0: max_concurrent + 4.
  int max_pending_per_address = 0;
  // How long the accept loop waits for a connection before it looks at the stop flag again.
  std::chrono::milliseconds accept_poll{250};
  // Once stopped, how long the running migrations get to end by themselves. Then their links are
  // cut: each ends as a migration whose link was cut does (the destination removes what it
  // made, the source resumes its workload). Below the unit's TimeoutStopSec (180 s), so that
  // relived cleans up rather than being killed half-way.
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(120)};
};

class MigrationServer {
 public:
  using Say = std::function<void(const std::string&)>;  // one line for the operator (stderr)

  // `listener`, `gate` and `out` must outlive the server; `say` is called from any thread.
  MigrationServer(security::Listener* listener, security::RequestGate* gate,
                  MigrationServerOptions options, std::FILE* out, Say say);
  // Waits for every worker.
  ~MigrationServer();
  MigrationServer(const MigrationServer&) = delete;
  MigrationServer& operator=(const MigrationServer&) = delete;

  // Accepts until `stop` becomes true or `once` migrations were admitted, then waits for the
  // running migrations to end (a worker still in its handshake or hello ends within the I/O
  // timeout); after a stop, for at most drain_timeout before it cuts their links. Each
  // successful migration prints its migrated_line() on `out`.
  Status run(const std::atomic<bool>& stop);

  int in_progress() const { return arrivals_.in_progress(); }

 private:
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
    // A second descriptor of the connection's socket, owned here (closed only when the worker
    // is reaped): shutdown(2) on it cuts the link from the accept thread while the worker owns
    // and may close its own.
    ScopedFd cut;
    std::string address;  // the peer's IP
    // Set by the worker once its migration holds a slot (it no longer counts as pending).
    std::atomic<bool> admitted{false};
  };
  void serve_connection(security::PendingConnection connection, std::atomic<bool>* admitted);
  void start_worker(security::PendingConnection connection);
  // Joins the workers that have ended (all of them when `all`).
  void reap(bool all);
  // After a stop: waits up to drain_timeout for the workers, then cuts the links of those left.
  void drain();
  int pending() const;
  // Workers from `address` still in their handshake or before their migrate.begin.
  int pending_from(const std::string& address) const;

  security::Listener* listener_;
  security::RequestGate* gate_;
  MigrationServerOptions o_;
  Arrivals arrivals_;
  LineWriter lines_;
  Say say_;
  std::list<Worker> workers_;             // touched by the accept thread only
  std::atomic<uint64_t> connections_{0};  // numbers the migration ids in the logs
  std::chrono::steady_clock::time_point last_accept_error_{};  // accept thread only
};

}  // namespace relive::agent
