#include "drivers/criu/core_image.h"

#include <fmt/format.h>
#include <signal.h>

#include <array>
#include <optional>

#include "drivers/criu/pb_reader.h"

namespace relive::criu {
namespace {

// From CRIU's criu/include/magic.h.
constexpr uint32_t kImgCommonMagic = 0x54564319;
constexpr uint32_t kCoreMagic = 0x55053847;
// CRIU dumps one sigaction per signal 1..SIGMAX (64 on x86-64) but SIGKILL and SIGSTOP, in
// order, and restores only that many (criu/sigact.c).
constexpr int kSigMax = 64;
constexpr size_t kSigactionCount = kSigMax - 2;
constexpr uint64_t kMarchX86_64 = 1;  // core_entry.march
constexpr uint64_t kUsecPerSec = 1000000;

// Field numbers from images/core.proto, timer.proto and sa.proto.
enum : uint32_t { kCoreMtype = 1, kCoreTc = 3 };
enum : uint32_t { kTcTimers = 7, kTcSigactions = 15 };
enum : uint32_t { kTimersReal = 1, kTimersVirt = 2, kTimersProf = 3 };
enum : uint32_t { kItimerIsec = 1, kItimerIusec = 2, kItimerVsec = 3, kItimerVusec = 4 };
enum : uint32_t { kSaHandler = 1, kSaFlags = 2, kSaRestorer = 3, kSaMask = 4, kSaCompat = 5 };

void no_varint(uint32_t, uint64_t) {}
bool no_nested(uint32_t, std::string_view) { return true; }

// The varint fields 1..kMaxField of a message of scalars; absent ones are zero.
struct Varints {
  static constexpr uint32_t kMaxField = 8;
  std::array<uint64_t, kMaxField + 1> value{};
  uint32_t seen = 0;  // bit f: the message holds field f
  // Whether the message holds fields 1..last (its required ones).
  bool has_first(uint32_t last) const { return (~seen & ((2u << last) - 2)) == 0; }
};

bool read_varints(std::string_view message, Varints* out) {
  return pb::walk(
      message,
      [&](uint32_t f, uint64_t v) {
        if (f > Varints::kMaxField) return;
        out->value[f] = v;
        out->seen |= 1u << f;
      },
      no_nested);
}

Result<uint64_t> to_us(uint64_t sec, uint64_t usec) {
  if (usec >= kUsecPerSec || sec > (UINT64_MAX - usec) / kUsecPerSec)
    return Status::Corruption("itimer entry holds an invalid time");
  return sec * kUsecPerSec + usec;
}

Status decode_itimer(std::string_view message, ITimer* timer) {
  Varints v;
  if (!read_varints(message, &v) || !v.has_first(kItimerVusec))
    return Status::Corruption("itimer entry does not decode");
  RELIVE_ASSIGN_OR_RETURN(timer->interval_us, to_us(v.value[kItimerIsec], v.value[kItimerIusec]));
  RELIVE_ASSIGN_OR_RETURN(timer->value_us, to_us(v.value[kItimerVsec], v.value[kItimerVusec]));
  return Status::Ok();
}

Status decode_timers(std::string_view message, TaskCoreState* state) {
  Status st;
  uint32_t seen = 0;
  bool ok = pb::walk(message, no_varint, [&](uint32_t f, std::string_view b) {
    ITimer* timer = f == kTimersReal   ? &state->real
                    : f == kTimersVirt ? &state->virt
                    : f == kTimersProf ? &state->prof
                                       : nullptr;
    if (timer == nullptr) return true;  // POSIX timers
    seen |= 1u << f;
    st = decode_itimer(b, timer);
    return st.ok();
  });
  if (!st.ok()) return st;
  constexpr uint32_t kAll = (1u << kTimersReal) | (1u << kTimersVirt) | (1u << kTimersProf);
  if (!ok || seen != kAll) return Status::Corruption("task timers entry does not decode");
  return Status::Ok();
}

Status decode_sigaction(std::string_view message, SigAction* sa) {
  Varints v;
  if (!read_varints(message, &v) || !v.has_first(kSaMask))
    return Status::Corruption("sigaction entry does not decode");
  sa->handler = v.value[kSaHandler];
  sa->flags = v.value[kSaFlags];
  sa->restorer = v.value[kSaRestorer];
  sa->mask = v.value[kSaMask];
  sa->compat = v.value[kSaCompat] != 0;
  return Status::Ok();
}

// Gives each sigaction its signal number, in CRIU's dump order.
void number_signals(std::vector<SigAction>* sigactions) {
  int signo = 1;
  for (SigAction& sa : *sigactions) {
    while (signo == SIGKILL || signo == SIGSTOP) ++signo;
    sa.signo = signo++;
  }
}

Status decode_task_core_entry(std::string_view message, TaskCoreState* state) {
  Status st;
  bool ok = pb::walk(message, no_varint, [&](uint32_t f, std::string_view b) {
    if (f == kTcTimers) {
      st = decode_timers(b, state);
    } else if (f == kTcSigactions) {
      if (state->sigactions.size() == kSigactionCount)
        st = Status::Corruption("task core entry holds too many sigactions");
      else
        st = decode_sigaction(b, &state->sigactions.emplace_back());
    }
    return st.ok();
  });
  if (!st.ok()) return st;
  if (!ok) return Status::Corruption("task core entry does not decode");
  if (!state->sigactions.empty() && state->sigactions.size() != kSigactionCount)
    return Status::Corruption(fmt::format("task core entry holds {} sigactions, not {}",
                                          state->sigactions.size(), kSigactionCount));
  number_signals(&state->sigactions);
  return Status::Ok();
}

}  // namespace

Result<TaskCoreState> decode_task_core(std::string_view core_image) {
  if (core_image.size() < 8 || pb::le32(core_image, 0) != kImgCommonMagic ||
      pb::le32(core_image, 4) != kCoreMagic)
    return Status::Corruption("not a CRIU core image (bad magic)");
  std::string_view rest = core_image.substr(8), entry;
  if (!pb::next_object(&rest, &entry))
    return Status::Corruption("core image ends inside its entry");
  if (!rest.empty()) return Status::Corruption("core image holds more than one entry");
  std::optional<uint64_t> mtype;
  std::optional<std::string_view> tc;
  bool ok = pb::walk(
      entry,
      [&](uint32_t f, uint64_t v) {
        if (f == kCoreMtype) mtype = v;
      },
      [&](uint32_t f, std::string_view b) {
        if (f != kCoreTc) return true;
        if (tc) return false;  // CRIU writes it once
        tc = b;
        return true;
      });
  if (!ok || !mtype) return Status::Corruption("core entry does not decode");
  if (*mtype != kMarchX86_64)
    return Status::Unsupported(fmt::format("core image of architecture {}, not x86-64", *mtype));
  if (!tc)
    return Status::Corruption("core entry holds no task state (not a thread-group leader's)");
  TaskCoreState state;
  RELIVE_RETURN_IF_ERROR(decode_task_core_entry(*tc, &state));
  return state;
}

}  // namespace relive::criu
