#include "wire/migration_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace relive::wire {
namespace {

namespace m = relive::migration;

bool contains(const Status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

m::Begin sample_begin() {
  return {m::WorkloadKind::kRunc,
          m::Strategy::kCrtr,
          "web-1",
          "198.18.0.100/24",
          true,
          "alpha",
          0x5a5a5a5a,
          {},
          {},
          0,
          "",
          {},
          false};
}

m::Begin vm_begin() {
  m::Begin b;
  b.kind = m::WorkloadKind::kVm;
  b.strategy = m::Strategy::kPostcopy;
  b.vm_args = {"qemu-system-x86_64", "-m", "256", ""};
  b.vm_capabilities = {"postcopy-ram", "multifd"};
  b.vm_multifd_channels = 4;
  b.service_address = "198.18.2.10/24";
  b.vm_tap_mac = "02:00:00:00:00:01";
  b.vm_disks = {{"disk0", "/vm/a.raw", "raw", 64 << 20, "", "", ""},
                {"disk1", "/vm/b.qcow2", "qcow2", 1ull << 30, "/base/b.qcow2", "qcow2",
                 "0123456789abcdef0123456789abcdef"}};
  b.vm_shared_storage = true;
  return b;
}

// One command of every kind, with fields that differ from their defaults.
std::vector<m::Command> samples() {
  return {
      sample_begin(),
      m::FileBatch{"images",
                   {{"core-42.img", 4096, "0123456789abcdef0123456789abcdef"},
                    {"sub/pages-1.img", 0, "ffffffffffffffffffffffffffffffff"}}},
      m::PageRound{7, 262144},
      m::LogRound{3, 1ull << 40, true, 1688768500},
      m::Restore{"198.18.0.1", 27000, true, false, 123.25},
      m::Commit{},
      m::Abort{"source ran out of patience"},
      m::Verify{},
      m::HaEpoch{1ull << 33, true, "alpha", true},
      m::HaDir{17, 1ull << 35},
      m::HaCommit{99},
      m::HaHeartbeat{98},
      m::HaStatus{},
      m::HaSwitchover{},
      m::VmProgress{R"({"status":"active"})"},
  };
}

Result<m::Command> round_trip(const m::Command& c) {
  return decode_migration_command(m::command_name(c), encode_migration_command(c));
}

TEST(MigrationCodec, RoundTripsEveryCommand) {
  for (const m::Command& c : samples()) {
    Result<m::Command> back = round_trip(c);
    ASSERT_TRUE(back.ok()) << m::command_name(c) << ": " << back.status().to_string();
    EXPECT_EQ(back->index(), c.index()) << m::command_name(c);
    EXPECT_TRUE(*back == c) << m::command_name(c);
  }
}

TEST(MigrationCodec, RoundTripsAVmBeginWithItsCommandLine) {
  Result<m::Command> back = round_trip(vm_begin());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(*back == m::Command(vm_begin()));
}

TEST(MigrationCodec, RoundTripsDefaultsAndEmptyBatch) {
  for (const m::Command& c : std::vector<m::Command>{m::Begin{}, m::FileBatch{}, m::PageRound{},
                                                     m::LogRound{}, m::Restore{}, m::Abort{}}) {
    Result<m::Command> back = round_trip(c);
    ASSERT_TRUE(back.ok()) << m::command_name(c) << ": " << back.status().to_string();
    EXPECT_TRUE(*back == c) << m::command_name(c);
  }
}

// frozenMs comes from the peer and ends in a histogram: a value that is not a duration (NaN,
// infinite, negative, more than a day) is corrupt input, not a measurement.
TEST(MigrationCodec, RefusesARestoreWhoseFrozenTimeIsNotADuration) {
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity(), -1.0, 1e308}) {
    Result<m::Command> back = round_trip(m::Restore{"198.18.0.1", 27000, true, false, bad});
    ASSERT_FALSE(back.ok()) << bad;
    EXPECT_EQ(back.status().code(), Status::Code::kCorruption) << back.status().to_string();
    EXPECT_NE(back.status().message().find("frozenMs"), std::string::npos)
        << back.status().to_string();
  }
  EXPECT_TRUE(round_trip(m::Restore{"198.18.0.1", 27000, true, false, 0.0}).ok());
}

TEST(MigrationCodec, CommandNamesAreDistinct) {
  std::vector<std::string> names;
  for (const m::Command& c : samples()) names.push_back(m::command_name(c));
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "migrate.begin", "migrate.files", "migrate.pages", "migrate.log", "migrate.restore",
                "migrate.commit", "migrate.abort", "migrate.verify", "ha.epoch", "ha.dir",
                "ha.commit", "ha.heartbeat", "ha.status", "ha.switchover", "migrate.vm_progress"}));
}

