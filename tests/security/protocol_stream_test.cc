#include "security/protocol_stream.h"

#include <gtest/gtest.h>

#include <deque>

#include "security/replay_guard.h"
#include "security/test_keys.h"
#include "wire/protocol_codec.h"

namespace relive::security {
namespace {

using testing::contains;

// An in-memory channel: what is sent is queued for receiving.
class LoopbackChannel : public Channel {
 public:
  Status send_message(std::string_view frame) override {
    frames_.emplace_back(frame);
    return Status::Ok();
  }
  Result<std::string> recv_message() override {
    if (frames_.empty()) return Status::Aborted("peer closed the connection");
    std::string f = std::move(frames_.front());
    frames_.pop_front();
    return f;
  }
  Status send_raw(std::string_view bytes) override {
    raw_.append(bytes);
    return Status::Ok();
  }
  Status recv_raw(char* buf, size_t len) override {
    if (raw_.size() < len) return Status::Aborted("peer closed the connection");
    raw_.copy(buf, len);
    raw_.erase(0, len);
    return Status::Ok();
  }
  void close() override {}
  const PeerIdentity& peer() const override { return peer_; }

  std::deque<std::string> frames_;
  std::string raw_;

 private:
  PeerIdentity peer_{"loopback", "", "", false};
};

protocol::Request request() { return {"ping", random_nonce(), unix_now_ns(), ""}; }

TEST(ProtocolStream, NumbersMessagesAndAcceptsThemInOrder) {
  LoopbackChannel ch;
  ProtocolStream s(&ch);
  for (uint64_t i = 0; i < 3; ++i) {
    Result<uint64_t> seq = s.send(request());
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(*seq, i);
  }
  for (uint64_t i = 0; i < 3; ++i) {
    Result<protocol::Message> m = s.recv();
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    EXPECT_EQ(m->sequence, i);
  }
}

TEST(ProtocolStream, RejectsDuplicatedMessage) {
  LoopbackChannel ch;
  ProtocolStream s(&ch);
  ASSERT_TRUE(s.send(request()).ok());
  ch.frames_.push_back(ch.frames_.front());  // a repeated frame
  ASSERT_TRUE(s.recv().ok());
  Result<protocol::Message> dup = s.recv();
  EXPECT_TRUE(dup.status().is_corruption());
  EXPECT_TRUE(contains(dup.status(), "out of order: sequence 0, expected 1"))
      << dup.status().to_string();
  EXPECT_FALSE(s.recv().ok());  // broken for good
}

TEST(ProtocolStream, RejectsSkippedMessage) {
  LoopbackChannel ch;
  ProtocolStream s(&ch);
  ch.send_message(wire::encode_message({1, protocol::Ack{0, ""}}));
  EXPECT_TRUE(contains(s.recv().status(), "sequence 1, expected 0"));
}

}  // namespace
}  // namespace relive::security
