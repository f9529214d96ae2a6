#include "transfer/throttled_relay.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "transport/tcp_socket.h"

namespace relive::transfer {
namespace {

using namespace std::chrono_literals;
using transport::Deadline;

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7919) % 253);
  return s;
}

// A target (standing in for CRIU's page server) behind a relay on loopback, a client (the
// destination's lazy-pages daemon) connected to the relay.
struct RelayRig {
  std::shared_ptr<RateLimiter> limiter = std::make_shared<RateLimiter>(200u << 20);
  ScopedFd target_listen;
  std::unique_ptr<ThrottledRelay> relay;
  ScopedFd client, target;

  void start() {
    auto l = transport::tcp_listen("127.0.0.1", 0);
    ASSERT_TRUE(l.ok()) << l.status().to_string();
    target_listen = std::move(*l);
    ThrottledRelay::Options o;
    o.listen_host = "127.0.0.1";
    o.target_port = *transport::local_port(target_listen.get());
    o.io_timeout = 10s;
    auto r = ThrottledRelay::start(o, limiter);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    relay = std::move(*r);
    auto c = transport::tcp_connect("127.0.0.1", relay->port(), Deadline::after(10s));
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    client = std::move(*c);
    std::string peer;
    auto t = transport::tcp_accept(target_listen.get(), Deadline::after(10s), &peer);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    target = std::move(*t);
  }
};

TEST(ThrottledRelay, ForwardsBothWaysAndMetersOnlyTheTargetsBytes) {
  RelayRig s;
  ASSERT_NO_FATAL_FAILURE(s.start());
  std::string request = "give me pages";
  ASSERT_TRUE(transport::send_all(s.client.get(), request, Deadline::after(10s)).ok());
  std::string got(request.size(), '\0');
  ASSERT_TRUE(
      transport::recv_exact(s.target.get(), got.data(), got.size(), Deadline::after(10s)).ok());
  EXPECT_EQ(got, request);

  std::string pages = pattern(3u << 20);
  std::thread sender(
      [&] { EXPECT_TRUE(transport::send_all(s.target.get(), pages, Deadline::after(30s)).ok()); });
  std::string back(pages.size(), '\0');
  Status r = transport::recv_exact(s.client.get(), back.data(), back.size(), Deadline::after(30s));
  sender.join();
  ASSERT_TRUE(r.ok()) << r.to_string();
  EXPECT_EQ(back, pages);
  EXPECT_EQ(s.limiter->stats().bytes, pages.size()) << "only the target's bytes are charged";
}

TEST(ThrottledRelay, PassesTheEndOfStreamOn) {
  RelayRig s;
  ASSERT_NO_FATAL_FAILURE(s.start());
  ASSERT_TRUE(transport::send_all(s.target.get(), "last", Deadline::after(10s)).ok());
  s.target.reset();
  char buf[4];
  ASSERT_TRUE(transport::recv_exact(s.client.get(), buf, 4, Deadline::after(10s)).ok());
  Status end = transport::recv_exact(s.client.get(), buf, 1, Deadline::after(10s));
  EXPECT_FALSE(end.ok());
  EXPECT_NE(end.to_string().find("closed"), std::string::npos) << end.to_string();
}

TEST(ThrottledRelay, RefusesAPortInUse) {
  auto l = transport::tcp_listen("127.0.0.1", 0);
  ASSERT_TRUE(l.ok());
  ThrottledRelay::Options o;
  o.listen_host = "127.0.0.1";
  o.listen_port = *transport::local_port(l->get());
  o.target_port = 1;
  auto limiter = std::make_shared<RateLimiter>(0);
  EXPECT_FALSE(ThrottledRelay::start(o, limiter).ok());
}

// Stopping while a connection is open and idle returns (the destructor joins every thread).
TEST(ThrottledRelay, StopsWithAnOpenConnection) {
  RelayRig s;
  ASSERT_NO_FATAL_FAILURE(s.start());
  s.relay.reset();
  char c;
  EXPECT_FALSE(transport::recv_exact(s.client.get(), &c, 1, Deadline::after(10s)).ok());
}

}  // namespace
}  // namespace relive::transfer
