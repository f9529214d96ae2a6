// SubjectProcess: a test subject from tests/subjects run as a child with its stdin and stdout on
// pipes, driven one command line at a time (see dirty_writer.c). The constructor returns once
// the program answers an "addr" command. Killed and reaped on destruction.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace relive::testing {

class SubjectProcess {
 public:
  explicit SubjectProcess(const std::string& name, const std::vector<std::string>& args) {
    std::string path = test_bin_dir() + "/subjects/" + name;
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();  // its own session, so that CRIU can dump it without --shell-job
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      std::vector<char*> argv{const_cast<char*>(path.c_str())};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = ::fdopen(in[1], "w");
    from_ = ::fdopen(out[0], "r");
    hello_ = cmd("addr");  // answered once the program runs (not the fork before its exec)
  }
  ~SubjectProcess() {
    if (to_) ::fclose(to_);
    if (from_) ::fclose(from_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  SubjectProcess(const SubjectProcess&) = delete;
  SubjectProcess& operator=(const SubjectProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& hello() const { return hello_; }  // the answer to "addr"

  // Sends one command line and returns the answer line without its newline ("" if none).
  std::string cmd(const std::string& line) {
    std::fprintf(to_, "%s\n", line.c_str());
    std::fflush(to_);
    char buf[4096];
    if (!std::fgets(buf, sizeof buf, from_)) return "";
    std::string s(buf);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }

  bool alive() const {
    return pid_ > 0 && ::kill(pid_, 0) == 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0;
  }

 private:
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  std::string hello_;
};

// dirty_writer's buffer, from its answer to "addr" ("ok ADDR PAGES").
struct WriterBuffer {
  uint64_t addr = 0;
  uint64_t pages = 0;
};

inline WriterBuffer writer_buffer(SubjectProcess& s) {
  std::istringstream in(s.cmd("addr"));
  std::string ok;
  WriterBuffer b;
  in >> ok >> std::hex >> b.addr >> std::dec >> b.pages;
  return b;
}

}  // namespace relive::testing
