// A real etcd for tests: one member on 127.0.0.1 with free ports and a temp data dir, stopped
// and deleted by the destructor.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "ha/etcd_lease.h"
#include "test_util.h"

namespace relive::testing {

inline constexpr const char* kEtcdBinary = "/usr/bin/etcd";

inline int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class EtcdServer {
 public:
  EtcdServer() {
    char tmpl[] = "/tmp/relive-etcd-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    client_port_ = free_tcp_port();
    int peer_port = free_tcp_port();
    std::string c = "http://127.0.0.1:" + std::to_string(client_port_);
    std::string p = "http://127.0.0.1:" + std::to_string(peer_port);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();
      std::string log = dir_ + "/etcd.log";
      FILE* f = ::freopen(log.c_str(), "w", stderr);
      (void)f;
      ::execl(kEtcdBinary, kEtcdBinary, "--name", "t", "--data-dir", (dir_ + "/data").c_str(),
              "--listen-client-urls", c.c_str(), "--advertise-client-urls", c.c_str(),
              "--listen-peer-urls", p.c_str(), "--initial-advertise-peer-urls", p.c_str(),
              "--initial-cluster", ("t=" + p).c_str(), nullptr);
      ::_exit(127);
    }
  }
  ~EtcdServer() {
    stop();
    sh("rm -rf " + dir_);
  }
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  std::string log() const { return read_all(dir_ + "/etcd.log"); }

  // Waits until etcd answers a range request.
  bool ready(std::chrono::seconds limit = std::chrono::seconds(15)) {
    auto e = ha::EtcdLease::create({endpoint()}, std::chrono::milliseconds(500));
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (e->holder("/ready").ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string dir_;
  int client_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace relive::testing
