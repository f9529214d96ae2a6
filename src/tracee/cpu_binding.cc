#include "tracee/cpu_binding.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>
#include <vector>

#include "common/process_tree.h"

namespace relive::tracee {
namespace {

cpu_set_t only(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return set;
}

int pick_from(const cpu_set_t& allowed) {
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  if (cpus.empty()) return -1;
  std::random_device rd;
  return cpus[std::uniform_int_distribution<size_t>(0, cpus.size() - 1)(rd)];
}

}  // namespace

Result<int> parse_cpu_choice(std::string_view text) {
  if (text == "any") return kAnyCpu;
  if (text == "none") return kNoCpu;
  int cpu = -1;
  auto [p, err] = std::from_chars(text.data(), text.data() + text.size(), cpu);
  if (err != std::errc() || p != text.data() + text.size() || cpu < 0 || cpu >= CPU_SETSIZE)
    return Status::InvalidArgument("--cpu: expected any, none or a CPU number, got '" +
                                   std::string(text) + "'");
  return cpu;
}

Result<CpuBinding> CpuBinding::bind_caller(int choice) {
  CpuBinding b;
  if (choice == kNoCpu) return b;
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0)
    return PosixError("sched_getaffinity", errno);
  int cpu = choice == kAnyCpu ? pick_from(allowed) : choice;
  if (choice >= 0 && !CPU_ISSET(choice, &allowed))
    return Status::InvalidArgument("--cpu " + std::to_string(choice) +
                                   ": not a CPU this process may run on");
  cpu_set_t set = only(cpu);
  if (cpu < 0 || ::sched_setaffinity(0, sizeof set, &set) != 0) {
    if (choice >= 0) return PosixError("bind to CPU " + std::to_string(choice), errno);
    spdlog::debug("not bound to a CPU: {}", std::strerror(errno));
    return b;
  }
  b.cpu_ = cpu;
  b.caller_bound_ = true;
  b.caller_mask_ = allowed;
  return b;
}

CpuBinding::CpuBinding(CpuBinding&& other) noexcept { *this = std::move(other); }

CpuBinding& CpuBinding::operator=(CpuBinding&& other) noexcept {
  if (this != &other) {
    restore();
    cpu_ = std::exchange(other.cpu_, -1);
    caller_bound_ = std::exchange(other.caller_bound_, false);
    caller_mask_ = other.caller_mask_;
    processes_ = std::move(other.processes_);
    other.processes_.clear();
  }
  return *this;
}

void CpuBinding::bind_process(pid_t pid) {
  if (cpu_ < 0) return;
  cpu_set_t set = only(cpu_);
  auto& saved = processes_[pid];
  for (pid_t tid : threads_of(pid)) {
    cpu_set_t mask;
    if (saved.count(tid) || ::sched_getaffinity(tid, sizeof mask, &mask) != 0) continue;
    if (::sched_setaffinity(tid, sizeof set, &set) == 0) saved.emplace(tid, mask);
  }
}

void CpuBinding::restore() {
  for (const auto& [pid, saved] : processes_) {
    if (saved.empty()) continue;
    auto first = saved.find(pid);
    const cpu_set_t& fallback = first != saved.end() ? first->second : saved.begin()->second;
    for (pid_t tid : threads_of(pid)) {
      auto it = saved.find(tid);
      const cpu_set_t& mask = it != saved.end() ? it->second : fallback;
      ::sched_setaffinity(tid, sizeof mask, &mask);  // a thread gone meanwhile: nothing to do
    }
  }
  processes_.clear();
  if (caller_bound_) ::sched_setaffinity(0, sizeof caller_mask_, &caller_mask_);
  caller_bound_ = false;
  cpu_ = -1;
}

}  // namespace relive::tracee