TEST(MigrationCodec, RejectsBodyUnderAnotherCommandName) {
  std::vector<m::Command> all = samples();
  for (const m::Command& body : all) {
    for (const m::Command& named : all) {
      if (body.index() == named.index()) continue;
      Result<m::Command> c =
          decode_migration_command(m::command_name(named), encode_migration_command(body));
      ASSERT_FALSE(c.ok());
      EXPECT_TRUE(c.status().is_corruption()) << c.status().to_string();
      EXPECT_TRUE(contains(c.status(), std::string("carries a ") + m::command_name(body)))
          << c.status().to_string();
    }
  }
}

TEST(MigrationCodec, RejectsUnknownCommandName) {
  Result<m::Command> c =
      decode_migration_command("migrate.teleport", encode_migration_command(m::Commit{}));
  EXPECT_TRUE(c.status().is_corruption()) << c.status().to_string();
}

TEST(MigrationCodec, RejectsEmptyAndUnalignedBodies) {
  for (std::string body :
       {std::string(), std::string("x"), std::string(7, '\0'), std::string(13, 'a')}) {
    Result<m::Command> c = decode_migration_command("migrate.commit", body);
    EXPECT_TRUE(c.status().is_corruption()) << body.size() << ": " << c.status().to_string();
  }
}

TEST(MigrationCodec, EveryTruncationIsCorruption) {
  for (const m::Command& c : samples()) {
    std::string body = encode_migration_command(c);
    for (size_t len = 0; len < body.size(); ++len) {
      Result<m::Command> r = decode_migration_command(m::command_name(c), body.substr(0, len));
      ASSERT_FALSE(r.ok()) << m::command_name(c) << " cut to " << len;
      EXPECT_TRUE(r.status().is_corruption()) << r.status().to_string();
    }
  }
}

TEST(MigrationCodec, TrailingBytesAreCorruption) {
  std::string body = encode_migration_command(m::PageRound{1, 2}) + std::string(8, '\0');
  Result<m::Command> c = decode_migration_command("migrate.pages", body);
  EXPECT_TRUE(c.status().is_corruption()) << c.status().to_string();
}

TEST(MigrationCodec, HugeSegmentTableIsCorruption) {
  // A segment table announcing 2^31 segments, then a few words.
  std::string body(64, '\0');
  body[3] = 0x7f;
  Result<m::Command> c = decode_migration_command("migrate.commit", body);
  EXPECT_TRUE(c.status().is_corruption()) << c.status().to_string();
}

TEST(MigrationCodec, UnknownUnionMemberIsCorruption) {
  std::string body = encode_migration_command(m::Commit{});
  // Segment table (8 bytes), root pointer (8), then the union discriminant as the first u16 of
  // MigrationCommand's data section.
  ASSERT_GE(body.size(), 18u);
  ASSERT_EQ(body[16], 5) << "the layout this test assumes changed";
  body[16] = 42;
  Result<m::Command> c = decode_migration_command("migrate.commit", body);
  EXPECT_TRUE(c.status().is_corruption()) << c.status().to_string();
}

TEST(MigrationCodec, UnknownStrategyIsCorruption) {
  std::string body = encode_migration_command(sample_begin());
  // Begin's data section: kind (u16 2 = runc), strategy (u16 3 = crtr), tcpEstablished (bit
  // 32), then rootPid (0x5a5a5a5a) in the second word.
  size_t pid_at = body.find("ZZZZ");
  ASSERT_NE(pid_at, std::string::npos);
  ASSERT_GE(pid_at, 8u);
  size_t at = pid_at - 8;
  ASSERT_EQ(body.substr(at, 4), std::string("\x02\x00\x03\x00", 4))
      << "the layout this test assumes changed";
  body[at + 2] = 9;
  Result<m::Command> c = decode_migration_command("migrate.begin", body);
  EXPECT_TRUE(c.status().is_corruption()) << c.status().to_string();
  EXPECT_TRUE(contains(c.status(), "unknown workload kind or strategy")) << c.status().to_string();
}

