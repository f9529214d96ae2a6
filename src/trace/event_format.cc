#include "trace/event_format.h"

#include <fmt/format.h>
#include <sys/wait.h>

#include <cctype>
#include <csignal>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "common/shell_quote.h"
#include "tracee/syscall_table.h"

namespace relive::trace {
namespace {

using json = nlohmann::ordered_json;  // keeps keys in the order written

// Errors come back from the kernel as -1 .. -4095.
constexpr int64_t kMaxErrno = 4095;

bool is_shell_safe(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!(std::isalnum(c) || std::strchr("_@%+=:,./-", c) != nullptr)) return false;
  }
  return true;
}

// Quotes `s` the way a shell would accept it: bare when safe, '...' when printable,
// $'...' with escapes otherwise (argv and env may hold any bytes).
std::string display_quote(std::string_view s) {
  if (is_shell_safe(s)) return std::string(s);
  bool printable = true;
  for (unsigned char c : s) printable = printable && c >= 0x20 && c < 0x7f;
  if (printable) return relive::shell_quote(s);
  std::string out = "$'";
  for (unsigned char c : s) {
    if (c == '\'' || c == '\\')
      out += fmt::format("\\{}", static_cast<char>(c));
    else if (c >= 0x20 && c < 0x7f)
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out + "'";
}

std::string join_quoted(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) out += ' ';
    out += display_quote(s);
  }
  return out;
}

std::string hex_bytes(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += fmt::format("{:02x}", c);
  return out;
}

// Small numbers (fds, sizes, flags) read best in decimal, addresses in hex.
std::string value_text(uint64_t v) {
  auto s = static_cast<int64_t>(v);
  if (v < 0x10000 || (s < 0 && s >= -kMaxErrno)) return std::to_string(s);
  return fmt::format("{:#x}", v);
}

std::string result_text(int64_t r) {
  if (r < 0 && r >= -kMaxErrno) {
    const char* name = strerrorname_np(static_cast<int>(-r));
    return name ? fmt::format("{} {}", r, name) : std::to_string(r);
  }
  return value_text(static_cast<uint64_t>(r));
}

std::string syscall_label(int nr) {
  const char* name = tracee::syscall_name(nr);
  return name ? name : fmt::format("syscall_{}", nr);
}

const char* mode_name(SyscallMode m) {
  switch (m) {
    case SyscallMode::kEmulated:
      return "emulated";
    case SyscallMode::kNative:
      return "native";
    case SyscallMode::kMapFile:
      return "map_file";
  }
  return "unknown";
}

const char* stream_name(Stream s) {
  switch (s) {
    case Stream::kNone:
      return "none";
    case Stream::kStdout:
      return "stdout";
    case Stream::kStderr:
      return "stderr";
  }
  return "unknown";
}

std::string tsc_text(TscTrapping t) {
  switch (t) {
    case TscTrapping::kTrapped:
      return "trapped (every rdtsc/rdtscp is recorded)";
    case TscTrapping::kUntrapped:
      return "not trapped (rdtsc/rdtscp ran unrecorded: the host cannot trap it, or --pid)";
    default:
      return "unknown";
  }
}

const char* tsc_name(TscTrapping t) {
  switch (t) {
    case TscTrapping::kTrapped:
      return "trapped";
    case TscTrapping::kUntrapped:
      return "untrapped";
    default:
      return "unknown";
  }
}

std::string realtime_text(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  char buf[32];
  if (ns < 0 || gmtime_r(&secs, &tm) == nullptr ||
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
    return std::to_string(ns);
  }
  return fmt::format("{} ({}.{:09}Z)", ns, buf, ns % 1000000000);
}

