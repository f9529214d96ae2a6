#include "migrate/peer_replies.h"

#include <gtest/gtest.h>

namespace relive::migrate {
namespace {

constexpr Status::Code kCorrupt = Status::Code::kCorruption;

TEST(CommandReply, ReadsTheDestinationsDetail) {
  auto r = parse_command_reply(R"({"root_pid": 4242, "restore_ms": 12.5, "confirm_ms": 3})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->root_pid, 4242);
  EXPECT_EQ(r->restore_ms, 12.5);
  EXPECT_EQ(r->confirm_ms, 3.0);
  auto empty = parse_command_reply("{}");  // every field may be left out
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->root_pid, 0);
}

TEST(CommandReply, MalformedIsCorruptionNotAnException) {
  for (const char* t :
       {"", "{", "{\"root_pid\": 1", "[]", "\"ok\"", "null", R"({"restore_ms": "12"})",
        R"({"root_pid": 1.5})", R"({"root_pid": 99999999999})", R"({"root_pid": "1"})",
        R"({"confirm_ms": {}})", R"({"restore_ms": 1e999})"}) {
    auto r = parse_command_reply(t);
    EXPECT_EQ(r.status().code(), kCorrupt) << t;
  }
}

TEST(VerifyReply, ReadsRanges) {
  auto r = parse_verify_reply(R"({"differing": [[4096, 2], [65536, 1]], "replayed_events": 7})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->differing.size(), 2u);
  EXPECT_EQ(r->differing[0], (criu::VaddrRange{4096, 2}));
  EXPECT_EQ(r->differing[1], (criu::VaddrRange{65536, 1}));
  EXPECT_EQ(r->replayed_events, 7u);
}

TEST(VerifyReply, MalformedIsCorruptionNotAnException) {
  for (const char* t : {
           "{}",                                             // no list
           R"({"differing": 5})",                            // not a list
           R"({"differing": [["4096", 1]]})",                // a string address
           R"({"differing": [[4096]]})",                     // half a range
           R"({"differing": [[4096, 1, 2]]})",               // too much
           R"({"differing": [4096]})",                       // not a pair
           R"({"differing": [[-4096, 1]]})",                 // negative
           R"({"differing": [[18446744073709551615, 2]]})",  // beyond the address space
           R"({"differing": [[0, 18446744073709551615]]})",  // too many pages
           R"({"differing": [[4096, 1]], "replayed_events": "many"})",
           R"({"differing": [[4096, 1]]} garbage)",
       }) {
    auto r = parse_verify_reply(t);
    EXPECT_EQ(r.status().code(), kCorrupt) << t;
  }
}

TEST(VmBeginReply, ReadsPortPidAndDir) {
  auto r = parse_vm_begin_reply(R"({"port": 4444, "pid": 77, "dir": "/var/lib/relive/vms/x"})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->port, 4444);
  EXPECT_EQ(r->pid, 77);
  EXPECT_EQ(r->dir, "/var/lib/relive/vms/x");
}

TEST(VmBeginReply, MalformedIsCorruptionNotAnException) {
  for (const char* t :
       {"{}", R"({"port": 0})", R"({"port": 65536})", R"({"port": -1})", R"({"port": "4444"})",
        R"({"port": 4444, "pid": "x"})", R"({"port": 4444, "dir": 3})", "not json"}) {
    auto r = parse_vm_begin_reply(t);
    EXPECT_EQ(r.status().code(), kCorrupt) << t;
  }
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
