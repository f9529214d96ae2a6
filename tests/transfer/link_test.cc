// Two Links over a socketpair, each on a real insecure channel (security::PlainChannel, the one
// relived and relive use with --insecure): typed replies round-trip, and a reply that is bad
// in any way (undecodable, corrupt or truncated frame, wrong kind, a peer that closes or falls
// silent halfway) is a clear Status at the source, never an exception or a hang.
#include "transfer/link.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "security/plain_channel.h"
#include "test_util.h"
#include "transfer/link_pair.h"
#include "wire/migration_codec.h"
#include "wire/protocol_codec.h"

namespace relive::transfer {
namespace {

namespace m = relive::migration;
namespace p = relive::protocol;
using std::chrono::milliseconds;

// Long enough for a loaded machine; the silent-peer test shortens it for itself.
constexpr milliseconds kIoTimeout{10000};

std::unique_ptr<security::Channel> plain_channel(int fd, const std::string& name) {
  return std::make_unique<security::PlainChannel>(
      ScopedFd(fd), security::PeerIdentity{"socketpair:" + name, "", "", false}, kIoTimeout);
}

class LinkReplies : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    Status opened =
        links_.open({plain_channel(fds[0], "destination"), plain_channel(fds[1], "source")});
    ASSERT_TRUE(opened.ok()) << opened.to_string();
    Status hello = links_.hello();
    ASSERT_TRUE(hello.ok()) << hello.to_string();
    source_ = &links_.source();
    destination_ = &links_.destination();
  }

  // The destination admits the source's next command (already sent); its name.
  std::string admit() {
    Result<m::Command> c = destination_->next_command(links_.gate());
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return c.ok() ? m::command_name(*c) : "";
  }

  // The whole frame of an Ack to the source's first command after the hello (request 1), sent
  // as the destination's second message (sequence 1), carrying `reply` as its typed reply.
  static std::string ack_frame(std::string reply) {
    return wire::encode_message(p::Message{1, p::Ack{1, "", std::move(reply)}});
  }

  // The source's wait for the reply to the Commit it sent, with the destination having written
  // `bytes` as its answer.
  Result<m::Reply> reply_after_raw(std::string_view bytes) {
    EXPECT_TRUE(source_->send(m::Commit{}).ok());
    EXPECT_EQ(admit(), "migrate.commit");
    EXPECT_TRUE(destination_->channel().send_raw(bytes).ok());
    return source_->wait_reply();
  }

  relive::testing::TempDir dir_;
  testing::LinkPair links_{dir_ / "audit.jsonl"};
  Link* source_ = nullptr;
  Link* destination_ = nullptr;
};

TEST_F(LinkReplies, EachReplyKindRoundTrips) {
  const m::Reply replies[] = {
      m::Reply{},
      m::OutcomeReply{4242, 12.5, 3.25},
      m::VerifyReply{{{4096, 2}, {1u << 30, 7}}, 99},
      m::VmBeginReply{4444, 77, "/var/lib/relive/vms/x.AbC123"},
      m::LogRoundReply{123456789, 1.5, 2.5, 3.5},
  };
  for (const m::Reply& sent : replies) {
    SCOPED_TRACE(m::reply_kind_name(sent));
    ASSERT_TRUE(source_->send(m::VmProgress{"{}"}).ok());
    ASSERT_EQ(admit(), "migrate.vm_progress");
    ASSERT_TRUE(destination_->reply(sent).ok());
    Result<m::Reply> got = source_->wait_reply();
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(*got, sent);
  }
}

// The destination as relived runs it: serve() answers each command with its handler's reply,
// and the source reads each through call_reply() and reply_as<>.
TEST_F(LinkReplies, ServeAnswersEachCommandWithItsTypedReply) {
  std::future<Status> served = std::async(std::launch::async, [this] {
    return destination_->serve(links_.gate(),
                               [](const m::Command& c, bool* done) -> Result<m::Reply> {
                                 if (std::holds_alternative<m::Begin>(c))
                                   return m::Reply{m::VmBeginReply{5555, 12, "/d"}};
                                 if (const auto* l = std::get_if<m::LogRound>(&c))
                                   return m::Reply{m::LogRoundReply{l->icount}};
                                 *done = true;
                                 return m::Reply{m::OutcomeReply{12, 4.5, 0}};
                               });
  });
  Result<m::Reply> begun = source_->call_reply(m::Begin{});
  ASSERT_TRUE(begun.ok()) << begun.status().to_string();
  Result<m::VmBeginReply> vm = m::reply_as<m::VmBeginReply>(*begun, "begin");
  ASSERT_TRUE(vm.ok()) << vm.status().to_string();
  EXPECT_EQ(vm->port, 5555);
  EXPECT_EQ(vm->dir, "/d");
  Result<m::Reply> round = source_->call_reply(m::LogRound{1, 0, false, 777});
  ASSERT_TRUE(round.ok()) << round.status().to_string();
  EXPECT_EQ(m::reply_as<m::LogRoundReply>(*round, "log round")->icount, 777u);
  Result<m::Reply> committed = source_->call_reply(m::Commit{});
  ASSERT_TRUE(committed.ok()) << committed.status().to_string();
  EXPECT_EQ(m::reply_as<m::OutcomeReply>(*committed, "commit")->root_pid, 12);
  EXPECT_TRUE(served.get().ok());
}

