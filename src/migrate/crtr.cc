// CR/TR-Motion at the source: checkpoint the running process (copy-on-write, through the
// recorder's --pid attach), ship the checkpoint, then ship its log of nondeterministic input in
// rounds while the destination replays it; when a round's log is small, freeze the process at a
// syscall boundary, ship the last of the log, and switch over. What travels after the
// checkpoint is the log, not the memory the process dirtied.
//
// The switch-over copies no memory: the final dump is lazy (`criu dump --lazy-pages`, whose page
// server is closed at once), so its images hold the kernel state and the few pages that cannot
// be lazy, while the anonymous memory stays in the stopped process. The source sends the hashes
// of that memory; the destination checks its replayed process against them, takes the pages
// that differ from the source, and restores with CRIU's lazy-pages daemon fed from the replayed
// process (drivers/criu/page_server.h). Both sides keep their hashes current while the process
// runs (transfer/hash_keeper.h), so the freeze hashes only what the last moments wrote, and the
// rounds go on until the destination's replay and hashes have caught up.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/file_util.h"
#include "common/logging.h"
#include "common/process_tree.h"
#include "common/scoped_fd.h"
#include "common/subprocess.h"
#include "dirty/page_reader.h"
#include "drivers/criu/criu_process.h"
#include "drivers/criu/page_image.h"
#include "drivers/criu/page_server.h"
#include "migrate/peer_replies.h"
#include "migrate/source.h"
#include "transfer/file_transfer.h"
#include "transfer/hash_keeper.h"
#include "transfer/page_cache.h"
#include "transfer/page_hashes.h"
#include "wire/segment.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;
using std::chrono::milliseconds;

// `relive record --pid PID --live` as a child: it attaches, checkpoints and records until told
// to freeze (SIGUSR1) or to let go (SIGINT, the process runs on untraced).
class Recorder {
 public:
  static Result<Recorder> start(pid_t target, const std::string& trace, const std::string& log) {
    RELIVE_ASSIGN_OR_RETURN(ScopedFd out, open_output_file(log));
    SpawnOptions o;
    o.output_fd = out.get();
    RELIVE_ASSIGN_OR_RETURN(Subprocess child,
                            Subprocess::spawn({"/proc/self/exe", "record", "-o", trace, "--pid",
                                               std::to_string(target), "--live"},
                                              o));
    return Recorder(std::move(child));
  }
  Recorder(Recorder&&) noexcept = default;
  // Lets the process go (SIGINT); killed when it does not exit within 5 s.
  ~Recorder() {
    if (!child_.valid()) return;
    child_.signal(SIGINT);
    (void)wait(milliseconds(5000));
  }
  bool running() const { return child_.running(); }
  void signal(int sig) const { child_.signal(sig); }
  // Exit status once it exits within `limit`; -1 otherwise.
  int wait(milliseconds limit) {
    std::optional<ExitStatus> st = child_.try_wait(limit);
    if (!st) return -1;
    return st->term_signal != 0 ? 128 + st->term_signal : st->exit_code;
  }

 private:
  explicit Recorder(Subprocess child) : child_(std::move(child)) {}
  Subprocess child_;
};

// Ships the trace files not shipped yet (header, checkpoint, saved files).
Status ship_new_trace_files(Source* s, const std::string& trace, std::set<std::string>* shipped) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::recursive_directory_iterator(trace)) {
    if (!e.is_regular_file()) continue;
    std::string rel = std::filesystem::relative(e.path(), trace).string();
    if (rel == "events" || rel.ends_with(".log") || shipped->count(rel)) continue;
    names.push_back(rel);
  }
  if (names.empty()) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(uint64_t bytes, transfer::send_files(&s->link(), "trace", trace, names));
  s->add_bytes(shipped->empty() ? "checkpoint" : "trace_files", bytes);
  shipped->insert(names.begin(), names.end());
  return Status::Ok();
}

struct LogRoundResult {
  uint64_t bytes = 0;    // log bytes shipped
  uint64_t pending = 0;  // log bytes there were to ship (whole segments or not)
  uint64_t size = 0;     // the log's size when the round read it
  uint64_t behind = 0;   // the destination's replay: log bytes it may not have reached yet
  bool hashing = false;  // the destination has not hashed its replayed memory once yet
};

