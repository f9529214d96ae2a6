#include "migrate/destination.h"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/process_tree.h"
#include "common/work_dir.h"
#include "container/pid_namespace.h"
#include "dirty/page_reader.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"
#include "drivers/criu/criu_process.h"
#include "drivers/criu/page_image.h"
#include "drivers/criu/page_server.h"
#include "migrate/criu_tls.h"
#include "migrate/crtr_replay.h"
#include "migrate/destination_phase.h"
#include "migrate/image_dir.h"
#include "migrate/runc_destination.h"
#include "migrate/vm_destination.h"
#include "migrate/vm_log_destination.h"
#include "net/service_address.h"
#include "tracee/resume_check.h"
#include "transfer/bulk.h"
#include "transfer/file_transfer.h"
#include "transfer/page_cache.h"
#include "transfer/page_hashes.h"

namespace relive::migrate {
namespace {

using Clock = std::chrono::steady_clock;
namespace m = relive::migration;

// Copies the *.log files under `work` into <log_root>/logs/<work's name>/ (flat:
// images/restore.log becomes images-restore.log) and prunes the oldest such directories beyond
// kKeptMigrationLogs.
constexpr size_t kKeptMigrationLogs = 100;
Status keep_logs(const std::string& work, const std::string& log_root) {
  namespace fs = std::filesystem;
  std::string logs = log_root + "/logs";
  std::string dest = logs + "/" + fs::path(work).filename().string();
  RELIVE_RETURN_IF_ERROR(make_dirs(dest));
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(work, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->path().extension() != ".log") continue;
    std::string rel = fs::relative(it->path(), work, ec).string();
    std::replace(rel.begin(), rel.end(), '/', '-');
    fs::copy_file(it->path(), dest + "/" + rel, fs::copy_options::overwrite_existing, ec);
  }
  std::vector<std::pair<fs::file_time_type, fs::path>> kept;
  for (const auto& e : fs::directory_iterator(logs, ec))
    if (e.path().filename().string().starts_with("relive-incoming-"))
      kept.push_back({e.last_write_time(ec), e.path()});
  std::sort(kept.begin(), kept.end());
  for (size_t i = 0; i + kKeptMigrationLogs < kept.size(); ++i) fs::remove_all(kept[i].second, ec);
  return Status::Ok();
}

std::string peer_ip(const std::string& address) {
  size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

// Everything one incoming migration holds; whatever was not committed is undone on exit.
class Session {
 public:
  Session(transfer::Link* link, security::RequestGate* gate, const DestinationOptions& o)
      : link_(link),
        gate_(gate),
        o_(o),
        record_(o.metrics != nullptr ? o.metrics->record() : MigrationMetrics::Record()) {}
  ~Session() { undo(); }

  Result<DestinationOutcome> run();

 private:
  Status begin(const m::Begin& b);
  Status restore(const m::Restore& r);
  Status restore_tree(const m::Restore& r);
  Status restore_runc(const m::Restore& r);
  Result<std::string> lazy_pages_address(const m::Restore& r);
  Status commit();
  Result<m::Reply> dispatch(const m::Command& c, bool* done);
  Result<m::Reply> act(const m::Command& c, bool* done);
  Status receive_trace(const m::FileBatch& f);
  Status receive_log(const m::LogRound& l);
  Result<m::Reply> verify();
  Status read_replayed_pages(uint64_t image_pid, uint64_t vaddr, uint64_t pages, char* out);
  Status start_lazy_pages_from_replay();
  m::Reply default_reply() const;
  void undo();
  void end_work();

  // Declared first, so released last: after the destructor has undone what was not committed.
  std::unique_ptr<ArrivalClaim> claim_;
  transfer::Link* link_;
  security::RequestGate* gate_;
  const DestinationOptions& o_;
  m::Begin begin_;
  std::optional<WorkDir> work_;
  // CRIU (through the compat wrapper), found at begin: finding it runs `criu --version`, tens
  // of milliseconds that would otherwise fall inside the workload's downtime at the restore.
  std::string criu_;
  std::optional<net::ServiceAddress> svc_;
  std::string svc_dev_;
  bool address_added_ = false;
  std::optional<criu::CriuProcess> lazy_;
  std::optional<RuncIncoming> runc_;
  std::optional<transfer::PageCache> cache_;
  std::unique_ptr<CrtrReplay> crtr_;
  // CR/TR: the replayed process's pages hashed while the source dumps (after crtr_: it ends
  // first, and it waits for the replay, which undo() aborts).
  std::future<Result<transfer::PageHashTable>> ahead_;
  pid_t dumped_pid_ = 0;                     // CR/TR: the source's pid in its final dump
  std::vector<criu::VaddrRange> differing_;  // CR/TR: pages the replay did not reproduce
  // CR/TR: feeds the lazy-pages daemon from the replayed process (and cache_ for differing_);
  // declared after both, so it stops before they go.
  std::unique_ptr<criu::LocalPageServer> replay_pages_;
  criu::PageServerLayout page_server_layout_ = criu::PageServerLayout::kCriu42;
  container::NamespaceRestore ns_{};
  bool committed_ = false;
  DestinationPhase phase_{DestinationFlow::kProcess};
  DestinationOutcome outcome_;
  MigrationMetrics::Record record_;
  // The downtime: the source's frozen time when it sent restore, plus ours from its arrival.
  double frozen_before_restore_ms_ = 0;
  Clock::time_point restore_arrived_{};
};

void Session::undo() {
  if (committed_) return;
  if (ns_.init_pid > 0) ::kill(ns_.init_pid, SIGKILL);  // the namespace and the tree in it
  ns_ = {};
  if (lazy_) lazy_->kill();
  replay_pages_.reset();
  if (crtr_) crtr_->abort();
  runc_.reset();  // kills and deletes a restored container, removes its bundle
  if (address_added_) (void)net::remove_address(*svc_, svc_dev_);
  address_added_ = false;
  end_work();  // the logs stay: they explain the failure to the operator
}

// The work dir's images, pages, trace and bundle copies are as large as the workload and live
// in memory (/dev/shm) by default: all of it goes, once CRIU's logs are copied to log_root.
void Session::end_work() {
  if (!work_) return;
  if (!o_.log_root.empty()) {
    Status s = keep_logs(work_->path(), o_.log_root);
    if (!s.ok()) RELIVE_LOG_WARN("keeping the migration's logs: {}", s.to_string());
  }
  work_.reset();
}

Status Session::begin(const m::Begin& b) {
  begin_ = b;
  if (b.kind == m::WorkloadKind::kRunc) {
    if (b.strategy == m::Strategy::kCrtr)
      return Status::Unsupported(
          "runc containers migrate with stop-copy, precopy or postcopy, not crtr");
    RuncDestinationOptions ro{o_.runc_root, o_.runc_bundles, o_.runc_netns, o_.node_name,
                              o_.criu_timeout};
    if (ro.bundles.empty())
      ro.bundles = (o_.work_root.empty() ? std::string("/tmp") : o_.work_root) + "/runc-bundles";
    RELIVE_ASSIGN_OR_RETURN(RuncIncoming in, RuncIncoming::create(b.name, ro));
    runc_.emplace(std::move(in));
  }
  if (!b.service_address.empty()) {
    RELIVE_ASSIGN_OR_RETURN(net::ServiceAddress a, net::parse_service_address(b.service_address));
    if (net::address_present(a))
      return Status::InvalidArgument("service address " + a.text + " is already in use here");
    RELIVE_ASSIGN_OR_RETURN(svc_dev_, net::interface_for(a));
    svc_ = a;
  }
  // What a relived that was killed mid-migration left (as large as the workload, in memory).
  if (int n = WorkDir::remove_abandoned(default_image_root(o_.work_root), "incoming"); n > 0)
    RELIVE_LOG_INFO("removed {} work directories left by migrations that did not end", n);
  RELIVE_ASSIGN_OR_RETURN(WorkDir w, WorkDir::create(default_image_root(o_.work_root), "incoming"));
  work_.emplace(std::move(w));
  RELIVE_ASSIGN_OR_RETURN(std::string criu, criu::find_criu());
  RELIVE_ASSIGN_OR_RETURN(criu_, criu::criu_with_compat(work_->path(), criu));
  RELIVE_RETURN_IF_ERROR(make_dirs(work_->path() + "/images"));
  RELIVE_RETURN_IF_ERROR(make_dirs(work_->path() + "/trace"));
  RELIVE_RETURN_IF_ERROR(make_dirs(work_->path() + "/bundle"));
  outcome_.name = b.name;
  outcome_.strategy = m::strategy_name(b.strategy);
  return Status::Ok();
}

Status Session::restore_tree(const m::Restore& r) {
  std::string images = work_->path() + "/images";
  criu::RestoreOptions ro;
  ro.run.criu = criu_;
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
  if (r.lazy_pages_port != 0 && crtr_) {
    crtr_->abort();                     // the source switched from CR/TR to post-copy
    if (ahead_.valid()) ahead_.wait();  // it reads the replay
    ahead_ = {};
    crtr_.reset();
  }
  // Memory already here (every strategy but post-copy) is restored lazily from the local
  // images: the workload runs while its pages stream in from this host's own copy, so the
  // freeze does not grow with the memory size. Post-copy pulls them from the source instead,
  // CR/TR from the replayed process.
  bool local_lazy = r.lazy_pages_port == 0 && o_.lazy_local;
  if (r.pages_from_replay) {
    // The daemon was started by verify(), fed from the replayed process.
    if (!lazy_ || !replay_pages_) return Status::Corruption("restore from a replay never verified");
    ro.extra_args.push_back("--lazy-pages");
  } else if (r.lazy_pages_port != 0 || local_lazy) {
    criu::LazyPagesOptions lo;
    lo.images_dir = images;
    if (r.lazy_pages_port != 0) {
      lo.address = r.lazy_pages_address.empty() ? peer_ip(link_->channel().peer().address)
                                                : r.lazy_pages_address;
      lo.port = r.lazy_pages_port;
      lo.tls_args = criu_tls_args(o_.tls_dir, o_.node_name, o_.insecure);
    }
    lo.run.criu = criu_;
    RELIVE_ASSIGN_OR_RETURN(criu::CriuProcess p, criu::start_lazy_pages(lo));
    lazy_.emplace(std::move(p));
    RELIVE_RETURN_IF_ERROR(lazy_->wait_ready(std::chrono::seconds(30)));
    ro.extra_args.push_back("--lazy-pages");
  }
  RELIVE_ASSIGN_OR_RETURN(ns_, container::restore_in_new_pid_namespace(ro));
  return Status::Ok();
}

Result<std::string> Session::lazy_pages_address(const m::Restore& r) {
  return r.lazy_pages_address.empty() ? peer_ip(link_->channel().peer().address)
                                      : r.lazy_pages_address;
}

// runc restores the container; with post-copy the lazy-pages daemon runs in the images dir,
// which is then also runc's work dir (the restore finds the daemon's socket there).
Status Session::restore_runc(const m::Restore& r) {
  if (r.pages_from_replay) return Status::Unsupported("runc containers do not migrate by CR/TR");
  std::string images = work_->path() + "/images", work = work_->path();
  if (r.pages_from_cache) {
    if (!cache_) return Status::Corruption("pre-copy restore without any pre-copied pages");
    RELIVE_RETURN_IF_ERROR(cache_->rebuild_pages_images(images));
  }
  if (r.lazy_pages_port != 0) {
    criu::LazyPagesOptions lo;
    lo.images_dir = images;
    RELIVE_ASSIGN_OR_RETURN(lo.address, lazy_pages_address(r));
    lo.port = r.lazy_pages_port;
    lo.tls_args = criu_tls_args(o_.tls_dir, o_.node_name, o_.insecure);
    lo.run.criu = criu_;
    RELIVE_ASSIGN_OR_RETURN(criu::CriuProcess p, criu::start_lazy_pages(lo));
    lazy_.emplace(std::move(p));
    RELIVE_RETURN_IF_ERROR(lazy_->wait_ready(std::chrono::seconds(30)));
    work = images;
  }
  RELIVE_RETURN_IF_ERROR(runc_->restore(work_->path() + "/bundle", images, work, criu_,
                                        begin_.tcp_established, r.lazy_pages_port != 0));
  outcome_.root_pid = outcome_.init_pid = runc_->pid();
  outcome_.bundle = runc_->bundle();
  return Status::Ok();
}

Status Session::restore(const m::Restore& r) {
  auto start = Clock::now();
  restore_arrived_ = start;
  frozen_before_restore_ms_ = r.frozen_ms > 0 ? r.frozen_ms : 0;
  if (svc_) {
    RELIVE_RETURN_IF_ERROR(net::add_address(*svc_, svc_dev_));
    address_added_ = true;
  }
  if (runc_) {
    RELIVE_RETURN_IF_ERROR(restore_runc(r));
  } else {
    RELIVE_RETURN_IF_ERROR(restore_tree(r));
    outcome_.root_pid = ns_.root_pid;
    outcome_.init_pid = ns_.init_pid;
  }
  outcome_.restore_ms = ms_since(start);
  return Status::Ok();
}

// The workload runs from here, and only once it demonstrably does (tracee/resume_check.h) is
// the migration committed. Any error returned here means nothing of the workload runs on this
// host any more: the source may resume its own copy.
Status Session::commit() {
  auto start = Clock::now();
  if (restore_arrived_ != Clock::time_point{})
    record_.downtime(frozen_before_restore_ms_ + ms_between(restore_arrived_, start));
  if (runc_) {
    Status s = runc_->commit();
    if (!s.ok()) {
      undo();
      return s.with_context("the container did not run here; it was removed");
    }
  } else {
    if (ns_.init_pid <= 0) return Status::InvalidArgument("commit before restore");
    std::vector<pid_t> tree = namespace_members(ns_.init_pid);
    std::erase(tree, ns_.init_pid);
    Status s = tracee::resume_and_confirm(tree);
    if (!s.ok()) {
      undo();
      return s.with_context("the restored workload did not run here; it was removed");
    }
  }
  committed_ = true;
  outcome_.confirm_ms = ms_since(start);
  if (svc_) {
    Status s = net::announce(*svc_, svc_dev_);
    if (!s.ok()) RELIVE_LOG_WARN("gratuitous ARP for {}: {}", svc_->text, s.to_string());
  }
  return Status::Ok();
}

m::Reply Session::default_reply() const {
  return m::Reply{m::OutcomeReply{outcome_.root_pid, outcome_.restore_ms, outcome_.confirm_ms}};
}

Status Session::receive_trace(const m::FileBatch& f) {
  std::string trace = work_->path() + "/trace";
  RELIVE_RETURN_IF_ERROR(transfer::receive_files(&link_->channel(), f, trace));
  if (crtr_ || !std::filesystem::exists(trace + "/header")) return Status::Ok();
  // CR/TR's restore speaks CRIU's page-server protocol, whose layout follows CRIU's version.
  RELIVE_ASSIGN_OR_RETURN(criu::CriuVersion v, criu::criu_version(criu_));
  page_server_layout_ = criu::page_server_layout(v);
  crtr_ = std::make_unique<CrtrReplay>();
  return crtr_->start(trace, criu_);
}

Status Session::receive_log(const m::LogRound& l) {
  if (!crtr_) return Status::Corruption("log round before the checkpoint");
  transfer::BulkReceiver in(&link_->channel());
  uint64_t remaining = l.bytes;
  std::string log;
  while (remaining > 0) {
    RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> events, in.next());
    for (const std::string& ev : events) {
      std::string_view data = std::string_view(ev).substr(8);
      if (data.size() > remaining) return Status::Corruption("log round longer than announced");
      log.append(data);
      remaining -= data.size();
    }
  }
  RELIVE_RETURN_IF_ERROR(crtr_->append_log(log, l.final));
  if (l.final && !ahead_.valid()) {
    // The source now dumps and hashes its memory: finish the replayed process's hashes
    // meanwhile, once the replay has caught up, so that verify() has mostly lookups left.
    CrtrReplay* replay = crtr_.get();
    ahead_ = std::async(std::launch::async, [replay] { return replay->hashes(); });
  }
  return Status::Ok();
}

// Waits for the replay to reach the source's freeze point and lists the pages of the source's
// final dump that the replayed memory does not reproduce.
Result<m::Reply> Session::verify() {
  if (!crtr_) return Status::Corruption("verify without a replay");
  RELIVE_RETURN_IF_ERROR(crtr_->finish().with_context("replay at the destination"));
  std::string images = work_->path() + "/images";
  std::vector<pid_t> dumped;
  for (const auto& e : std::filesystem::directory_iterator(images)) {
    std::string n = e.path().filename().string();
    if (n.starts_with("pagemap-") && !n.starts_with("pagemap-shmem"))
      dumped.push_back(std::atoi(n.c_str() + 8));
  }
  if (dumped.size() != 1) return Status::Unsupported("CR/TR migrates one process");
  dumped_pid_ = dumped[0];
  std::optional<transfer::PageHashTable> ahead;
  if (ahead_.valid()) {
    Result<transfer::PageHashTable> got = ahead_.get();
    if (got.ok())
      ahead.emplace(std::move(*got));
    else
      RELIVE_LOG_DEBUG("replayed memory not hashed ahead: {}", got.status().to_string());
  }
  RELIVE_ASSIGN_OR_RETURN(
      differing_,
      transfer::compare_lazy_pages(images, dumped_pid_, crtr_->pid(), ahead ? &*ahead : nullptr));
  RELIVE_RETURN_IF_ERROR(start_lazy_pages_from_replay());
  const auto& differ = differing_;
  m::VerifyReply reply;
  for (const auto& r : differ) reply.differing.push_back({r.start, r.pages});
  reply.replayed_events = crtr_->events();
  return m::Reply{std::move(reply)};
}

// The restore's lazy pages: the replayed process's memory, with the pages it did not reproduce
// as the source sent them after verify().
Status Session::read_replayed_pages(uint64_t image_pid, uint64_t vaddr, uint64_t pages, char* out) {
  if (image_pid != static_cast<uint64_t>(dumped_pid_))
    return Status::NotFound(fmt::format("no process {} in this migration", image_pid));
  std::vector<dirty::PageRange> want{{vaddr, pages}};
  auto sink = [&](uint64_t at, std::string_view bytes) {
    std::memcpy(out + (at - vaddr), bytes.data(), bytes.size());
    return Status::Ok();
  };
  RELIVE_ASSIGN_OR_RETURN(dirty::ReadReport read, dirty::read_pages(crtr_->pid(), want, sink));
  uint64_t end = vaddr + pages * criu::kImagePageSize;
  auto patched = [&](uint64_t page) {
    for (const criu::VaddrRange& d : differing_)
      if (page >= d.start && page < d.end()) return true;
    return false;
  };
  for (const criu::VaddrRange& d : differing_) {
    for (uint64_t v = std::max(d.start, vaddr); v < std::min(d.end(), end);
         v += criu::kImagePageSize) {
      if (!cache_) return Status::Corruption("the differing pages never arrived");
      RELIVE_RETURN_IF_ERROR(cache_->read_page(dumped_pid_, v, out + (v - vaddr)));
    }
  }
  for (const dirty::PageRange& m : read.missing)
    for (uint64_t v = m.start; v < m.end(); v += criu::kImagePageSize)
      if (!patched(v))
        return Status::Corruption(fmt::format("page {:#x} is neither replayed nor shipped", v));
  return Status::Ok();
}

// The restore's lazy-pages daemon, started as soon as verify() knows which pages the replay
// got wrong (they arrive before the restore; the daemon reads nothing until the restore runs):
// its page server is the replayed process, which stays (stopped) until the daemon has copied
// every page into the restored one.
Status Session::start_lazy_pages_from_replay() {
  RELIVE_ASSIGN_OR_RETURN(replay_pages_,
                          criu::LocalPageServer::start(
                              [this](uint64_t id, uint64_t vaddr, uint64_t pages, char* out) {
                                return read_replayed_pages(id, vaddr, pages, out);
                              },
                              page_server_layout_));
  criu::LazyPagesOptions lo;
  lo.images_dir = work_->path() + "/images";
  lo.ps_socket = replay_pages_->criu_end();
  lo.run.criu = criu_;
  RELIVE_ASSIGN_OR_RETURN(criu::CriuProcess p, criu::start_lazy_pages(lo));
  lazy_.emplace(std::move(p));
  replay_pages_->close_criu_end();
  return lazy_->wait_ready(std::chrono::seconds(30));
}

// Every command passes the phase first: one out of order is refused (and audited) before it
// can touch anything this session holds.
Result<m::Reply> Session::dispatch(const m::Command& c, bool* done) {
  if (Status s = phase_.step(c); !s.ok())
    return refuse_command(gate_, link_->channel().peer(), c, s);
  return act(c, done);
}

Result<m::Reply> Session::act(const m::Command& c, bool* done) {
  if (const auto* f = std::get_if<m::FileBatch>(&c)) {
    if (f->dir == "trace")
      RELIVE_RETURN_IF_ERROR(receive_trace(*f));
    else if (f->dir == "images")
      RELIVE_RETURN_IF_ERROR(
          transfer::receive_files(&link_->channel(), *f, work_->path() + "/images"));
    else if (f->dir == "bundle" && runc_)
      RELIVE_RETURN_IF_ERROR(
          transfer::receive_files(&link_->channel(), *f, work_->path() + "/bundle"));
    else
      return Status::InvalidArgument("unknown file batch " + f->dir);
    for (const m::FileEntry& e : f->files) record_.add_bytes(e.size);
    return default_reply();
  }
  if (const auto* p = std::get_if<m::PageRound>(&c)) {
    if (!cache_) {
      RELIVE_ASSIGN_OR_RETURN(transfer::PageCache pc,
                              transfer::PageCache::create(work_->path() + "/pages"));
      cache_.emplace(std::move(pc));
    }
    RELIVE_RETURN_IF_ERROR(cache_->receive(&link_->channel(), *p));
    record_.add_bytes(p->pages * 4096);
    return default_reply();
  }
  if (const auto* l = std::get_if<m::LogRound>(&c)) {
    RELIVE_RETURN_IF_ERROR(receive_log(*l));
    record_.add_bytes(l->bytes);
    // Where the replay stands: the source's `auto` leaves CR/TR when the replay falls behind.
    return m::Reply{m::LogRoundReply{.log_bytes_behind = crtr_->bytes_behind(),
                                     .hashing_behind = !crtr_->hashed_once()}};
  }
  if (std::holds_alternative<m::Verify>(c)) return verify();
  if (const auto* r = std::get_if<m::Restore>(&c)) {
    RELIVE_RETURN_IF_ERROR(restore(*r));
    return default_reply();
  }
  if (std::holds_alternative<m::Commit>(c)) {
    *done = true;
    RELIVE_RETURN_IF_ERROR(commit());
    return default_reply();
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
    Status s =
        Status::Corruption(std::string("expected migrate.begin, got ") + m::command_name(first));
    (void)link_->fail(s);
    return s;
  }
  if (o_.admit) {
    Result<std::unique_ptr<ArrivalClaim>> admitted = o_.admit(b->name);
    if (!admitted.ok()) {
      (void)link_->fail(refuse_command(gate_, link_->channel().peer(), first, admitted.status()));
      return admitted.status();
    }
    claim_ = std::move(*admitted);
  }
  record_.begin(m::strategy_name(b->strategy));
  if (b->kind == m::WorkloadKind::kVm) {
    Result<DestinationOutcome> vm = b->strategy == m::Strategy::kLogShipping
                                        ? serve_vm_log_shipping(link_, gate_, o_, *b)
                                        : serve_vm_migration(link_, gate_, o_, *b);
    if (vm.ok()) record_.succeeded();
    return vm;
  }
  Status began = begin(*b);
  if (!began.ok()) {
    (void)link_->fail(began);
    return began;
  }
  RELIVE_RETURN_IF_ERROR(link_->ack());
  RELIVE_RETURN_IF_ERROR(
      link_->serve(gate_, [this](const m::Command& c, bool* done) { return dispatch(c, done); }));
  record_.succeeded();  // committed: what follows (post-copy's last pages) is the workload's
  if (lazy_) {
    // The tree runs; the daemon finishes copying its memory in the background (from the source
    // with post-copy, from the replayed process with CR/TR, from the local images otherwise).
    Status s = lazy_->wait(std::chrono::minutes(30));
    if (!s.ok()) RELIVE_LOG_WARN("lazy page transfer: {}", s.to_string());
  }
  if (replay_pages_) {
    Status s = replay_pages_->wait(std::chrono::seconds(10));
    if (!s.ok()) RELIVE_LOG_WARN("pages from the replay: {}", s.to_string());
    RELIVE_LOG_DEBUG("{} pages served from the replayed process", replay_pages_->pages_served());
    replay_pages_.reset();
  }
  if (crtr_) crtr_->release();  // its memory is in the restored process now
  end_work();                   // the lazy-pages daemon, the last reader of the images, is done
  return outcome_;
}

}  // namespace

Result<DestinationOutcome> serve_migration(transfer::Link* link, security::RequestGate* gate,
                                           const DestinationOptions& options) {
  Session s(link, gate, options);
  return s.run();
}

}  // namespace relive::migrate
