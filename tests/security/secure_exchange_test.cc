// End to end: requests over an authenticated TLS channel, admitted by a RequestGate that
// refuses replays and audits every decision.
#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>
#include <sstream>

#include "security/listener.h"
#include "security/request_gate.h"
#include "security/test_keys.h"
#include "wire/protocol_codec.h"

namespace relive::security {
namespace {

using testing::contains;
using testing::KeyDirs;
using ChannelResult = Result<std::unique_ptr<Channel>>;

// A minimal agent: accepts `connections` connections one after another and answers each
// request with Ack or Error as the gate decides.
Status serve(Listener& l, RequestGate& gate, int connections) {
  for (int i = 0; i < connections; ++i) {
    RELIVE_ASSIGN_OR_RETURN(std::unique_ptr<Channel> ch, l.accept());
    RELIVE_ASSIGN_OR_RETURN(protocol::Message m, recv_protocol_message(*ch));
    Status verdict = gate.admit(ch->peer(), m, unix_now_ns());
    protocol::Message reply{0, protocol::Ack{m.sequence, "ok"}};
    if (!verdict.ok()) {
      reply.body =
          protocol::Error{m.sequence, static_cast<uint32_t>(verdict.code()), verdict.message()};
    }
    RELIVE_RETURN_IF_ERROR(send_protocol_message(*ch, reply));
  }
  return Status::Ok();
}

// Sends one already-encoded frame on a new connection and returns the reply.
Result<protocol::Message> send_frame(uint16_t port, const ChannelOptions& o,
                                     const std::string& frame) {
  RELIVE_ASSIGN_OR_RETURN(std::unique_ptr<Channel> ch, connect_channel("127.0.0.1", port, o));
  RELIVE_RETURN_IF_ERROR(ch->send_message(frame));
  return recv_protocol_message(*ch);
}

TEST(SecureExchange, ReplayedRequestIsRefusedAndAudited) {
  KeyDirs keys;
  relive::testing::TempDir state;
  ReplayGuard guard;
  Result<AuditLog> log = AuditLog::open(state / "audit.jsonl");
  ASSERT_TRUE(log.ok());
  RequestGate gate(&guard, &*log);
  Result<Listener> l = Listener::create("127.0.0.1", 0, keys.options("alpha", "beta"));
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  auto server = std::async(std::launch::async, [&] { return serve(*l, gate, 2); });

  protocol::Message m{5, protocol::Request{"migrate.start", random_nonce(), unix_now_ns(), ""}};
  std::string frame = wire::encode_message(m);  // what an eavesdropper or bad peer could keep
  ChannelOptions client = keys.options("beta", "alpha");
  Result<protocol::Message> first = send_frame(l->port(), client, frame);
  Result<protocol::Message> second = send_frame(l->port(), client, frame);
  ASSERT_TRUE(server.get().ok());

  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_TRUE(std::holds_alternative<protocol::Ack>(first->body));
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  const auto* error = std::get_if<protocol::Error>(&second->body);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->request_seq, 5u);
  EXPECT_NE(error->message.find("replayed nonce"), std::string::npos) << error->message;

  std::istringstream in(relive::testing::read_all(state / "audit.jsonl"));
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["decision"], "accepted");
  EXPECT_EQ(lines[1]["decision"], "refused");
  EXPECT_EQ(lines[1]["nonce"], protocol::nonce_hex(std::get<protocol::Request>(m.body).nonce));
  EXPECT_NE(lines[1]["peer_subject"].get<std::string>().find("CN = beta"), std::string::npos);
  EXPECT_EQ(lines[1]["peer_address"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
}

TEST(SecureExchange, StaleRequestIsRefused) {
  KeyDirs keys;
  relive::testing::TempDir state;
  ReplayGuard guard(std::chrono::seconds(60));
  Result<AuditLog> log = AuditLog::open(state / "audit.jsonl");
  ASSERT_TRUE(log.ok());
  RequestGate gate(&guard, &*log);
  Result<Listener> l = Listener::create("127.0.0.1", 0, keys.options("alpha"));
  ASSERT_TRUE(l.ok());
  auto server = std::async(std::launch::async, [&] { return serve(*l, gate, 1); });
  int64_t old = unix_now_ns() - int64_t{120} * 1'000'000'000;
  protocol::Message m{0, protocol::Request{"migrate.start", random_nonce(), old, ""}};
  Result<protocol::Message> reply =
      send_frame(l->port(), keys.options("beta"), wire::encode_message(m));
  ASSERT_TRUE(server.get().ok());
  ASSERT_TRUE(reply.ok()) << reply.status().to_string();
  const auto* error = std::get_if<protocol::Error>(&reply->body);
  ASSERT_NE(error, nullptr);
  EXPECT_NE(error->message.find("behind this host's clock"), std::string::npos) << error->message;
}

// In TLS 1.3 the server judges the client's certificate after the client has finished its
// handshake; the server's confirmation makes connect_channel itself fail, saying why.
TEST(SecureExchange, RefusedClientLearnsWhyAtConnect) {
  KeyDirs keys;
  Result<Listener> l = Listener::create("127.0.0.1", 0, keys.options("alpha"));
  ASSERT_TRUE(l.ok());
  for (int i = 0; i < 5; ++i) {  // once raced with the server's close; must never again
    auto accepted = std::async(std::launch::async, [&] { return l->accept(); });
    ChannelResult c = connect_channel("127.0.0.1", l->port(), keys.options("old"));
    EXPECT_FALSE(accepted.get().ok());
    ASSERT_FALSE(c.ok());
    EXPECT_TRUE(contains(c.status(), "peer refused our certificate: expired"))
        << c.status().to_string();
  }
}

}  // namespace
}  // namespace relive::security
