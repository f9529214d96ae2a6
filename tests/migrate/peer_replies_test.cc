#include "migrate/peer_replies.h"

#include <gtest/gtest.h>

namespace relive::migrate {
namespace {

constexpr Status::Code kCorrupt = Status::Code::kCorruption;

namespace m = relive::migration;

TEST(ReplyAs, ReadsTheExpectedKind) {
  auto r = reply_as<m::OutcomeReply>(m::Reply{m::OutcomeReply{4242, 12.5, 3}}, "restore");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->root_pid, 4242);
  EXPECT_EQ(r->restore_ms, 12.5);
  EXPECT_EQ(r->confirm_ms, 3.0);
}

TEST(ReplyAs, AnotherKindIsCorruption) {
  EXPECT_EQ(reply_as<m::OutcomeReply>(m::Reply{}, "restore").status().code(), kCorrupt);
  EXPECT_EQ(reply_as<m::OutcomeReply>(m::Reply{m::LogRoundReply{}}, "restore").status().code(),
            kCorrupt);
}

TEST(VerifyReply, ReadsRanges) {
  auto r = verify_reply(m::Reply{m::VerifyReply{{{4096, 2}, {65536, 1}}, 7}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->differing.size(), 2u);
  EXPECT_EQ(r->differing[0], (criu::VaddrRange{4096, 2}));
  EXPECT_EQ(r->differing[1], (criu::VaddrRange{65536, 1}));
  EXPECT_EQ(r->replayed_events, 7u);
}

TEST(VerifyReply, RangesBeyondTheAddressSpaceAreCorruption) {
  for (m::PageRange bad : {m::PageRange{UINT64_MAX, 2}, m::PageRange{0, UINT64_MAX}}) {
    auto r = verify_reply(m::Reply{m::VerifyReply{{{4096, 1}, bad}, 1}});
    EXPECT_EQ(r.status().code(), kCorrupt) << bad.start << "+" << bad.pages;
  }
  EXPECT_EQ(verify_reply(m::Reply{m::OutcomeReply{}}).status().code(), kCorrupt);
}

TEST(VmBeginReply, ReadsPortPidAndDir) {
  auto r = vm_begin_reply(m::Reply{m::VmBeginReply{4444, 77, "/var/lib/relive/vms/x"}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->port, 4444);
  EXPECT_EQ(r->pid, 77);
  EXPECT_EQ(r->dir, "/var/lib/relive/vms/x");
}

TEST(VmBeginReply, PortZeroOrAnotherKindIsCorruption) {
  EXPECT_EQ(vm_begin_reply(m::Reply{m::VmBeginReply{0, 77, ""}}).status().code(), kCorrupt);
  EXPECT_EQ(vm_begin_reply(m::Reply{}).status().code(), kCorrupt);
}

TEST(QemuListeningPort, ReadsStringOrNumberPorts) {
  auto j = nlohmann::json::parse(
      R"({"status": "setup", "socket-address": [{"type": "inet", "host": "0.0.0.0", "port": "41234"}]})");
  auto p = qemu_listening_port(j);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(*p, 41234);
  EXPECT_EQ(*qemu_listening_port(nlohmann::json::parse(R"({"socket-address": [{"port": 5}]})")), 5);
}

TEST(QemuListeningPort, MalformedIsAnErrorNotAnException) {
  for (const char* t :
       {R"({})", R"({"socket-address": {}})", R"({"socket-address": [1, "x"]})",
        R"({"socket-address": [{"port": "12ab"}]})", R"({"socket-address": [{"port": "99999"}]})",
        R"({"socket-address": [{"port": ""}]})", R"({"socket-address": [{"port": -3}]})",
        R"([])"}) {
    EXPECT_FALSE(qemu_listening_port(nlohmann::json::parse(t)).ok()) << t;
  }
}

}  // namespace
}  // namespace relive::migrate