// Ships the whole segments appended to the log since `*offset`, at most `limit` bytes of them
// (but always the first whole segment); 0: no limit.
Result<LogRoundResult> ship_log_round(Source* s, const std::string& events, uint64_t* offset,
                                      uint32_t round, bool final, uint64_t limit = 0) {
  ScopedFd fd(::open(events.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + events, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return PosixError("stat " + events, errno);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < *offset) return Status::Corruption("the trace's log shrank");
  std::string fresh_bytes(size - *offset, '\0');
  for (size_t got = 0; got < fresh_bytes.size();) {
    ssize_t n = ::pread(fd.get(), fresh_bytes.data() + got, fresh_bytes.size() - got,
                        static_cast<off_t>(*offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("read " + events, errno);
    if (n == 0) break;  // a writer's truncation is caught on the next round
    got += static_cast<size_t>(n);
  }
  std::string_view fresh = fresh_bytes;
  size_t whole = limit > 0 ? wire::whole_segments_prefix(fresh.substr(0, limit)) : 0;
  if (whole == 0) whole = wire::whole_segments_prefix(fresh);
  fresh = fresh.substr(0, whole);
  RELIVE_RETURN_IF_ERROR(s->link().send(m::LogRound{round, fresh.size(), final}));
  transfer::BulkSender out(&s->link().channel());
  for (size_t at = 0; at < fresh.size(); at += 1u << 20) {
    std::string ev = transfer::event_header(0, 0);
    ev.append(fresh.substr(at, 1u << 20));
    RELIVE_RETURN_IF_ERROR(out.add(ev));
  }
  RELIVE_RETURN_IF_ERROR(out.flush());
  RELIVE_ASSIGN_OR_RETURN(m::Reply reply, s->link().wait_reply());
  s->add_bytes("log", out.wire_bytes());
  *offset += fresh.size();
  LogRoundResult r;
  r.bytes = fresh.size();
  r.pending = fresh_bytes.size();
  r.size = size;
  if (const auto* l = std::get_if<m::LogRoundReply>(&reply)) {
    r.behind = l->log_bytes_behind;
    r.hashing = l->hashing_behind;
  }
  return r;
}

Status wait_for_checkpoint(Recorder& rec, const std::string& trace, const std::string& log) {
  auto end = Clock::now() + milliseconds(60000);
  while (!std::filesystem::exists(trace + "/header")) {
    if (!rec.running()) {
      auto text = read_file(log);
      return Status::IoError("the recorder failed: " + (text.ok() ? *text : std::string("?")));
    }
    if (Clock::now() > end) return Status::IoError("no checkpoint after 60 s");
    std::this_thread::sleep_for(milliseconds(5));
  }
  return Status::Ok();
}

bool stopped(pid_t pid) { return task_state(pid) == 'T'; }

// How the rounds of log ended.
struct Rounds {
  bool converged = false;  // a round had less than the threshold to ship: freeze
  std::string leave;       // auto: CR/TR cannot win here, and why (with the figures)
  double log_rate = 0;     // how fast the log grew during the last round, bytes/s
  uint64_t behind = 0;     // the replay, at the last round
};

// Rounds of log while the process runs, from the first (what was logged while the checkpoint
// travelled) until one has less than the threshold to ship, or rounds or time run out. A round
// ships at most a quarter second of the link's rate (`link_rate` bytes/s; 0 when unknown), so
// that a log growing faster than the link is seen within a few rounds: under `auto` the rounds
// then end with `leave` set, as they do when the destination's replay falls behind, each three
// rounds in a row. Under `auto` a server's log, which never falls below the threshold while it
// serves, counts as converged once it stays well below the link (a quarter of it) with the
// replay keeping up (no more than the last round behind), three rounds in a row: the freeze then
// ships less than a few milliseconds of log.
Result<Rounds> log_rounds(Source* s, const std::string& trace, std::set<std::string>* shipped,
                          uint64_t* offset, double link_rate) {
  const MigrateOptions& o = s->options();
  constexpr int kStrikes = 3;
  const uint64_t lag_limit = std::max<uint64_t>(4 * o.log_threshold, 1u << 20);
  const uint64_t limit =
      link_rate > 0 ? std::max<uint64_t>(static_cast<uint64_t>(link_rate / 4), 1u << 20) : 0;
  auto start = Clock::now(), last_read = start;
  uint64_t last_size = 0;
  int over_link = 0, falling_behind = 0, steady = 0;
  Rounds r;
  for (int round = 0; round < o.max_rounds; ++round) {
    if (round > 0) std::this_thread::sleep_for(milliseconds(100));
    auto t0 = Clock::now();
    RELIVE_RETURN_IF_ERROR(ship_new_trace_files(s, trace, shipped));
    RELIVE_ASSIGN_OR_RETURN(
        LogRoundResult got,
        ship_log_round(s, trace + "/events", offset, static_cast<uint32_t>(round), false, limit));
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    double since = std::chrono::duration<double>(t0 - last_read).count();
    // The first round's log grew while the checkpoint travelled: no rate from it.
    r.log_rate = round > 0 && since > 0 ? (got.size - last_size) / since : 0.0;
    last_read = t0;
    last_size = got.size;
    uint64_t was_behind = r.behind;
    r.behind = got.behind;
    s->report().rounds = round + 1;
    if (round > 0)
      s->progress(fmt::format(
          "phase=log round={} log_bytes={} backlog={} log_rate={:.0f}B/s link_rate={:.0f}B/s "
          "replay_behind={}{}",
          round, got.bytes, got.pending - got.bytes, r.log_rate, secs > 0 ? got.bytes / secs : 0.0,
          got.behind, got.hashing ? " hashing=first_pass" : ""));
    // The freeze waits for the destination's replay to reach it and for the replayed memory's
    // hashes: while the replay is more than this round behind, or the destination is still on its
    // first pass over the memory, another round costs less than freezing now would.
    bool keeps_up = got.behind <= got.bytes + o.log_threshold;
    if (round > 0 && got.pending < o.log_threshold && keeps_up && !got.hashing) {
      r.converged = true;
      return r;
    }
    if (round > 0) {
      over_link = link_rate > 0 && r.log_rate > 0.8 * link_rate ? over_link + 1 : 0;
      falling_behind = got.behind > lag_limit && got.behind > was_behind ? falling_behind + 1 : 0;
      bool close_behind = got.behind <= 2 * got.bytes + o.log_threshold;
      steady = link_rate > 0 && r.log_rate < 0.25 * link_rate && close_behind ? steady + 1 : 0;
    }
    if (o.strategy == "auto" && steady >= kStrikes && !got.hashing) {
      r.converged = true;
      return r;
    }
    if (o.strategy == "auto" && over_link >= kStrikes) {
      r.leave = fmt::format("the log ({:.1f} MB/s) outgrew the link ({:.1f} MB/s)",
                            r.log_rate / 1e6, link_rate / 1e6);
      return r;
    }
    if (o.strategy == "auto" && falling_behind >= kStrikes) {
      r.leave = fmt::format("the destination's replay fell behind ({} log bytes and growing)",
                            got.behind);
      return r;
    }
    if (Clock::now() - start > o.max_time) return r;
  }
  return r;
}

// Freezes the process where the log ends (RecordSession::kFreeze).
Status freeze_recorded(Source* s, Recorder* rec) {
  rec->signal(SIGUSR1);
  if (rec->wait(milliseconds(5000)) != 0) {
    // No syscall boundary came (a pure compute loop): stop it anyway; the pages its last
    // instructions changed will differ from the replay's and travel as pages.
    rec->signal(SIGINT);
    rec->wait(milliseconds(5000));
    ::kill(s->options().pid, SIGSTOP);
  }
  for (int i = 0; i < 1000 && !stopped(s->options().pid); ++i)
    std::this_thread::sleep_for(milliseconds(1));
  return stopped(s->options().pid) ? Status::Ok() : Status::IoError("the process did not stop");
}

// The final dump without its memory: `criu dump --lazy-pages` on a socket pair, whose page
// server is closed as soon as the images are written. CRIU then leaves the tree stopped (`d`
// says leave_stopped) with its memory where it was.
Status dump_without_memory(const criu::DumpOptions& d, criu::PageServerLayout layout) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return PosixError("socketpair", errno);
  ScopedFd ours(sv[0]), theirs(sv[1]);
  criu::LazyDumpOptions lo;
  lo.dump = d;
  lo.ps_socket = theirs.get();
  RELIVE_ASSIGN_OR_RETURN(criu::CriuProcess dump, criu::start_lazy_dump(lo));
  theirs.reset();  // CRIU's exit is then a hang-up here
  std::chrono::milliseconds limit =
      d.run.timeout.count() > 0 ? d.run.timeout : std::chrono::hours(24);  // zero: no limit
  RELIVE_RETURN_IF_ERROR(dump.wait_ready(limit));
  Status closed = criu::close_page_server(ours.get(), layout);
  Status ended = dump.wait(limit);
  RELIVE_RETURN_IF_ERROR(ended);
  return closed;
}

// Pages the replay did not reproduce, from the stopped process.
Status ship_differing(Source* s, const m::Reply& verdict) {
  RELIVE_ASSIGN_OR_RETURN(VerifyReply reply, verify_reply(verdict));
  std::vector<dirty::PageRange> ranges;
  for (const criu::VaddrRange& r : reply.differing) ranges.push_back({r.start, r.pages});
  RELIVE_RETURN_IF_ERROR(s->link().send(m::PageRound{0, 0}));
  transfer::PageSender out(&s->link().channel());
  pid_t pid = s->options().pid;
  auto sink = [&](uint64_t vaddr, std::string_view bytes) { return out.add(pid, vaddr, bytes); };
  RELIVE_ASSIGN_OR_RETURN(dirty::ReadReport read, dirty::read_pages(pid, ranges, sink));
  if (!read.missing.empty())
    return Status::IoError(fmt::format("{} differing pages are no longer mapped in process {}",
                                       read.missing.size(), pid));
  RELIVE_RETURN_IF_ERROR(out.finish());
  RELIVE_RETURN_IF_ERROR(s->link().wait_ack().status());
  s->add_bytes("differing_pages", out.wire_bytes());
  s->progress(fmt::format("phase=verify replayed_events={} differing_pages={}",
                          reply.replayed_events, out.pages()));
  return Status::Ok();
}

}  // namespace

Status run_crtr(Source* s) {
  std::string work = std::filesystem::path(s->images_dir()).parent_path().string();
  std::string trace = work + "/trace", log = work + "/recorder.log";
  pid_t pid = s->options().pid;
  // The memory's hashes, kept current while the process runs so that the freeze hashes only
  // what the last moments wrote. Armed before the recorder holds the process (it seizes it).
  std::unique_ptr<transfer::HashKeeper> keeper;
  if (auto k = transfer::HashKeeper::start(pid, transfer::kHashKeeperPeriod); k.ok())
    keeper = std::move(*k);
  else
    RELIVE_LOG_DEBUG("memory hashed at the freeze: {}", k.status().to_string());
  RELIVE_ASSIGN_OR_RETURN(Recorder rec, Recorder::start(pid, trace, log));
  RELIVE_RETURN_IF_ERROR(wait_for_checkpoint(rec, trace, log));
  std::set<std::string> shipped;
  auto t0 = Clock::now();
  RELIVE_RETURN_IF_ERROR(ship_new_trace_files(s, trace, &shipped));
  // The link's rate: the cap when there is one, else what the checkpoint (the largest transfer)
  // achieved.
  uint64_t checkpoint = s->report().bytes_total;
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  double link_rate = s->options().max_bandwidth > 0
                         ? static_cast<double>(s->options().max_bandwidth)
                     : secs > 0.05 ? checkpoint / secs
                                   : 0.0;
  uint64_t offset = 0;
  RELIVE_ASSIGN_OR_RETURN(Rounds rounds, log_rounds(s, trace, &shipped, &offset, link_rate));
  if (!rounds.converged && s->options().strategy == "auto") {
    keeper.reset();      // post-copy tracks nothing, but the process owes nobody a userfaultfd
    rec.signal(SIGINT);  // recording ends; the process runs on untraced
    if (rec.wait(milliseconds(5000)) != 0) return Status::IoError("the recorder did not let go");
    s->switch_strategy("postcopy", rounds.leave.empty()
                                       ? "the log did not shrink below the threshold"
                                       : rounds.leave);
    return run_postcopy(s);
  }
  if (s->options().strategy == "auto")
    s->report().reason += fmt::format(
        "; CR/TR kept: the log at {:.1f} MB/s against a link of {:.1f} MB/s, the replay {} "
        "bytes behind",
        rounds.log_rate / 1e6, link_rate / 1e6, rounds.behind);

  // Before the freeze: finding CRIU runs `criu --version`, which would add to the downtime.
  RELIVE_ASSIGN_OR_RETURN(criu::DumpOptions d, base_dump_options(*s));
  d.leave_stopped = true;
  RELIVE_ASSIGN_OR_RETURN(criu::CriuVersion version, criu::criu_version(d.run.criu));
  if (keeper && !keeper->refresh().ok()) keeper.reset();
  RELIVE_RETURN_IF_ERROR(s->freeze_begins());
  RELIVE_RETURN_IF_ERROR(freeze_recorded(s, &rec));
  s->tree_left_stopped();
  // Its memory no longer changes: the keeper's last look (it stays armed until this function
  // returns: the tracker leaves no descriptor in the process for CRIU to see, and disarming
  // walks every page table entry), and the pages written since its previous look are hashed
  // while the last log travels and CRIU dumps the rest (whatever CRIU's parasite touches
  // meanwhile only makes a page travel that need not have). Without a keeper, all of the memory
  // is hashed.
  if (keeper && !keeper->freeze().ok()) keeper.reset();
  uint64_t at_freeze = 0;  // pages the table hashed after the freeze
  auto ahead = std::async(std::launch::async,
                          [pid, &keeper, &at_freeze]() -> Result<transfer::PageHashTable> {
                            if (keeper) {
                              at_freeze = keeper->pages_at_freeze();
                              return keeper->table();
                            }
                            auto t = transfer::PageHashTable::of_anonymous_memory(pid);
                            if (t.ok()) at_freeze = t->pages();
                            return t;
                          });
  RELIVE_RETURN_IF_ERROR(ship_new_trace_files(s, trace, &shipped));
  RELIVE_ASSIGN_OR_RETURN(LogRoundResult last,
                          ship_log_round(s, trace + "/events", &offset,
                                         static_cast<uint32_t>(s->report().rounds), true));
  s->progress(fmt::format("phase=frozen final_log_bytes={}", last.bytes));
  RELIVE_RETURN_IF_ERROR(dump_without_memory(d, criu::page_server_layout(version)));
  s->progress("phase=dumped");
  RELIVE_RETURN_IF_ERROR(s->release_address());
  Result<transfer::PageHashTable> table = ahead.get();
  if (!table.ok()) RELIVE_LOG_DEBUG("memory hashed whole: {}", table.status().to_string());
  RELIVE_ASSIGN_OR_RETURN(
      transfer::LazyHashes hashed,
      transfer::write_lazy_page_hashes(s->images_dir(), pid, pid, table.ok() ? &*table : nullptr));
  // hashed_at_freeze: what the freeze had to hash (all of it without a keeper).
  s->progress(fmt::format("phase=hashed lazy_pages={} hashed_at_freeze={}", hashed.pages,
                          hashed.read_now + (table.ok() ? at_freeze : 0)));
  RELIVE_ASSIGN_OR_RETURN(auto files, image_files(s->images_dir()));
  files.push_back(transfer::page_hashes_name(pid));
  RELIVE_ASSIGN_OR_RETURN(uint64_t bytes,
                          transfer::send_files(&s->link(), "images", s->images_dir(), files));
  s->add_bytes("images", bytes);
  RELIVE_ASSIGN_OR_RETURN(m::Reply verdict, s->link().call_reply(m::Verify{}));
  RELIVE_RETURN_IF_ERROR(ship_differing(s, verdict));
  m::Restore r;
  r.pages_from_replay = true;
  return s->switch_over(r);
}

}  // namespace relive::migrate
