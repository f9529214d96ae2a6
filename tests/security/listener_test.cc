#include "security/listener.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <future>
#include <thread>

#include "security/openssl_util.h"
#include "security/replay_guard.h"
#include "security/test_keys.h"
#include "transport/tcp_socket.h"
#include "wire/protocol_codec.h"

namespace relive::security {
namespace {

using testing::contains;
using testing::KeyDirs;
using ChannelResult = Result<std::unique_ptr<Channel>>;

protocol::Message request(uint64_t seq, std::string body = "payload") {
  return {seq, protocol::Request{"migrate.prepare", random_nonce(), unix_now_ns(), body}};
}

Listener listen_or_die(const ChannelOptions& o) {
  Result<Listener> l = Listener::create("127.0.0.1", 0, o);
  EXPECT_TRUE(l.ok()) << l.status().to_string();
  return std::move(l).value();
}

std::future<ChannelResult> accept_async(Listener& l) {
  return std::async(std::launch::async, [&l] { return l.accept(); });
}

// Both ends of one connection; fails the test when either side failed.
struct Pair {
  std::unique_ptr<Channel> server, client;
};
Pair connect_pair(Listener& l, const ChannelOptions& client_options) {
  auto accepted = accept_async(l);
  ChannelResult c = connect_channel("127.0.0.1", l.port(), client_options);
  ChannelResult s = accepted.get();
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  if (!c.ok() || !s.ok()) return {};
  return {std::move(s).value(), std::move(c).value()};
}

// The server's verdict on a client built with `client_options`; the client's own outcome
// (which in TLS 1.3 may succeed before the server has judged it) is ignored.
Status server_verdict(Listener& l, const ChannelOptions& client_options) {
  auto accepted = accept_async(l);
  ChannelResult c = connect_channel("127.0.0.1", l.port(), client_options);
  if (c.ok()) (void)send_protocol_message(**c, request(0));  // must never reach the server
  ChannelResult s = accepted.get();
  return s.ok() ? Status::Ok() : s.status();
}

// A TLS client that trusts the cluster CA but presents no certificate at all.
void connect_without_certificate(uint16_t port, const std::string& ca_file) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  ASSERT_EQ(SSL_CTX_load_verify_file(ctx.get(), ca_file.c_str()), 1);
  auto fd = transport::tcp_connect("127.0.0.1", port,
                                   transport::Deadline::after(std::chrono::seconds(3)));
  ASSERT_TRUE(fd.ok());
  int flags = fcntl(fd->get(), F_GETFL);
  fcntl(fd->get(), F_SETFL, flags & ~O_NONBLOCK);
  SslPtr ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd->get());
  if (SSL_connect(ssl.get()) == 1) {
    std::string frame = wire::encode_message(request(0));
    SSL_write(ssl.get(), frame.data(), static_cast<int>(frame.size()));
    char c;
    SSL_read(ssl.get(), &c, 1);  // returns once the server has refused us
  }
}

TEST(TlsChannel, ExchangesMessagesWithMutualAuthentication) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.options("alpha", "beta"));
  Pair p = connect_pair(l, keys.options("beta", "alpha"));
  ASSERT_TRUE(p.server && p.client);
  EXPECT_TRUE(p.server->peer().authenticated);
  EXPECT_EQ(p.server->peer().dns_name, "beta");
  EXPECT_TRUE(contains(Status::Aborted(p.server->peer().subject), "CN = beta"));
  EXPECT_EQ(p.client->peer().dns_name, "alpha");

  protocol::Message big = request(1, std::string(1 << 20, 'x'));
  for (const protocol::Message& m : {request(0), big}) {
    ASSERT_TRUE(send_protocol_message(*p.client, m).ok());
    Result<protocol::Message> got = recv_protocol_message(*p.server);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(*got, m);
  }
  protocol::Message ack{0, protocol::Ack{1, "done"}};
  ASSERT_TRUE(send_protocol_message(*p.server, ack).ok());
  Result<protocol::Message> got = recv_protocol_message(*p.client);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, ack);
}

TEST(TlsChannel, RefusesClientWithoutCertificateBeforeReadingAnything) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.options("alpha"));
  auto accepted = accept_async(l);
  connect_without_certificate(l.port(), keys.dir() + "/ca.crt");
  ChannelResult s = accepted.get();
  ASSERT_FALSE(s.ok());  // no Channel was ever handed out, so no message was read
  EXPECT_TRUE(contains(s.status(), "peer presented no certificate")) << s.status().to_string();
}

