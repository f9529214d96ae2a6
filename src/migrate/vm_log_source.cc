#include "migrate/vm_log_source.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/json_field.h"
#include "common/logging.h"
#include "common/process_tree.h"
#include "drivers/qemu/record_replay_args.h"
#include "migrate/peer_replies.h"
#include "migrate/vm_source_session.h"
#include "transfer/bulk.h"

namespace relive::migrate {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace m = relive::migration;

constexpr milliseconds kRoundEvery{1000};
constexpr milliseconds kFlushWait{10000};
constexpr milliseconds kQuitTimeout{30000};
// The destination answers the last round once its replay has reached the log's end: as long as
// it takes (relived gives up after 10 minutes). The source has quit by then, so giving up
// earlier would only turn a slow switch-over into a failed one.
constexpr milliseconds kFinalReplayTimeout{660000};
// Rounds in a row in which the replay fell further behind before relive stops waiting for it.
constexpr int kLosingRounds = 3;
// QEMU writes its log through a stdio buffer (4 KiB) and the replay reads one event ahead: a
// count is safe to replay to once the file has grown this much past its size when it was read.
constexpr uint64_t kFlushMargin = 64 << 10;
constexpr size_t kChunk = 1 << 20;

// The process has exited (gone, or a zombie its parent has not reaped yet).
bool exited(pid_t pid) {
  char s = task_state(pid);
  return s == '\0' || s == 'Z';
}

uint64_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

class VmLogSource {
 public:
  explicit VmLogSource(const MigrateOptions& o) : o_(o), start_(Clock::now()), vm_(o) {}
  VmLogSource(const VmLogSource&) = delete;
  VmLogSource& operator=(const VmLogSource&) = delete;

  Result<MigrateReport> run();

 private:
  Status open();
  Status begin_at_destination();
  Result<uint64_t> safe_icount();
  Result<m::Reply> ship(uint64_t icount, bool final, const char* phase);
  Status rounds();
  Status switch_over();
  Status quit_source();
  Status commit();

  const MigrateOptions& o_;
  Clock::time_point start_, stop_;
  // Rolls back (the VM runs on) unless the source QEMU was told to quit: no way back after that.
  VmSourceSession vm_;
  std::string log_;  // the source's log, absolute
  uint64_t shipped_ = 0;
  MigrateReport report_;
};

Status VmLogSource::open() {
  if (!o_.service_address.empty()) {
    return Status::InvalidArgument(
        "--service-address: log shipping moves network-less VMs only (docs/vm.md)");
  }
  RELIVE_RETURN_IF_ERROR(vm_.attach());
  RELIVE_ASSIGN_OR_RETURN(qemu::RecordOptions rec, qemu::record_options(vm_.argv()));
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json replay, vm_.qmp().execute("query-replay"));
  if (json_value_or(replay, "mode", "") != "record")
    return Status::InvalidArgument("QEMU is not recording (query-replay: " + replay.dump() + ")");
  log_ = rec.rrfile;
  if (!log_.starts_with("/")) {
    char cwd[4096];
    ssize_t n =
        ::readlink(fmt::format("/proc/{}/cwd", vm_.qemu_pid()).c_str(), cwd, sizeof cwd - 1);
    if (n <= 0) return PosixError("QEMU's working directory", errno);
    log_ = std::string(cwd, n) + "/" + log_;
  }
  if (!vm_.was_running())
    return Status::InvalidArgument("the VM is " + vm_.run_state() + ", not running");
  vm_.progress(
      fmt::format("vm: QEMU {} pid {} records into {}", vm_.qmp().version(), vm_.qemu_pid(), log_));
  return Status::Ok();
}

Status VmLogSource::begin_at_destination() {
  m::Begin b;
  b.strategy = m::Strategy::kLogShipping;
  RELIVE_ASSIGN_OR_RETURN(m::Reply begun, vm_.begin(std::move(b)));
  RELIVE_ASSIGN_OR_RETURN(m::VmBeginReply reply,
                          reply_as<m::VmBeginReply>(begun, "the VM destination's reply to begin"));
  report_.vm_dir = reply.dir;
  vm_.progress("vm: destination replays in " + report_.vm_dir);
  return Status::Ok();
}

// The guest's instruction count, once QEMU has surely written the log up to it.
Result<uint64_t> VmLogSource::safe_icount() {
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json r, vm_.qmp().execute("query-replay"));
  uint64_t icount = json_value_or(r, "icount", uint64_t{0});
  uint64_t want = file_size(log_) + kFlushMargin;
  for (auto end = Clock::now() + kFlushWait; file_size(log_) < want;) {
    if (Clock::now() > end) return uint64_t{0};  // a quiet guest: try again next round
    std::this_thread::sleep_for(milliseconds(20));
  }
  return icount;
}

// Ships the log's new bytes; the destination's answer.
Result<m::Reply> VmLogSource::ship(uint64_t icount, bool final, const char* phase) {
  RELIVE_ASSIGN_OR_RETURN(std::string all, read_file(log_));
  if (all.size() < shipped_) return Status::Corruption("the source's log shrank");
  std::string_view fresh = std::string_view(all).substr(shipped_);
  uint32_t round = static_cast<uint32_t>(++report_.rounds);
  RELIVE_RETURN_IF_ERROR(vm_.link().send(m::LogRound{round, fresh.size(), final, icount}));
  transfer::BulkSender out(&vm_.link().channel());
  for (size_t at = 0; at < fresh.size(); at += kChunk) {
    std::string ev = transfer::event_header(0, 0);
    ev.append(fresh.substr(at, kChunk));
    RELIVE_RETURN_IF_ERROR(out.add(ev));
  }
  RELIVE_RETURN_IF_ERROR(out.flush());
  RELIVE_ASSIGN_OR_RETURN(m::Reply reply, vm_.link().wait_reply());
  shipped_ += fresh.size();
  report_.bytes_total += out.wire_bytes();
  report_.bytes_by_phase[phase] += out.wire_bytes();
  return reply;
}

