#include "agent/migration_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <system_error>
#include <thread>

#include "common/logging.h"
#include "transfer/link.h"

namespace relive::agent {

MigrationServer::MigrationServer(security::Listener* listener, security::RequestGate* gate,
                                 MigrationServerOptions options, std::FILE* out, Say say)
    : listener_(listener),
      gate_(gate),
      o_(std::move(options)),
      arrivals_(o_.max_concurrent, o_.once),
      lines_(out),
      say_(std::move(say)) {
  if (o_.max_pending <= 0) o_.max_pending = 4 * std::max(o_.max_concurrent, 1) + 16;
  if (o_.max_pending_per_address <= 0)
    o_.max_pending_per_address = std::max(o_.max_concurrent, 1) + 4;
}

MigrationServer::~MigrationServer() { reap(/*all=*/true); }

int MigrationServer::pending() const {
  return static_cast<int>(workers_.size()) - arrivals_.in_progress();
}

int MigrationServer::pending_from(const std::string& address) const {
  return static_cast<int>(std::count_if(workers_.begin(), workers_.end(), [&](const Worker& w) {
    return w.address == address && !w.done && !w.admitted;
  }));
}

namespace {

// "IP:PORT" (transport::peer_address, also for IPv6) -> "IP".
std::string address_of(const std::string& peer) {
  size_t colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

}  // namespace

Status MigrationServer::run(const std::atomic<bool>& stop) {
  while (!stop && !arrivals_.exhausted()) {
    reap(/*all=*/false);
    Result<security::PendingConnection> c = listener_->accept_connection(o_.accept_poll);
    if (!c.ok()) {
      if (c.status().message().find("timed out") == std::string::npos) {
        // EMFILE and friends leave the connection pending: the next poll returns at once.
        // Wait a poll period, and say so at most every 5 s.
        auto now = std::chrono::steady_clock::now();
        if (now - last_accept_error_ >= std::chrono::seconds(5)) {
          say_("accepting a connection: " + c.status().to_string());
          last_accept_error_ = now;
        }
        std::this_thread::sleep_for(o_.accept_poll);
      }
      continue;
    }
    if (pending() >= o_.max_pending) {
      say_(
          fmt::format("refused a connection from {}: {} connections are already waiting to "
                      "authenticate or begin",
                      c->peer, pending()));
      continue;  // closed as `c` goes
    }
    if (int n = pending_from(address_of(c->peer)); n >= o_.max_pending_per_address) {
      say_(
          fmt::format("refused a connection from {}: {} connections from that address are "
                      "already waiting to authenticate or begin",
                      c->peer, n));
      continue;
    }
    start_worker(std::move(*c));
  }
  if (stop) drain();
  reap(/*all=*/true);
  return Status::Ok();
}

void MigrationServer::drain() {
  reap(/*all=*/false);
  if (workers_.empty()) return;
  say_(fmt::format("stopping: waiting up to {} s for {} connection(s) to end",
                   std::chrono::duration_cast<std::chrono::seconds>(o_.drain_timeout).count(),
                   workers_.size()));
  auto deadline = std::chrono::steady_clock::now() + o_.drain_timeout;
  while (!workers_.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    reap(/*all=*/false);
  }
  if (workers_.empty()) return;
  say_(fmt::format("stopping: cutting the link of {} connection(s) still running after {} s",
                   workers_.size(),
                   std::chrono::duration_cast<std::chrono::seconds>(o_.drain_timeout).count()));
  for (Worker& w : workers_) {
    if (w.cut.valid()) (void)::shutdown(w.cut.get(), SHUT_RDWR);
  }
}

// Stop signals are not blocked here: the kernel hands a process-directed signal to the main
// thread (the accept loop) when it does not block it, and workers' children (QEMU, CRIU) would
// inherit a blocked mask.
void MigrationServer::start_worker(security::PendingConnection c) {
  Worker& w = workers_.emplace_back();
  std::string peer = c.peer;
  w.address = address_of(peer);
  // Without it a stop could not cut this link; the migration is served all the same.
  w.cut = ScopedFd(::fcntl(c.fd.get(), F_DUPFD_CLOEXEC, 0));
  try {
    w.thread = std::thread([this, &w, c = std::move(c)]() mutable {
      // Nothing a migration throws may take the daemon (and every other migration) down.
      try {
        serve_connection(std::move(c), &w.admitted);
      } catch (const std::exception& e) {
        say_(std::string("a migration's worker failed: ") + e.what());
      } catch (...) {
        say_("a migration's worker failed: unknown exception");
      }
      w.done = true;
    });
  } catch (const std::system_error& e) {  // no thread: the connection closes unserved
    workers_.pop_back();
    say_("refused a connection from " + peer + ": cannot start a worker: " + e.what());
  }
}

void MigrationServer::reap(bool all) {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (all || it->done) {
      if (it->thread.joinable()) it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

// One connection, start to end, on its own thread.
void MigrationServer::serve_connection(security::PendingConnection c, std::atomic<bool>* admitted) {
  // Every line logged about this connection, on this thread, carries its id.
  std::string id = fmt::format("m{}-{}", ::getpid(), ++connections_);
  ScopedLogContext log_context("migration", id);
  std::string address = c.peer;
  Result<std::unique_ptr<security::Channel>> ch = listener_->handshake(std::move(c));
  if (!ch.ok()) {
    say_("refused a connection from " + address + ": " + ch.status().to_string());
    return;
  }
  std::string peer = (*ch)->peer().address + " " + (*ch)->peer().subject;
  say_("connection from " + peer);
  transfer::Link link(std::move(*ch));
  migrate::DestinationOptions d = o_.destination;  // this migration's own
  d.admit = [this, admitted](const std::string& name) {
    Result<std::unique_ptr<migrate::ArrivalClaim>> claim = arrivals_.admit(name);
    if (claim.ok()) *admitted = true;
    return claim;
  };
  Result<migrate::DestinationOutcome> r = migrate::serve_migration(&link, gate_, d);
  if (!r.ok()) {
    say_("migration from " + peer + " failed: " + r.status().to_string());
    return;
  }
  say_(fmt::format("migrated {} ({}): pid {}, restore {:.0f} ms", r->name, r->strategy, r->root_pid,
                   r->restore_ms));
  lines_.write(migrated_line(*r, id));
}

}  // namespace relive::agent