std::string syscall_text(const SyscallEvent& s) {
  std::string args;
  for (int i = 0; i < tracee::syscall_arg_count(s.nr); ++i) {
    args += (i ? ", " : "") + value_text(s.args[i]);
  }
  std::string out = fmt::format("tid {} syscall {}({}) = {} [{}]", s.tid, syscall_label(s.nr), args,
                                result_text(s.result), mode_name(s.mode));
  if (!s.writes.empty()) {
    size_t bytes = 0;
    for (const MemWrite& w : s.writes) bytes += w.data.size();
    out += fmt::format(" writes {} ({} bytes)", s.writes.size(), bytes);
  }
  if (s.stream != Stream::kNone) out += fmt::format(" to {}", stream_name(s.stream));
  if (s.data_hash != 0) out += fmt::format(" hash {:#018x}", s.data_hash);
  if (!s.file.empty()) out += " file " + s.file;
  if (!s.shared_key.empty()) out += " shared " + s.shared_key;
  if (s.continued) out += " (continued by the next write)";
  return out;
}

json syscall_json(const SyscallEvent& s) {
  json writes = json::array();
  for (const MemWrite& w : s.writes) writes.push_back({{"addr", w.addr}, {"len", w.data.size()}});
  return {{"type", "syscall"},           {"tid", s.tid},     {"nr", s.nr},
          {"name", syscall_label(s.nr)}, {"args", s.args},   {"result", s.result},
          {"mode", mode_name(s.mode)},   {"writes", writes}, {"stream", stream_name(s.stream)},
          {"data_hash", s.data_hash},    {"file", s.file},   {"shared_key", s.shared_key},
          {"continued", s.continued}};
}

json process_exit_json(const ProcessExitEvent& p) {
  json j = {{"type", "process_exit"}, {"status", p.status}};
  if (WIFEXITED(p.status)) j["exit_code"] = WEXITSTATUS(p.status);
  if (WIFSIGNALED(p.status)) {
    j["term_signal"] = signal_name(WTERMSIG(p.status));
    j["core_dumped"] = WCOREDUMP(p.status) != 0;
  }
  return j;
}

// Paths and argv may not be UTF-8; invalid bytes become U+FFFD rather than an exception.
std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::string signal_name(int signo) {
  if (signo >= SIGRTMIN && signo <= SIGRTMAX) return fmt::format("SIGRTMIN+{}", signo - SIGRTMIN);
  const char* abbrev = sigabbrev_np(signo);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", signo);
}

std::string wait_status_text(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return fmt::format("killed by {}{}", signal_name(WTERMSIG(status)),
                       WCOREDUMP(status) ? " (core dumped)" : "");
  }
  return fmt::format("wait status {:#x}", status);
}

std::string header_text(const TraceHeader& h) {
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    out += fmt::format("{}: {}\n", key, value);
  };
  line("format_version", std::to_string(h.version));
  line("start", h.start == StartKind::kExec ? "exec" : "checkpoint");
  line("program", display_quote(h.program));
  line("argv", join_quoted(h.argv));
  line("env", join_quoted(h.env));
  line("cwd", display_quote(h.cwd));
  line("exe_copy", h.exe_copy);
  line("interp_path", display_quote(h.interp_path));
  line("interp_copy", h.interp_copy);
  line("at_random_addr", fmt::format("{:#x}", h.at_random_addr));
  line("at_random", hex_bytes(h.at_random));
  line("checkpoint", h.checkpoint);
  line("initial_tid", std::to_string(h.initial_tid));
  if (!h.other_threads.empty()) {
    std::string threads;
    for (const auto& [recorded, in_checkpoint] : h.other_threads)
      threads +=
          fmt::format("{}{} (checkpoint {})", threads.empty() ? "" : " ", recorded, in_checkpoint);
    line("other_threads", threads);
  }
  line("hostname", h.hostname);
  line("kernel", h.kernel);
  line("start_realtime_ns", realtime_text(h.start_realtime_ns));
  line("rdtsc", tsc_text(h.rdtsc));
  return out;
}