TEST(TlsChannel, RefusesClientCertificateFromForeignCa) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.options("alpha"));
  ChannelOptions client = keys.foreign_options("alpha");
  client.ca_file = keys.dir() + "/ca.crt";  // trusts the server; its own cert is foreign
  Status s = server_verdict(l, client);
  EXPECT_TRUE(contains(s, "not signed by the configured CA")) << s.to_string();
}

TEST(TlsChannel, ClientRefusesServerFromForeignCa) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.foreign_options("alpha"));
  auto accepted = accept_async(l);
  ChannelResult c = connect_channel("127.0.0.1", l.port(), keys.options("beta"));
  EXPECT_TRUE(contains(c.status(), "not signed by the configured CA")) << c.status().to_string();
  EXPECT_FALSE(accepted.get().ok());
}

TEST(TlsChannel, RefusesExpiredCertificateBothWays) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.options("alpha"));
  Status s = server_verdict(l, keys.options("old"));
  EXPECT_TRUE(contains(s, "peer certificate has expired")) << s.to_string();

  Listener expired = listen_or_die(keys.options("old"));
  auto accepted = accept_async(expired);
  ChannelResult c = connect_channel("127.0.0.1", expired.port(), keys.options("beta"));
  EXPECT_TRUE(contains(c.status(), "peer certificate has expired")) << c.status().to_string();
  (void)accepted.get();
}

TEST(TlsChannel, RefusesWrongPeerName) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.options("alpha"));
  auto accepted = accept_async(l);
  ChannelResult c = connect_channel("127.0.0.1", l.port(), keys.options("beta", "gamma"));
  EXPECT_TRUE(contains(c.status(), "not for the expected host name 'gamma'"))
      << c.status().to_string();
  (void)accepted.get();

  Listener pinned = listen_or_die(keys.options("alpha", "beta"));
  Status s = server_verdict(pinned, keys.options("alpha"));  // alpha is not beta
  EXPECT_TRUE(contains(s, "expected host name 'beta'")) << s.to_string();
}

TEST(TlsChannel, PlaintextClientAgainstTlsServerFailsCleanly) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.options("alpha"));
  auto accepted = accept_async(l);
  ChannelResult c = connect_channel("127.0.0.1", l.port(), KeyDirs::insecure());
  ASSERT_TRUE(c.ok()) << c.status().to_string();  // plain TCP connects; nothing is trusted yet
  ASSERT_TRUE(send_protocol_message(**c, request(0)).ok());
  ChannelResult s = accepted.get();
  EXPECT_TRUE(contains(s.status(), "plaintext relive frames")) << s.status().to_string();
  Result<protocol::Message> reply = recv_protocol_message(**c);
  EXPECT_EQ(reply.status().code(), Status::Code::kAborted) << reply.status().to_string();
}

TEST(TlsChannel, InsecureModeWorksWhenBothSidesAskForIt) {
  Listener l = listen_or_die(KeyDirs::insecure());
  Pair p = connect_pair(l, KeyDirs::insecure());
  ASSERT_TRUE(p.server && p.client);
  EXPECT_FALSE(p.server->peer().authenticated);
  protocol::Message m = request(0);
  ASSERT_TRUE(send_protocol_message(*p.client, m).ok());
  Result<protocol::Message> got = recv_protocol_message(*p.server);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, m);
}

TEST(TlsChannel, TlsClientAgainstInsecureServerFails) {
  KeyDirs keys;
  Listener l = listen_or_die(KeyDirs::insecure());
  auto accepted = accept_async(l);
  auto client = std::async(std::launch::async, [&] {
    return connect_channel("127.0.0.1", l.port(), keys.options("beta"));
  });
  ChannelResult s = accepted.get();
  ASSERT_TRUE(s.ok());
  Result<std::string> frame = (*s)->recv_message();
  EXPECT_TRUE(contains(frame.status(), "peer speaks TLS")) << frame.status().to_string();
  (*s)->close();
  EXPECT_FALSE(client.get().ok());
}