// Until the destination's replay has caught up with the previous round (or the round/time
// limits), ship every second.
Status VmLogSource::rounds() {
  uint64_t previous = 0;
  uint64_t lag = 0;  // instructions the replay was behind the source's count, last round
  int losing = 0;    // rounds in a row in which that grew
  for (int n = 0;; ++n) {
    RELIVE_ASSIGN_OR_RETURN(uint64_t icount, safe_icount());
    if (icount == 0) continue;
    RELIVE_ASSIGN_OR_RETURN(m::Reply shipped, ship(icount, false, "log"));
    RELIVE_ASSIGN_OR_RETURN(
        m::LogRoundReply round,
        reply_as<m::LogRoundReply>(shipped, "the VM destination's reply to a log round"));
    uint64_t at = round.icount;
    vm_.progress(fmt::format("vm: round {} {} log bytes, replay at {} of {}", report_.rounds,
                             shipped_, at, icount));
    if (previous > 0 && at >= previous) {
      report_.reason = "the replay caught up";
      return Status::Ok();
    }
    // A replay slower than the recording (QEMU's replay of an idle guest is, here) never
    // catches up: every further round only adds to what the switch-over must replay.
    uint64_t behind = icount > at ? icount - at : 0;
    losing = n > 0 && behind > lag ? losing + 1 : 0;
    lag = behind;
    if (losing >= kLosingRounds) {
      report_.reason = "the replay is slower than the source: waiting would lengthen the downtime";
      return Status::Ok();
    }
    if (n + 1 >= o_.max_rounds || Clock::now() - start_ > o_.max_time) {
      report_.reason = "round or time limit: the replay lags";
      return Status::Ok();
    }
    previous = icount;
    std::this_thread::sleep_for(kRoundEvery);
  }
}

// QEMU writes the rest of its log only as it exits.
Status VmLogSource::quit_source() {
  pid_t qemu = vm_.qemu_pid();
  vm_.settle();
  (void)vm_.qmp().execute("quit");  // the answer may be lost as QEMU exits
  for (auto end = Clock::now() + kQuitTimeout; !exited(qemu);) {
    if (Clock::now() > end) return Status::IoError("the source QEMU did not quit");
    std::this_thread::sleep_for(milliseconds(10));
  }
  return Status::Ok();
}

Status VmLogSource::switch_over() {
  stop_ = Clock::now();
  RELIVE_RETURN_IF_ERROR(vm_.qmp().execute("stop").status());
  RELIVE_RETURN_IF_ERROR(quit_source());
  vm_.link().channel().set_timeout(kFinalReplayTimeout);
  RELIVE_ASSIGN_OR_RETURN(m::Reply shipped, ship(0, true, "downtime"));
  vm_.link().channel().set_timeout(o_.io_timeout);
  // The source has quit: the commit must follow whatever the reply says; a reply we cannot
  // read only loses its figures from the report.
  Result<m::LogRoundReply> last =
      reply_as<m::LogRoundReply>(shipped, "the VM destination's reply to the last log round");
  if (last.ok()) {
    report_.vm["replay_ms"] = last->replay_ms;
    report_.vm["savevm_ms"] = last->savevm_ms;
    report_.vm["load_ms"] = last->load_ms;
  } else {
    RELIVE_LOG_WARN("{}", last.status().to_string());
  }
  return commit();
}

Status VmLogSource::commit() {
  vm_.progress("vm: commit");
  RELIVE_ASSIGN_OR_RETURN(m::Reply acked, vm_.link().call_reply(m::Commit{}));
  // Committed: a reply we cannot read only loses its figures from the report.
  Result<m::OutcomeReply> reply =
      reply_as<m::OutcomeReply>(acked, "the VM destination's commit reply");
  if (reply.ok()) {
    report_.restore_ms = reply->restore_ms;
    report_.destination_pid = reply->root_pid;
  } else {
    RELIVE_LOG_WARN("commit acknowledged: {}", reply.status().to_string());
  }
  report_.downtime_ms = ms_between(stop_, Clock::now());
  return Status::Ok();
}

Result<MigrateReport> VmLogSource::run() {
  report_.strategy = "log-shipping";
  RELIVE_RETURN_IF_ERROR(open());
  RELIVE_RETURN_IF_ERROR(begin_at_destination());
  RELIVE_RETURN_IF_ERROR(rounds());
  Status switched = switch_over();
  vm_.settle();
  if (!switched.ok())
    return switched.with_context(
        "the source QEMU had quit (the only way to make it write the end of its log): its log " +
        log_ + " is complete and can be replayed");
  report_.total_ms = ms_between(start_, Clock::now());
  report_.vm["log_bytes"] = static_cast<double>(shipped_);
  return report_;
}

}  // namespace

Result<MigrateReport> run_vm_log_shipping(const MigrateOptions& options) {
  VmLogSource s(options);
  return s.run();
}

}  // namespace relive::migrate
