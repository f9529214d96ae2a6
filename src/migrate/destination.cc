#include "migrate/destination.h"

#include <signal.h>

#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/logging.h"
#include "container/criu_compat.h"
#include "container/pid_namespace.h"
#include "container/work_dir.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_process.h"
#include "migrate/criu_tls.h"
#include "migrate/file_transfer.h"
#include "migrate/page_cache.h"
#include "migrate/process_tree.h"
#include "migrate/service_address.h"

namespace relive::migrate {
namespace {

using Clock = std::chrono::steady_clock;
namespace m = relive::migration;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::string peer_ip(const std::string& address) {
  size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

// Everything one incoming migration holds; whatever was not committed is undone on exit.
class Session {
 public:
  Session(Link* link, security::RequestGate* gate, const DestinationOptions& o)
      : link_(link), gate_(gate), o_(o) {}
  ~Session() { undo(); }

  Result<DestinationOutcome> run();

 private:
  Status begin(const m::Begin& b);
  Status restore(const m::Restore& r);
  Status restore_tree(const m::Restore& r);
  Status commit();
  Status dispatch(const m::Command& c, bool* done);
  void undo();

  Link* link_;
  security::RequestGate* gate_;
  const DestinationOptions& o_;
  m::Begin begin_;
  std::optional<container::WorkDir> work_;
  std::optional<ServiceAddress> svc_;
  std::string svc_dev_;
  bool address_added_ = false;
  std::optional<criu::CriuProcess> lazy_;
  std::optional<PageCache> cache_;
  container::NamespaceRestore ns_{};
  bool committed_ = false;
  DestinationOutcome outcome_;
};

void Session::undo() {
  if (committed_) return;
  if (ns_.init_pid > 0) ::kill(ns_.init_pid, SIGKILL);  // the namespace and the tree in it
  if (lazy_) lazy_->kill();
  if (address_added_) (void)remove_address(*svc_, svc_dev_);
  if (work_) {
    // The logs explain the failure to the operator; the images and pages are not needed.
    (void)remove_tree(work_->path() + "/images");
    (void)remove_tree(work_->path() + "/pages");
    work_->keep();
  }
}

Status Session::begin(const m::Begin& b) {
  begin_ = b;
  if (b.kind == m::WorkloadKind::kRunc)
    return Status::Unsupported("runc containers are migrated with `relive container migrate NAME`"
                               " against a destination that supports them (not this one)");
  if (b.strategy == m::Strategy::kCrtr)
    return Status::Unsupported("this destination does not serve CR/TR migrations yet");
  if (!b.service_address.empty()) {
    RELIVE_ASSIGN_OR_RETURN(ServiceAddress a, parse_service_address(b.service_address));
    if (address_present(a))
      return Status::InvalidArgument("service address " + a.text + " is already in use here");
    RELIVE_ASSIGN_OR_RETURN(svc_dev_, interface_for(a));
    svc_ = a;
  }
  RELIVE_ASSIGN_OR_RETURN(container::WorkDir w, container::WorkDir::create(o_.work_root, "incoming"));
  work_.emplace(std::move(w));
  RELIVE_RETURN_IF_ERROR(make_dirs(work_->path() + "/images"));
  outcome_.name = b.name;
  outcome_.strategy = m::strategy_name(b.strategy);
  return Status::Ok();
}

Status Session::restore_tree(const m::Restore& r) {
  std::string images = work_->path() + "/images";
  RELIVE_ASSIGN_OR_RETURN(std::string criu, criu::find_criu());
  RELIVE_ASSIGN_OR_RETURN(std::string runner, container::criu_with_compat(work_->path(), criu));
  criu::RestoreOptions ro;
  ro.run.criu = runner;
  ro.run.timeout = o_.criu_timeout;
  ro.images_dir = images;
  ro.tcp_established = begin_.tcp_established;
  ro.leave_stopped = true;  // runs only once the source commits
  ro.log_file = work_->path() + "/restore.log";
  ro.pidfile = work_->path() + "/restore.pid";
  if (r.pages_from_cache) {
    if (!cache_) return Status::Corruption("pre-copy restore without any pre-copied pages");
    RELIVE_RETURN_IF_ERROR(cache_->rebuild_pages_images(images));
  }
  if (r.lazy_pages_port != 0) {
    criu::LazyPagesOptions lo;
    lo.images_dir = images;
    lo.address = r.lazy_pages_address.empty() ? peer_ip(link_->channel().peer().address)
                                              : r.lazy_pages_address;
    lo.port = r.lazy_pages_port;
    lo.tls_args = criu_tls_args(o_.tls_dir, o_.node_name, o_.insecure);
    lo.run.criu = runner;
    RELIVE_ASSIGN_OR_RETURN(criu::CriuProcess p, criu::start_lazy_pages(lo));
    lazy_.emplace(std::move(p));
    RELIVE_RETURN_IF_ERROR(lazy_->wait_ready(std::chrono::seconds(30)));
    ro.extra_args.push_back("--lazy-pages");
  }
  RELIVE_ASSIGN_OR_RETURN(ns_, container::restore_in_new_pid_namespace(ro));
  return Status::Ok();
}

Status Session::restore(const m::Restore& r) {
  auto start = Clock::now();
  if (svc_) {
    RELIVE_RETURN_IF_ERROR(add_address(*svc_, svc_dev_));
    address_added_ = true;
  }
  RELIVE_RETURN_IF_ERROR(restore_tree(r));
  outcome_.restore_ms = ms_since(start);
  outcome_.root_pid = ns_.root_pid;
  outcome_.init_pid = ns_.init_pid;
  return Status::Ok();
}

Status Session::commit() {
  if (ns_.init_pid <= 0) return Status::InvalidArgument("commit before restore");
  committed_ = true;
  signal_all(namespace_members(ns_.init_pid), SIGCONT);
  if (svc_) {
    Status s = announce(*svc_, svc_dev_);
    if (!s.ok()) RELIVE_LOG_WARN("gratuitous ARP for {}: {}", svc_->text, s.to_string());
  }
  return Status::Ok();
}

Status Session::dispatch(const m::Command& c, bool* done) {
  if (const auto* f = std::get_if<m::FileBatch>(&c)) {
    if (f->dir != "images") return Status::InvalidArgument("unknown file batch " + f->dir);
    return receive_files(&link_->channel(), *f, work_->path() + "/images");
  }
  if (const auto* p = std::get_if<m::PageRound>(&c)) {
    if (!cache_) {
      RELIVE_ASSIGN_OR_RETURN(PageCache pc, PageCache::create(work_->path() + "/pages"));
      cache_.emplace(std::move(pc));
    }
    return cache_->receive(&link_->channel(), *p);
  }
  if (const auto* r = std::get_if<m::Restore>(&c)) return restore(*r);
  if (std::holds_alternative<m::Commit>(c)) {
    *done = true;
    return commit();
  }
  if (const auto* a = std::get_if<m::Abort>(&c)) {
    return Status::Aborted("source aborted the migration: " + a->reason);
  }
  return Status::Corruption(std::string("unexpected command ") + m::command_name(c));
}

Result<DestinationOutcome> Session::run() {
  RELIVE_RETURN_IF_ERROR(link_->accept_hello(gate_, o_.node_name));
  RELIVE_ASSIGN_OR_RETURN(m::Command first, link_->next_command(gate_));
  const auto* b = std::get_if<m::Begin>(&first);
  if (b == nullptr) {
    Status s = Status::Corruption(std::string("expected migrate.begin, got ") +
                                  m::command_name(first));
    (void)link_->fail(s);
    return s;
  }
  Status began = begin(*b);
  if (!began.ok()) {
    (void)link_->fail(began);
    return began;
  }
  RELIVE_RETURN_IF_ERROR(link_->ack());
  for (bool done = false; !done;) {
    RELIVE_ASSIGN_OR_RETURN(m::Command c, link_->next_command(gate_));
    Status s = dispatch(c, &done);
    if (!s.ok()) {
      (void)link_->fail(s);
      return s;
    }
    nlohmann::json detail = {{"root_pid", outcome_.root_pid}, {"restore_ms", outcome_.restore_ms}};
    RELIVE_RETURN_IF_ERROR(link_->ack(detail.dump()));
  }
  if (lazy_) {
    // Post-copy: the tree runs; the daemon finishes copying its memory in the background.
    Status s = lazy_->wait(std::chrono::minutes(30));
    if (!s.ok()) RELIVE_LOG_WARN("post-copy page transfer: {}", s.to_string());
  }
  work_->keep();  // CRIU logs, for the operator; images are no longer needed
  return outcome_;
}

}  // namespace

Result<DestinationOutcome> serve_migration(Link* link, security::RequestGate* gate,
                                           const DestinationOptions& options) {
  Session s(link, gate, options);
  return s.run();
}

}  // namespace relive::migrate
