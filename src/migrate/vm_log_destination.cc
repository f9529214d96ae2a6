#include "migrate/vm_log_destination.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/json_field.h"
#include "common/logging.h"
#include "common/scoped_fd.h"
#include "common/subprocess.h"
#include "drivers/qemu/record_replay_args.h"
#include "migrate/vm_destination_session.h"
#include "transfer/bulk.h"

namespace relive::migrate {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace m = relive::migration;

constexpr milliseconds kLiveStartTimeout{30000};  // from `cont` until the loaded VM runs
constexpr milliseconds kToolTimeout{30000};
constexpr milliseconds kReplayTimeout{600000};  // the final replay: the source's lead on us
constexpr size_t kLogHeader = 12;               // QEMU's replay log header (version, 0)
constexpr const char* kTag = "relive-handover";

// Runs a short-lived tool (qemu-img) in `dir` to completion.
Status run_tool(const std::vector<std::string>& argv, const std::string& dir) {
  return run_checked(argv, {.cwd = dir, .timeout = kToolTimeout});
}

class VmLogIncoming {
 public:
  VmLogIncoming(transfer::Link* link, security::RequestGate* gate, const DestinationOptions& o,
                const m::Begin& b)
      : vm_(link, gate, o, b, DestinationFlow::kVmLog), begin_(vm_.begin()) {}

  Result<DestinationOutcome> run();

 private:
  Status prepare();
  Status probe_log_version();
  Status log_header();
  Status receive(const m::LogRound& l);
  Status start_replay();
  Status replay_until(uint64_t icount);
  Status finish_replay(m::LogRoundReply* reply);
  Status go_live();
  Status run_live();
  Result<m::Reply> dispatch(const m::Command& c, bool* done);
  Result<uint64_t> replay_icount();

  VmDestinationSession vm_;
  const m::Begin& begin_;
  std::string dir_, log_, image_;
  std::string header_;    // the replay log header this QEMU writes
  uint64_t written_ = 0;  // log bytes received
  ScopedFd log_fd_;
  // Not committed: their guards kill them (vm_destination_session.h).
  std::optional<VmQemu> replay_, live_;
};

// The VM's directory, the snapshot image, and the log header: a recording QEMU writes its log's
// version only when it exits, so the source's log starts with zeros until then; a QEMU of the
// binary here, recording nothing for an instant, tells which version it reads.
Status VmLogIncoming::prepare() {
  RELIVE_RETURN_IF_ERROR(vm_.make_dir("vm"));
  dir_ = vm_.dir();
  log_ = dir_ + "/replay.rr";
  image_ = dir_ + "/handover.qcow2";
  if (begin_.vm_args.empty()) return Status::InvalidArgument("no QEMU command line");
  RELIVE_RETURN_IF_ERROR(
      run_tool({"qemu-img", "create", "-q", "-f", "qcow2", image_, "64M"}, dir_));
  return probe_log_version();
}

Status VmLogIncoming::probe_log_version() {
  std::string socket = dir_ + "/probe.sock";
  VmDestinationSession::QemuStart start{
      {begin_.vm_args[0], "-machine", "none", "-nodefaults", "-no-user-config", "-display", "none",
       "-S", "-icount", "shift=0,rr=record,rrfile=" + dir_ + "/probe.rr", "-qmp",
       "unix:" + socket + ",server=on,wait=off"},
      socket,
      "the probing QEMU",
      "tools.log"};
  RELIVE_ASSIGN_OR_RETURN(VmQemu probe, vm_.start_qemu(std::move(start)));
  (void)probe.qmp.execute("quit");  // the answer may be lost as QEMU exits
  for (auto end = Clock::now() + kToolTimeout; probe.process.running();) {
    if (Clock::now() > end) return Status::IoError("the probing QEMU did not quit");
    std::this_thread::sleep_for(milliseconds(10));
  }
  return Status::Ok();
}

Status VmLogIncoming::log_header() {
  RELIVE_ASSIGN_OR_RETURN(std::string probe, read_file(dir_ + "/probe.rr"));
  if (probe.size() < kLogHeader) return Status::IoError("QEMU wrote no replay log header");
  header_ = probe.substr(0, kLogHeader);
  int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError("open " + log_, errno);
  log_fd_ = ScopedFd(fd);
  return Status::Ok();
}

// Appends a round's log bytes (the first round's header replaced by ours).
Status VmLogIncoming::receive(const m::LogRound& l) {
  if (!log_fd_.valid()) RELIVE_RETURN_IF_ERROR(log_header());
  transfer::BulkReceiver in(&vm_.link().channel());
  for (uint64_t remaining = l.bytes; remaining > 0;) {
    RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> events, in.next());
    for (const std::string& ev : events) {
      std::string data = ev.substr(8);
      if (data.size() > remaining) return Status::Corruption("log round longer than announced");
      if (written_ < kLogHeader) {
        size_t n = std::min<size_t>(kLogHeader - written_, data.size());
        data.replace(0, n, header_.substr(written_, n));
      }
      if (::write(log_fd_.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size()))
        return PosixError("write " + log_, errno);
      written_ += data.size();
      remaining -= data.size();
    }
  }
  return Status::Ok();
}

Status VmLogIncoming::start_replay() {
  VmDestinationSession::QemuStart start{{}, dir_ + "/replay.sock", "replaying QEMU"};
  RELIVE_ASSIGN_OR_RETURN(start.argv,
                          qemu::replay_args(begin_.vm_args, log_, image_, start.socket));
  RELIVE_ASSIGN_OR_RETURN(VmQemu q, vm_.start_qemu(std::move(start)));
  replay_.emplace(std::move(q));
  return Status::Ok();
}

