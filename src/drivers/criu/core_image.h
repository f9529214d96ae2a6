// The process-wide state in a CRIU core image that relive's fast per-epoch capture does not
// re-read from CRIU: interval timers and signal actions. A dump holds core-<pid>.img per thread
// (u32 IMG_COMMON_MAGIC, u32 CORE_MAGIC, then one length-prefixed CoreEntry protobuf;
// images/core.proto); the thread-group leader's carries this state in CoreEntry.tc.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "relive/result.h"

namespace relive::criu {

// One of setitimer(2)'s timers; zero value_us is disarmed.
struct ITimer {
  uint64_t interval_us = 0;
  uint64_t value_us = 0;  // time left until it fires
  bool operator==(const ITimer&) const = default;
};

// One signal's action, as rt_sigaction(2) reports it.
struct SigAction {
  int signo = 0;
  uint64_t handler = 0;  // SIG_DFL (0), SIG_IGN (1) or the handler's address
  uint64_t flags = 0;    // SA_*
  uint64_t restorer = 0;
  uint64_t mask = 0;    // bit (n - 1) blocks signal n during the handler
  bool compat = false;  // set by a 32-bit (compat) process
  bool operator==(const SigAction&) const = default;
};

struct TaskCoreState {
  ITimer real, virt, prof;  // all zero when the image carries no timers
  // Signals 1..64 but SIGKILL and SIGSTOP, in order; empty when the image carries none (old
  // CRIU images kept them in a sigacts image of their own).
  std::vector<SigAction> sigactions;
};

// Decodes a thread-group leader's core image. Corruption on a bad magic, a truncated or
// undecodable entry, a missing required field, an entry without task state (a non-leader
// thread's), a sigaction count other than 62 (or 0); Unsupported for a non-x86-64 image.
Result<TaskCoreState> decode_task_core(std::string_view core_image);

}  // namespace relive::criu
