#include "net/metrics_endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <string>

#include "common/scoped_fd.h"

namespace relive::net {
namespace {

using namespace std::chrono_literals;

ScopedFd connect_to(uint16_t port) {
  ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

void send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close on us: the caller checks the answer
    off += static_cast<size_t>(n);
  }
}

// Everything the server sends until it closes (or `limit` passes: then what came so far).
std::string read_until_close(int fd, std::chrono::milliseconds limit = 10s) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left <= 0ms) return out;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string request(uint16_t port, const std::string& raw) {
  ScopedFd fd = connect_to(port);
  send_all(fd.get(), raw);
  return read_until_close(fd.get());
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.counter("relive_test_total", "A test counter.", {"k"})->with({"v"}).inc(3);
    MetricsEndpoint::Options o;
    o.io_timeout = 300ms;
    o.max_connections = 4;
    Result<std::unique_ptr<MetricsEndpoint>> e =
        MetricsEndpoint::start("127.0.0.1:0", &registry_, o);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    endpoint_ = std::move(*e);
  }
  std::string get(const std::string& path) {
    return request(endpoint_->port(),
                   "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  }
  metrics::Registry registry_;
  std::unique_ptr<MetricsEndpoint> endpoint_;
};

TEST_F(MetricsEndpointTest, ServesMetrics) {
  std::string r = get("/metrics");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\n\r\n# HELP relive_test_total A test counter.\n"), std::string::npos) << r;
  EXPECT_NE(r.find("relive_test_total{k=\"v\"} 3\n"), std::string::npos) << r;
}

TEST_F(MetricsEndpointTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  ScopedFd fd = connect_to(endpoint_->port());
  send_all(fd.get(),
           "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n"
           "Connection: close\r\n\r\n");
  std::string r = read_until_close(fd.get());
  size_t first = r.find("HTTP/1.1 200 OK");
  ASSERT_NE(first, std::string::npos) << r;
  EXPECT_NE(r.find("HTTP/1.1 200 OK", first + 1), std::string::npos) << r;
}

TEST_F(MetricsEndpointTest, OtherPathsAre404AndOtherMethods405) {
  EXPECT_TRUE(get("/").starts_with("HTTP/1.1 404")) << get("/");
  EXPECT_TRUE(get("/metricsx").starts_with("HTTP/1.1 404"));
  std::string post = request(endpoint_->port(),
                             "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                             "Connection: close\r\n\r\nhi");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 405")) << post;
}

TEST_F(MetricsEndpointTest, GarbageGets400AndTheEndpointLivesOn) {
  std::string r = request(endpoint_->port(), std::string("\x00\x01\xff garbage\r\n\r\n", 14));
  EXPECT_TRUE(r.empty() || r.starts_with("HTTP/1.1 400")) << r;
  std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(100000, 'a') + "\r\n\r\n";
  r = request(endpoint_->port(), huge);
  EXPECT_TRUE(r.empty() || r.starts_with("HTTP/1.1 400")) << r;
  std::string big_body =
      "GET /metrics HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'b');
  r = request(endpoint_->port(), big_body);
  EXPECT_TRUE(r.empty() || r.starts_with("HTTP/1.1 400")) << r;
  EXPECT_TRUE(get("/metrics").starts_with("HTTP/1.1 200 OK"));
}

TEST_F(MetricsEndpointTest, RandomBytesNeverStopTheEndpoint) {
  std::mt19937 rng(17);
  for (int i = 0; i < 200; ++i) {
    std::string junk(rng() % 600, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    // Half of them start like a request, to get past the request line into the headers.
    if (i % 2 == 0) junk = "GET /metrics HTTP/1.1\r\n" + junk;
    ScopedFd fd = connect_to(endpoint_->port());
    send_all(fd.get(), junk);
    ::shutdown(fd.get(), SHUT_WR);
    std::string r = read_until_close(fd.get(), 2s);
    EXPECT_TRUE(r.empty() || r.starts_with("HTTP/1.1 400") || r.starts_with("HTTP/1.1 200"))
        << r.substr(0, 200);
  }
  EXPECT_TRUE(get("/metrics").starts_with("HTTP/1.1 200 OK"));
}

TEST_F(MetricsEndpointTest, SilentClientsAreDroppedAfterTheTimeoutAndDoNotBlockOthers) {
  // More silent clients than the connection limit: the endpoint still answers once their
  // timeouts have freed the slots, and each silent one is closed.
  std::vector<ScopedFd> silent;
  for (int i = 0; i < 6; ++i) silent.push_back(connect_to(endpoint_->port()));
  send_all(silent[0].get(), "GET /met");  // half a request
  for (ScopedFd& fd : silent)
    EXPECT_EQ(read_until_close(fd.get(), 10s).find("200 OK"), std::string::npos);
  bool served = false;
  auto end = std::chrono::steady_clock::now() + 10s;
  while (!served && std::chrono::steady_clock::now() < end)
    served = get("/metrics").starts_with("HTTP/1.1 200");
  EXPECT_TRUE(served);
}

TEST_F(MetricsEndpointTest, HeadHasNoBody) {
  std::string r =
      request(endpoint_->port(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK")) << r;
  EXPECT_EQ(r.find("relive_test_total"), std::string::npos) << r;
}

TEST(MetricsEndpoint, RejectsBadAddresses) {
  metrics::Registry r;
  EXPECT_FALSE(MetricsEndpoint::start("nonsense", &r).ok());
  EXPECT_FALSE(MetricsEndpoint::start("localhost:9477", &r).ok());  // names are not resolved
  EXPECT_FALSE(MetricsEndpoint::start("127.0.0.1:99999", &r).ok());
  EXPECT_FALSE(MetricsEndpoint::start("198.51.100.1:9477", &r).ok());  // not a local address
}

TEST(MetricsEndpoint, BusyPortIsAnError) {
  metrics::Registry r;
  Result<std::unique_ptr<MetricsEndpoint>> a = MetricsEndpoint::start("127.0.0.1:0", &r);
  ASSERT_TRUE(a.ok());
  Result<std::unique_ptr<MetricsEndpoint>> b =
      MetricsEndpoint::start("127.0.0.1:" + std::to_string((*a)->port()), &r);
  EXPECT_FALSE(b.ok());
}

}  // namespace
}  // namespace relive::net