Result<uint64_t> VmLogIncoming::replay_icount() {
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json r, replay_->qmp.execute("query-replay"));
  return json_value_or(r, "icount", uint64_t{0});
}

// Lets the replay run on up to `icount` (where it pauses by itself).
Status VmLogIncoming::replay_until(uint64_t icount) {
  if (!replay_) RELIVE_RETURN_IF_ERROR(start_replay());
  RELIVE_RETURN_IF_ERROR(replay_->check_alive());
  RELIVE_ASSIGN_OR_RETURN(uint64_t at, replay_icount());
  if (icount <= at) return Status::Ok();
  RELIVE_RETURN_IF_ERROR(replay_->qmp.execute("replay-break", {{"icount", icount}}).status());
  return replay_->qmp.execute("cont").status();
}

// The whole log is here: replay to its end (the source's quit, where -action shutdown=pause
// stops the VM), then save the VM there.
Status VmLogIncoming::finish_replay(m::LogRoundReply* reply) {
  auto start = Clock::now();
  if (!replay_) RELIVE_RETURN_IF_ERROR(start_replay());
  qemu::QmpClient& qmp = replay_->qmp;
  (void)qmp.execute("replay-delete-break");
  RELIVE_RETURN_IF_ERROR(qmp.execute("cont").status());
  for (;;) {
    RELIVE_RETURN_IF_ERROR(replay_->check_alive());
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json st, qmp.execute("query-status"));
    if (json_value_or(st, "status", "") == "shutdown") break;
    if (Clock::now() - start > kReplayTimeout) return Status::IoError("the replay did not end");
    std::this_thread::sleep_for(milliseconds(20));
  }
  reply->replay_ms = ms_since(start);
  auto saving = Clock::now();
  RELIVE_ASSIGN_OR_RETURN(
      nlohmann::json out,
      qmp.execute("human-monitor-command", {{"command-line", std::string("savevm ") + kTag}}));
  // HMP reports failures as text.
  if (out.is_string() && !out.get<std::string>().empty())
    return Status::IoError("savevm at the end of the replay: " + out.get<std::string>());
  reply->savevm_ms = ms_since(saving);
  (void)qmp.execute("quit");
  replay_.reset();  // kills it if the quit did not
  return Status::Ok();
}

// A QEMU that records anew, loaded from the snapshot, paused until the commit.
Status VmLogIncoming::go_live() {
  VmDestinationSession::QemuStart start{{}, dir_ + "/qmp.sock", "live QEMU"};
  RELIVE_ASSIGN_OR_RETURN(
      start.argv, qemu::live_args(begin_.vm_args, dir_ + "/live.rr", image_, kTag, start.socket));
  RELIVE_ASSIGN_OR_RETURN(VmQemu q, vm_.start_qemu(std::move(start)));
  live_.emplace(std::move(q));
  return Status::Ok();
}

Status VmLogIncoming::run_live() {
  if (!live_) return Status::Corruption("commit before the last log round");
  auto start = Clock::now();
  RELIVE_RETURN_IF_ERROR(live_->qmp.execute("cont").status());
  for (;;) {
    RELIVE_RETURN_IF_ERROR(live_->check_alive());
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json st, live_->qmp.execute("query-status"));
    if (json_value_or(st, "running", false)) break;
    if (Clock::now() - start > kLiveStartTimeout) return Status::IoError("the VM does not run");
    std::this_thread::sleep_for(milliseconds(10));
  }
  vm_.outcome().restore_ms = ms_since(start);
  return live_->process.release();
}

// Every command after the phase check (vm_destination_session.h).
Result<m::Reply> VmLogIncoming::dispatch(const m::Command& c, bool* done) {
  if (const auto* l = std::get_if<m::LogRound>(&c)) {
    RELIVE_RETURN_IF_ERROR(receive(*l));
    m::LogRoundReply reply;
    if (!l->final) {
      if (l->icount == 0) return Status::Corruption("a log round without an instruction count");
      RELIVE_RETURN_IF_ERROR(replay_until(l->icount));
      RELIVE_ASSIGN_OR_RETURN(reply.icount, replay_icount());
      return m::Reply{reply};
    }
    RELIVE_RETURN_IF_ERROR(finish_replay(&reply));
    auto loading = Clock::now();
    RELIVE_RETURN_IF_ERROR(go_live());
    reply.load_ms = ms_since(loading);
    return m::Reply{reply};
  }
  if (std::holds_alternative<m::Commit>(c)) {
    RELIVE_RETURN_IF_ERROR(run_live());
    *done = true;
    DestinationOutcome& o = vm_.outcome();
    o.root_pid = live_->process.pid();
    return m::Reply{m::OutcomeReply{o.root_pid, o.restore_ms, 0}};
  }
  if (std::holds_alternative<m::VmProgress>(c)) return m::Reply{};
  return VmDestinationSession::unexpected(c, "VM log-shipping migration");
}

Result<DestinationOutcome> VmLogIncoming::run() {
  Status ready = prepare();
  RELIVE_RETURN_IF_ERROR(
      vm_.answer_begin(ready.ok() ? Result<m::VmBeginReply>(m::VmBeginReply{0, 0, dir_}) : ready));
  RELIVE_RETURN_IF_ERROR(
      vm_.serve([this](const m::Command& c, bool* done) { return dispatch(c, done); }));
  DestinationOutcome& o = vm_.outcome();
  o.root_pid = o.init_pid = live_->process.pid();
  return o;
}

}  // namespace

Result<DestinationOutcome> serve_vm_log_shipping(transfer::Link* link, security::RequestGate* gate,
                                                 const DestinationOptions& options,
                                                 const m::Begin& begin) {
  VmLogIncoming in(link, gate, options, begin);
  return in.run();
}

}  // namespace relive::migrate