TEST(TlsChannel, TlsWithoutKeyFilesIsRefusedUpFront) {
  Result<Listener> l = Listener::create("127.0.0.1", 0, ChannelOptions{});
  EXPECT_EQ(l.status().code(), Status::Code::kInvalidArgument) << l.status().to_string();
  ChannelOptions missing = tls_options_for_host("/nonexistent", "alpha");
  l = Listener::create("127.0.0.1", 0, missing);
  EXPECT_TRUE(contains(l.status(), "load certificate")) << l.status().to_string();
}

TEST(TlsChannel, AcceptAndReceiveTimeOut) {
  ChannelOptions o = KeyDirs::insecure();
  o.timeout = std::chrono::milliseconds(200);
  Listener l = listen_or_die(o);
  ChannelResult none = l.accept();
  EXPECT_TRUE(contains(none.status(), "timed out")) << none.status().to_string();
  Pair p = connect_pair(l, o);
  ASSERT_TRUE(p.server);
  Result<std::string> silent = p.server->recv_message();
  EXPECT_TRUE(contains(silent.status(), "timed out")) << silent.status().to_string();
}

TEST(TlsChannel, RejectsOversizedFrameBeforeReadingIt) {
  Listener l = listen_or_die(KeyDirs::insecure());
  auto accepted = accept_async(l);
  auto deadline = transport::Deadline::after(std::chrono::seconds(3));
  auto raw = transport::tcp_connect("127.0.0.1", l.port(), deadline);
  ASSERT_TRUE(raw.ok());
  std::string header = wire::encode_message(request(0)).substr(0, wire::kProtocolHeaderBytes);
  header[11] = 0x40;  // length 1 GiB and more
  ASSERT_TRUE(transport::send_all(raw->get(), header, deadline).ok());
  ChannelResult s = accepted.get();
  ASSERT_TRUE(s.ok());
  Result<std::string> frame = (*s)->recv_message();
  EXPECT_TRUE(frame.status().is_corruption()) << frame.status().to_string();
  EXPECT_TRUE(contains(frame.status(), "absurd")) << frame.status().to_string();
}

TEST(TlsChannel, ReportsPeerThatClosed) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.options("alpha"));
  Pair p = connect_pair(l, keys.options("beta"));
  ASSERT_TRUE(p.client);
  p.client->close();
  Result<std::string> r = p.server->recv_message();
  EXPECT_EQ(r.status().code(), Status::Code::kAborted) << r.status().to_string();
  EXPECT_TRUE(contains(r.status(), "closed")) << r.status().to_string();
  EXPECT_FALSE(p.server->send_message(wire::encode_message(request(1))).ok());  // sticky
}

// Accepting and authenticating are separate steps: a connection whose peer never speaks is
// accepted at once (nothing read), and while its handshake waits on one thread another
// connection is accepted and authenticated on another.
TEST(Listener, AcceptsWithoutHandshakeAndHandshakesElsewhere) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.options("beta"));
  auto silent = transport::tcp_connect("127.0.0.1", l.port(),
                                       transport::Deadline::after(std::chrono::seconds(3)));
  ASSERT_TRUE(silent.ok());
  Result<PendingConnection> first = l.accept_connection(std::chrono::seconds(10));
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_NE(first->peer.find("127.0.0.1:"), std::string::npos) << first->peer;
  auto stalled = std::async(std::launch::async, [&l, c = std::move(*first)]() mutable {
    return l.handshake(std::move(c));
  });
  auto client = std::async(std::launch::async, [&] {
    return connect_channel("127.0.0.1", l.port(), keys.options("alpha", "beta"));
  });
  Result<PendingConnection> second = l.accept_connection(std::chrono::seconds(10));
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  ChannelResult s = l.handshake(std::move(*second));
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_NE((*s)->peer().subject.find("alpha"), std::string::npos) << (*s)->peer().subject;
  ASSERT_TRUE(client.get().ok());
  // The silent peer's handshake ends with the options' timeout, as a Status.
  ChannelResult r = stalled.get();
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status(), "timed out")) << r.status().to_string();
}

TEST(Listener, AcceptConnectionTimesOutWhenNobodyComes) {
  KeyDirs keys;
  Listener l = listen_or_die(keys.options("beta"));
  Result<PendingConnection> c = l.accept_connection(std::chrono::milliseconds(50));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(c.status(), "timed out")) << c.status().to_string();
}

}  // namespace
}  // namespace relive::security
