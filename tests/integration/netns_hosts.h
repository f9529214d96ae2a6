// Hosts for migration tests: network namespaces a, b, c joined by a bridge (itself in a
// fourth namespace), addresses 198.18.<subnet>.1-3/24. Processes enter a host with
// `nsenter --net` only, which keeps them in the test's mount namespace (CRIU dumps the mount
// namespace of anything started by `ip netns exec`). Everything is deleted by the destructor.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace relive::testing {

class NetnsHosts {
 public:
  NetnsHosts(std::string prefix, int subnet) : prefix_(std::move(prefix)), subnet_(subnet) {
    down();
    std::string s = "set -e; P=" + prefix_ +
                    "; ip netns add ${P}br; "
                    "ip -n ${P}br link add br0 type bridge; ip -n ${P}br link set br0 up; ";
    int i = 1;
    for (char h : std::string("abc")) {
      std::string n = prefix_ + h, ip = address(h);
      s += "ip netns add " + n + "; ip link add v" + h + " netns " + n + " type veth peer name p" +
           h + " netns ${P}br; ip -n ${P}br link set p" + h + " master br0 up; ip -n " + n +
           " addr add " + ip + "/24 dev v" + h + "; ip -n " + n + " link set v" + h +
           " up; ip -n " + n + " link set lo up; ";
      ++i;
    }
    ok_ = sh(s + " >/dev/null 2>&1") == 0;
  }
  ~NetnsHosts() { down(); }
  NetnsHosts(const NetnsHosts&) = delete;
  NetnsHosts& operator=(const NetnsHosts&) = delete;

  bool ok() const { return ok_; }
  std::string address(char host) const {
    return "198.18." + std::to_string(subnet_) + "." + std::to_string(host - 'a' + 1);
  }
  std::string device(char host) const { return std::string("v") + host; }
  // argv prefixed so that it runs in `host`'s network namespace.
  std::vector<std::string> in(char host, std::vector<std::string> argv) const {
    std::vector<std::string> out = {"/usr/bin/nsenter", "--net=/var/run/netns/" + prefix_ + host};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }
  // A shell snippet run in `host`.
  int sh_in(char host, const std::string& script) const {
    return sh("nsenter --net=/var/run/netns/" + prefix_ + host + " /bin/sh -c '" + script + "'");
  }

 private:
  void down() {
    sh("for h in a b c br; do ip netns del " + prefix_ + "$h 2>/dev/null; done; true");
  }
  std::string prefix_;
  int subnet_;
  bool ok_ = false;
};

// A background process (its own session, stdio to files), killed with its group at the end.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::string& out_file,
             const std::string& err_file = "/dev/null") {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(in, 0), ::dup2(out, 1), ::dup2(err, 2);
      std::vector<char*> c;
      for (const auto& a : argv) c.push_back(const_cast<char*>(a.c_str()));
      c.push_back(nullptr);
      ::execv(c[0], c.data());
      ::_exit(127);
    }
  }
  ~Background() { stop(); }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  pid_t pid() const { return pid_; }
  // Alive and not a zombie.
  bool running() const {
    if (pid_ <= 0) return false;
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return false;
    size_t close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
  }
  // Exit status (or 128+signal) once it ended by itself; -1 while it runs.
  int wait_exit(std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace relive::testing
