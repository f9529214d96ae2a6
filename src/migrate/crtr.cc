// CR/TR-Motion at the source: checkpoint the running process (copy-on-write, through the
// recorder's --pid attach), ship the checkpoint, then ship its log of nondeterministic input in
// rounds while the destination replays it; when a round's log is small, freeze the process at a
// syscall boundary, ship the last of the log, and switch over. What travels after the
// checkpoint is the log, not the memory the process dirtied.
//
// The switch-over copies no memory: the final dump is lazy (`criu dump --lazy-pages`, whose page
// server is closed at once), so its images hold the kernel state and the few pages that cannot
// be lazy, while the anonymous memory stays in the stopped process. The source hashes that
// memory; the destination checks its replayed process against the hashes, takes the pages that
// differ from the source, and restores with CRIU's lazy-pages daemon fed from the replayed
// process (drivers/criu/page_server.h).
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/file_util.h"
#include "common/process_tree.h"
#include "common/subprocess.h"
#include "dirty/page_reader.h"
#include "drivers/criu/criu_process.h"
#include "drivers/criu/page_image.h"
#include "drivers/criu/page_server.h"
#include "migrate/peer_replies.h"
#include "migrate/source.h"
#include "transfer/file_transfer.h"
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

// Ships the whole segments appended to the log since `*offset`; returns how many log bytes.
Result<uint64_t> ship_log_round(Source* s, const std::string& events, uint64_t* offset,
                                uint32_t round, bool final) {
  RELIVE_ASSIGN_OR_RETURN(std::string all, read_file(events));
  if (all.size() < *offset) return Status::Corruption("the trace's log shrank");
  std::string_view fresh = std::string_view(all).substr(*offset);
  fresh = fresh.substr(0, wire::whole_segments_prefix(fresh));
  RELIVE_RETURN_IF_ERROR(s->link().send(m::LogRound{round, fresh.size(), final}));
  transfer::BulkSender out(&s->link().channel());
  for (size_t at = 0; at < fresh.size(); at += 1u << 20) {
    std::string ev = transfer::event_header(0, 0);
    ev.append(fresh.substr(at, 1u << 20));
    RELIVE_RETURN_IF_ERROR(out.add(ev));
  }
  RELIVE_RETURN_IF_ERROR(out.flush());
  RELIVE_RETURN_IF_ERROR(s->link().wait_ack().status());
  s->add_bytes("log", out.wire_bytes());
  *offset += fresh.size();
  return fresh.size();
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

// Rounds of log while the process runs. Returns true when a round was below the threshold,
// false when rounds or time ran out first.
Result<bool> log_rounds(Source* s, const std::string& trace, std::set<std::string>* shipped,
                        uint64_t* offset) {
  const MigrateOptions& o = s->options();
  auto start = Clock::now();
  for (int round = 1; round < o.max_rounds; ++round) {
    std::this_thread::sleep_for(milliseconds(100));
    auto t0 = Clock::now();
    RELIVE_RETURN_IF_ERROR(ship_new_trace_files(s, trace, shipped));
    RELIVE_ASSIGN_OR_RETURN(uint64_t n, ship_log_round(s, trace + "/events", offset,
                                                       static_cast<uint32_t>(round), false));
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    s->report().rounds = round + 1;
    s->progress(
        fmt::format("phase=log round={} log_bytes={} log_rate={:.0f}B/s link_rate={:.0f}B/s", round,
                    n, n / 0.1, secs > 0 ? n / secs : 0.0));
    if (n < o.log_threshold) return true;
    if (Clock::now() - start > o.max_time) return false;
  }
  return false;
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
  RELIVE_ASSIGN_OR_RETURN(Recorder rec, Recorder::start(s->options().pid, trace, log));
  RELIVE_RETURN_IF_ERROR(wait_for_checkpoint(rec, trace, log));
  std::set<std::string> shipped;
  RELIVE_RETURN_IF_ERROR(ship_new_trace_files(s, trace, &shipped));
  uint64_t offset = 0;
  RELIVE_RETURN_IF_ERROR(ship_log_round(s, trace + "/events", &offset, 0, false).status());
  RELIVE_ASSIGN_OR_RETURN(bool converged, log_rounds(s, trace, &shipped, &offset));
  if (!converged && s->options().strategy == "auto") {
    rec.signal(SIGINT);  // recording ends; the process runs on untraced
    if (rec.wait(milliseconds(5000)) != 0) return Status::IoError("the recorder did not let go");
    s->switch_strategy("postcopy", "the log did not shrink below the threshold");
    return run_postcopy(s);
  }

  // Before the freeze: finding CRIU runs `criu --version`, which would add to the downtime.
  RELIVE_ASSIGN_OR_RETURN(criu::DumpOptions d, base_dump_options(*s));
  d.leave_stopped = true;
  RELIVE_ASSIGN_OR_RETURN(criu::CriuVersion version, criu::criu_version(d.run.criu));
  RELIVE_RETURN_IF_ERROR(s->freeze_begins());
  RELIVE_RETURN_IF_ERROR(freeze_recorded(s, &rec));
  s->tree_left_stopped();
  RELIVE_RETURN_IF_ERROR(ship_new_trace_files(s, trace, &shipped));
  RELIVE_ASSIGN_OR_RETURN(uint64_t last,
                          ship_log_round(s, trace + "/events", &offset,
                                         static_cast<uint32_t>(s->report().rounds), true));
  s->progress(fmt::format("phase=frozen final_log_bytes={}", last));
  RELIVE_RETURN_IF_ERROR(dump_without_memory(d, criu::page_server_layout(version)));
  s->progress("phase=dumped");
  RELIVE_RETURN_IF_ERROR(s->release_address());
  pid_t pid = s->options().pid;
  RELIVE_RETURN_IF_ERROR(transfer::write_lazy_page_hashes(s->images_dir(), pid, pid));
  s->progress("phase=hashed");
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