TEST_F(LinkReplies, AReplyOfTheWrongKindIsRefusedNamingBothKinds) {
  ASSERT_TRUE(source_->send(m::Commit{}).ok());
  ASSERT_EQ(admit(), "migrate.commit");
  ASSERT_TRUE(destination_->reply(m::Reply{m::VmBeginReply{4444, 1, "/d"}}).ok());
  Result<m::Reply> got = source_->wait_reply();
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  Result<m::OutcomeReply> outcome = m::reply_as<m::OutcomeReply>(*got, "the commit's reply");
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.status().code(), Status::Code::kCorruption);
  EXPECT_EQ(outcome.status().message(),
            "the commit's reply: the peer answered with a 'vmBegin' reply, expected 'outcome'");
  // A plain ack where a typed reply was expected is the 'none' kind, refused the same way.
  EXPECT_FALSE(m::reply_as<m::OutcomeReply>(m::Reply{}, "the commit's reply").ok());
}

// The control for the damaged frames below: the same hand-made frame, undamaged, is read.
TEST_F(LinkReplies, AHandMadeAckFrameIsRead) {
  Result<m::Reply> got =
      reply_after_raw(ack_frame(wire::encode_migration_reply(m::OutcomeReply{1, 2, 3})));
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, (m::Reply{m::OutcomeReply{1, 2, 3}}));
}

TEST_F(LinkReplies, ReplyBytesThatDoNotDecodeAreCorruption) {
  Result<m::Reply> got = reply_after_raw(ack_frame("\x01\x02 not a MigrationReply at all"));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Status::Code::kCorruption) << got.status().to_string();
  EXPECT_NE(got.status().message().find("migration reply"), std::string::npos);
}

TEST_F(LinkReplies, ATruncatedTypedReplyIsCorruption) {
  std::string reply = wire::encode_migration_reply(m::VmBeginReply{4444, 77, "/some/dir"});
  ASSERT_GT(reply.size(), 16u);
  Result<m::Reply> got = reply_after_raw(ack_frame(reply.substr(0, reply.size() / 2)));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Status::Code::kCorruption) << got.status().to_string();
  EXPECT_NE(got.status().message().find("migration reply"), std::string::npos);
}

TEST_F(LinkReplies, AFrameWithADamagedPayloadIsCorruption) {
  std::string frame = ack_frame(wire::encode_migration_reply(m::OutcomeReply{1, 2, 3}));
  frame.back() ^= 0x5a;  // the checksum no longer matches
  Result<m::Reply> got = reply_after_raw(frame);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Status::Code::kCorruption) << got.status().to_string();
  EXPECT_NE(got.status().message().find("checksum"), std::string::npos);
}

TEST_F(LinkReplies, AFrameHeaderAnnouncingAHugePayloadIsRefusedBeforeReadingIt) {
  std::string frame = ack_frame("");
  std::string header = frame.substr(0, wire::kProtocolHeaderBytes);
  for (size_t i = 8; i < 12; ++i) header[i] = '\xff';  // payload length: 4 GiB - 1
  Result<m::Reply> got = reply_after_raw(header);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Status::Code::kCorruption) << got.status().to_string();
  EXPECT_NE(got.status().message().find("absurd"), std::string::npos);
}

TEST_F(LinkReplies, APeerClosingMidReplyIsAnError) {
  std::string frame = ack_frame(wire::encode_migration_reply(m::OutcomeReply{1, 2, 3}));
  ASSERT_TRUE(source_->send(m::Commit{}).ok());
  ASSERT_EQ(admit(), "migrate.commit");
  ASSERT_TRUE(destination_->channel().send_raw(frame.substr(0, frame.size() - 5)).ok());
  destination_->close();
  Result<m::Reply> got = source_->wait_reply();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Status::Code::kAborted) << got.status().to_string();
  EXPECT_NE(got.status().message().find("closed"), std::string::npos) << got.status().to_string();
}

// Half a reply and then nothing, the connection left open: the source gives up after its I/O
// timeout instead of waiting for ever.
TEST_F(LinkReplies, APeerFallingSilentMidReplyTimesOut) {
  source_->channel().set_timeout(milliseconds(300));
  std::string frame = ack_frame(wire::encode_migration_reply(m::OutcomeReply{1, 2, 3}));
  ASSERT_TRUE(source_->send(m::Commit{}).ok());
  ASSERT_EQ(admit(), "migrate.commit");
  ASSERT_TRUE(destination_->channel().send_raw(frame.substr(0, frame.size() - 5)).ok());
  Result<m::Reply> got = source_->wait_reply();
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("timed out"), std::string::npos)
      << got.status().to_string();
  // The channel stays broken: a later wait fails too, at once.
  EXPECT_FALSE(source_->wait_reply().ok());
}

TEST_F(LinkReplies, ThePeersErrorIsItsStatus) {
  ASSERT_TRUE(source_->send(m::Commit{}).ok());
  ASSERT_EQ(admit(), "migrate.commit");
  ASSERT_TRUE(destination_->fail(Status::InvalidArgument("commit before the restore")).ok());
  Result<m::Reply> got = source_->wait_reply();
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(source_->peer_refused());
  EXPECT_EQ(got.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(got.status().message(), "destination: commit before the restore");
}

}  // namespace
}  // namespace relive::transfer