TEST(MigrationCodec, GarbageNeverCrashes) {
  // Random bodies and random flips of real bodies: each decodes to a command or to Corruption.
  std::mt19937_64 rng(20261122);
  std::vector<std::string> bodies;
  for (const m::Command& c : samples()) bodies.push_back(encode_migration_command(c));
  for (int i = 0; i < 4000; ++i) {
    std::string body;
    if (i % 2 == 0) {
      body.resize(8 * (rng() % 32));
      for (char& ch : body) ch = static_cast<char>(rng());
    } else {
      body = bodies[rng() % bodies.size()];
      for (int flips = 1 + static_cast<int>(rng() % 4); flips > 0; --flips) {
        body[rng() % body.size()] ^= static_cast<char>(1u << (rng() % 8));
      }
    }
    for (const char* name : {"migrate.begin", "migrate.files", "migrate.abort"}) {
      Result<m::Command> c = decode_migration_command(name, body);
      if (!c.ok()) {
        ASSERT_TRUE(c.status().is_corruption()) << c.status().to_string();
      } else {
        EXPECT_STREQ(m::command_name(*c), name);
      }
    }
  }
}

// One reply of every kind, with fields that differ from their defaults.
std::vector<m::Reply> reply_samples() {
  return {
      m::Reply{},
      m::Reply{m::OutcomeReply{4242, 12.5, 3.25}},
      m::Reply{m::VerifyReply{{{0x7f0000001000, 3}, {0x7ffff000, 1}}, 1ull << 34}},
      m::Reply{m::VerifyReply{}},
      m::Reply{m::VmBeginReply{4444, 777, "/var/lib/relive/vm-1"}},
      m::Reply{m::VmBeginReply{4444, 777, "/var/lib/relive/vm-1", 10809}},
      m::Reply{m::LogRoundReply{1688768500, 1.5, 2.5, 3.5}},
      m::Reply{m::LogRoundReply{.log_bytes_behind = 123456789}},
      m::Reply{m::LogRoundReply{.log_bytes_behind = 7, .hashing_behind = true}},
  };
}

TEST(MigrationReplyCodec, RoundTripsEveryReply) {
  for (const m::Reply& r : reply_samples()) {
    std::string bytes = encode_migration_reply(r);
    Result<m::Reply> back = decode_migration_reply(bytes);
    ASSERT_TRUE(back.ok()) << r.index() << ": " << back.status().to_string();
    EXPECT_EQ(*back, r) << r.index();
  }
}

TEST(MigrationReplyCodec, NoReplyIsEmptyBytes) {
  EXPECT_TRUE(encode_migration_reply(m::Reply{}).empty());
  Result<m::Reply> r = decode_migration_reply("");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(std::holds_alternative<std::monostate>(*r));
}

TEST(MigrationReplyCodec, RejectsUnalignedAndTruncatedBytes) {
  for (const m::Reply& r : reply_samples()) {
    std::string bytes = encode_migration_reply(r);
    for (size_t len = 1; len < bytes.size(); ++len) {
      Result<m::Reply> back = decode_migration_reply(bytes.substr(0, len));
      ASSERT_FALSE(back.ok()) << r.index() << " cut to " << len;
      EXPECT_TRUE(back.status().is_corruption()) << back.status().to_string();
    }
  }
  EXPECT_TRUE(decode_migration_reply("not a reply").status().is_corruption());
}

TEST(MigrationReplyCodec, UnknownReplyKindIsCorruption) {
  std::string bytes = encode_migration_reply(m::Reply{m::OutcomeReply{1, 2, 3}});
  // Segment table (8 bytes), root pointer (8), then MigrationReply's data section: its union
  // discriminant (outcome = 1) as the first u16.
  ASSERT_GE(bytes.size(), 18u);
  ASSERT_EQ(bytes[16], 1) << "the layout this test assumes changed";
  bytes[16] = 42;
  Result<m::Reply> r = decode_migration_reply(bytes);
  EXPECT_TRUE(r.status().is_corruption()) << r.status().to_string();
}

TEST(MigrationReplyCodec, GarbageNeverCrashes) {
  std::mt19937_64 rng(20261202);
  std::vector<std::string> replies;
  for (const m::Reply& r : reply_samples()) {
    if (!std::holds_alternative<std::monostate>(r)) replies.push_back(encode_migration_reply(r));
  }
  for (int i = 0; i < 4000; ++i) {
    std::string bytes;
    if (i % 2 == 0) {
      bytes.resize(8 * (rng() % 32));
      for (char& ch : bytes) ch = static_cast<char>(rng());
    } else {
      bytes = replies[rng() % replies.size()];
      for (int flips = 1 + static_cast<int>(rng() % 4); flips > 0; --flips) {
        bytes[rng() % bytes.size()] ^= static_cast<char>(1u << (rng() % 8));
      }
    }
    Result<m::Reply> r = decode_migration_reply(bytes);
    if (!r.ok()) EXPECT_TRUE(r.status().is_corruption()) << r.status().to_string();
  }
}

}  // namespace
}  // namespace relive::wire
