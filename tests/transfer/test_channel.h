// Channels for the migration unit tests: MemoryChannel queues what is sent for receiving (one
// thread, bytes can be tampered with in between); SocketPairChannel moves bytes over one end of a
// socketpair, so a source and a destination can run in two threads as they would on two hosts.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "common/scoped_fd.h"
#include "security/channel.h"
#include "wire/protocol_codec.h"

namespace relive::transfer::testing {

class MemoryChannel : public security::Channel {
 public:
  Status send_message(std::string_view frame) override {
    frames.emplace_back(frame);
    return Status::Ok();
  }
  Result<std::string> recv_message() override {
    if (frames.empty()) return Status::Aborted("peer closed the connection");
    std::string f = std::move(frames.front());
    frames.pop_front();
    return f;
  }
  Status send_raw(std::string_view bytes) override {
    raw.append(bytes);
    return Status::Ok();
  }
  Status recv_raw(char* buf, size_t len) override {
    if (raw.size() < len) return Status::Aborted("peer closed the connection");
    raw.copy(buf, len);
    raw.erase(0, len);
    return Status::Ok();
  }
  void close() override {}
  const security::PeerIdentity& peer() const override { return peer_; }

  std::deque<std::string> frames;
  std::string raw;  // bulk bytes sent and not yet received

 private:
  security::PeerIdentity peer_{"memory", "", "", false};
};

class SocketPairChannel : public security::Channel {
 public:
  // Two connected ends. Every read and write gives up after 10 s, so a broken test fails
  // instead of hanging.
  static std::pair<std::unique_ptr<SocketPairChannel>, std::unique_ptr<SocketPairChannel>> pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return {};
    timeval tv{10, 0};
    for (int fd : fds) {
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return {std::unique_ptr<SocketPairChannel>(new SocketPairChannel(ScopedFd(fds[0]), "a")),
            std::unique_ptr<SocketPairChannel>(new SocketPairChannel(ScopedFd(fds[1]), "b"))};
  }

  Status send_message(std::string_view frame) override {
    Result<wire::ProtocolFrameHeader> h = wire::parse_frame_header(frame);
    if (!h.ok() || frame.size() != wire::kProtocolHeaderBytes + h->payload_length) {
      return Status::InvalidArgument("send_message needs exactly one well-formed frame");
    }
    return send_raw(frame);
  }
  Result<std::string> recv_message() override {
    std::string frame(wire::kProtocolHeaderBytes, '\0');
    RELIVE_RETURN_IF_ERROR(recv_raw(frame.data(), frame.size()));
    RELIVE_ASSIGN_OR_RETURN(wire::ProtocolFrameHeader h, wire::parse_frame_header(frame));
    frame.resize(wire::kProtocolHeaderBytes + h.payload_length);
    RELIVE_RETURN_IF_ERROR(recv_raw(frame.data() + wire::kProtocolHeaderBytes, h.payload_length));
    return frame;
  }
  Status send_raw(std::string_view bytes) override {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return PosixError("send", errno);
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  }
  Status recv_raw(char* buf, size_t len) override {
    while (len > 0) {
      ssize_t n = ::recv(fd_.get(), buf, len, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return PosixError("recv", errno);
      if (n == 0) return Status::Aborted("peer closed the connection");
      buf += n;
      len -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  void close() override {
    if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
  }
  const security::PeerIdentity& peer() const override { return peer_; }

 private:
  SocketPairChannel(ScopedFd fd, std::string name)
      : fd_(std::move(fd)), peer_{"socketpair:" + name, "", "", false} {}
  ScopedFd fd_;
  security::PeerIdentity peer_;
};

}  // namespace relive::transfer::testing
