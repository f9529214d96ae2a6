// Shared by the wire and trace tests: one sample of every event kind, a full header, and a
// temporary directory that removes itself.
#pragma once

#include <stdlib.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/check.h"
#include "common/file_util.h"
#include "wire/trace_types.h"

namespace relive::testing {

// Registers of a PreemptEvent: 27 words, the instruction pointer at its place.
inline std::string preempt_regs(uint64_t ip) {
  std::string regs(trace::kPreemptRegsBytes, '\0');
  for (size_t i = 0; i < regs.size(); ++i) regs[i] = static_cast<char>(i * 7);
  std::memcpy(regs.data() + trace::kPreemptIpOffset, &ip, sizeof ip);
  return regs;
}

inline std::vector<trace::Event> sample_events() {
  trace::SyscallEvent read;
  read.tid = 4711;
  read.nr = 0;  // read
  read.args = {3, 0x7ffd5a0c1000, 4096, 0, 0, 0};
  read.result = 17;
  read.writes = {{0x7ffd5a0c1000, std::string("hello\0world\n12345", 17)}};

  trace::SyscallEvent write;
  write.tid = 4712;
  write.nr = 1;  // write
  write.args = {1, 0x555555556000, 6, 0, 0, ~0ull};
  write.result = 6;
  write.stream = trace::Stream::kStdout;
  write.data_hash = 0x0123456789abcdefull;

  trace::SyscallEvent mmap;
  mmap.tid = 4711;
  mmap.nr = 9;  // mmap
  mmap.args = {0, 8192, 5, 2, 7, 0};
  mmap.result = 0x7f0012340000;
  mmap.mode = trace::SyscallMode::kMapFile;
  mmap.file = "0123456789abcdef0123456789abcdef";

  trace::SyscallEvent failed;
  failed.tid = 4711;
  failed.nr = 2;  // open
  failed.result = -2;
  failed.mode = trace::SyscallMode::kNative;
  failed.writes = {{0x1000, "a"}, {0x2000, ""}, {~0ull, std::string(300, '\xff')}};

  return {read,
          write,
          mmap,
          failed,
          trace::RdtscEvent{4711, 0x1122334455667788ull, 0, false},
          trace::RdtscEvent{4712, 42, 3, true},
          trace::SignalEvent{4711, 2, std::string(128, '\x01')},
          trace::ThreadExitEvent{4712},
          trace::SyscallEntryEvent{4711, 202},
          trace::DetachEvent{},
          trace::PreemptEvent{4712, preempt_regs(0x555555555340), 0xfeedfacecafebeefull},
          trace::ProcessExitEvent{0}};
}

inline trace::TraceHeader sample_header() {
  trace::TraceHeader h;
  h.start = trace::StartKind::kExec;
  h.program = "/usr/bin/cat";
  h.argv = {"cat", "-n", "file with spaces", std::string("\xff\xfe\0bin", 6)};
  h.env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", ""};
  h.cwd = "/home/user";
  h.exe_copy = "00112233445566778899aabbccddeeff";
  h.interp_path = "/lib64/ld-linux-x86-64.so.2";
  h.interp_copy = "ffeeddccbbaa99887766554433221100";
  h.at_random_addr = 0x7ffc12345678;
  h.at_random = std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16);
  h.initial_tid = 4711;
  h.hostname = "builder";
  h.kernel = "Linux 6.1.0-13-amd64";
  h.start_realtime_ns = 1700000000123456789;
  return h;
}

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/relive-test-XXXXXX";
    RELIVE_CHECK(mkdtemp(tmpl.data()) != nullptr, "mkdtemp {}", tmpl);
    path_ = tmpl;
  }
  ~TempDir() { (void)remove_tree(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace relive::testing