std::string header_json(const TraceHeader& h) {
  json j = {{"format_version", h.version},
            {"start", h.start == StartKind::kExec ? "exec" : "checkpoint"},
            {"program", h.program},
            {"argv", h.argv},
            {"env", h.env},
            {"cwd", h.cwd},
            {"exe_copy", h.exe_copy},
            {"interp_path", h.interp_path},
            {"interp_copy", h.interp_copy},
            {"at_random_addr", h.at_random_addr},
            {"at_random", hex_bytes(h.at_random)},
            {"checkpoint", h.checkpoint},
            {"initial_tid", h.initial_tid},
            {"hostname", h.hostname},
            {"kernel", h.kernel},
            {"start_realtime_ns", h.start_realtime_ns},
            {"rdtsc", tsc_name(h.rdtsc)}};
  if (!h.other_threads.empty()) {
    json threads = json::array();
    for (const auto& [recorded, in_checkpoint] : h.other_threads)
      threads.push_back({{"recorded_tid", recorded}, {"checkpoint_tid", in_checkpoint}});
    j["other_threads"] = threads;
  }
  return dump_json({{"header", j}});
}

std::string event_text(uint64_t index, const Event& e) {
  struct Visitor {
    std::string operator()(const SyscallEvent& s) const { return syscall_text(s); }
    std::string operator()(const RdtscEvent& r) const {
      std::string out =
          fmt::format("tid {} {} = {:#x}", r.tid, r.rdtscp ? "rdtscp" : "rdtsc", r.tsc);
      return r.rdtscp ? out + fmt::format(" aux {:#x}", r.aux) : out;
    }
    std::string operator()(const SignalEvent& s) const {
      return fmt::format("tid {} signal {}", s.tid, signal_name(s.signo));
    }
    std::string operator()(const ThreadExitEvent& t) const {
      return fmt::format("tid {} thread exit", t.tid);
    }
    std::string operator()(const ProcessExitEvent& p) const { return wait_status_text(p.status); }
    std::string operator()(const SyscallEntryEvent& s) const {
      return fmt::format("tid {} syscall-entry {}", s.tid, syscall_label(s.nr));
    }
    std::string operator()(const DetachEvent& d) const {
      return d.parked_tid != 0
                 ? fmt::format("detach (thread {} parked at its next syscall)", d.parked_tid)
                 : "detach";
    }
    std::string operator()(const PreemptEvent& p) const {
      return fmt::format("tid {} preempted at ip {:#x} (state {:016x})", p.tid, preempt_ip(p),
                         p.state_hash);
    }
    std::string operator()(const SitePatchEvent& p) const {
      return fmt::format("tid {} patched syscall site {:#x} -> stub {:#x}{}", p.tid, p.site, p.stub,
                         p.new_page ? " (new stub page)" : "");
    }
  };
  return fmt::format("#{} {}", index, std::visit(Visitor{}, e));
}

std::string event_json(uint64_t index, const Event& e) {
  struct Visitor {
    json operator()(const SyscallEvent& s) const { return syscall_json(s); }
    json operator()(const RdtscEvent& r) const {
      return {
          {"type", "rdtsc"}, {"tid", r.tid}, {"tsc", r.tsc}, {"aux", r.aux}, {"rdtscp", r.rdtscp}};
    }
    json operator()(const SignalEvent& s) const {
      return {{"type", "signal"},
              {"tid", s.tid},
              {"signo", s.signo},
              {"name", signal_name(s.signo)},
              {"siginfo_len", s.siginfo.size()}};
    }
    json operator()(const ThreadExitEvent& t) const {
      return {{"type", "thread_exit"}, {"tid", t.tid}};
    }
    json operator()(const ProcessExitEvent& p) const { return process_exit_json(p); }
    json operator()(const SyscallEntryEvent& s) const {
      return {
          {"type", "syscall_entry"}, {"tid", s.tid}, {"nr", s.nr}, {"name", syscall_label(s.nr)}};
    }
    json operator()(const DetachEvent& d) const {
      return {{"type", "detach"}, {"parked_tid", d.parked_tid}};
    }
    json operator()(const PreemptEvent& p) const {
      return {
          {"type", "preempt"}, {"tid", p.tid}, {"ip", preempt_ip(p)}, {"state_hash", p.state_hash}};
    }
    json operator()(const SitePatchEvent& p) const {
      return {{"type", "site_patch"},     {"tid", p.tid},
              {"site", p.site},           {"stub", p.stub},
              {"stub_page", p.stub_page}, {"new_page", p.new_page}};
    }
  };
  json j = {{"index", index}};
  j.update(std::visit(Visitor{}, e));
  return dump_json(j);
}

}  // namespace relive::trace
