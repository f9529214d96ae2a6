#include "transfer/file_transfer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <random>
#include <thread>

#include "common/hash.h"
#include "security/audit_log.h"
#include "security/replay_guard.h"
#include "security/request_gate.h"
#include "test_util.h"
#include "transfer/test_channel.h"

namespace relive::transfer {
namespace {

namespace m = relive::migration;
using relive::testing::read_all;
using relive::testing::TempDir;
using relive::testing::write_all_to;
using testing::MemoryChannel;
using testing::SocketPairChannel;

bool contains(const Status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

m::FileEntry entry(const std::string& name, const std::string& content) {
  return {name, content.size(), hash128_hex(content)};
}

// Adds bulk events carrying `content` as file `index`, in pieces of `piece` bytes.
void add_contents(BulkSender* out, uint32_t index, const std::string& content,
                  size_t piece = 1000) {
  for (size_t at = 0; at < content.size(); at += piece) {
    ASSERT_TRUE(out->add(event_header(index, 0) + content.substr(at, piece)).ok());
  }
}

// One file's contents as a whole bulk stream.
void send_contents(MemoryChannel* ch, uint32_t index, const std::string& content) {
  BulkSender out(ch);
  add_contents(&out, index, content);
  ASSERT_TRUE(out.flush().ok());
}

TEST(SafeRelativeName, AcceptsPlainPathsOnly) {
  for (const char* ok : {"core-1.img", "sub/dir/pages-2.img", "a.b..c"}) {
    EXPECT_TRUE(safe_relative_name(ok)) << ok;
  }
  for (const char* bad :
       {"", "/etc/passwd", "..", "../x", "a/../../x", "a/..", "./a", "a/./b", "a/"}) {
    EXPECT_FALSE(safe_relative_name(bad)) << bad;
  }
}

TEST(ReceiveFiles, WritesAnnouncedFiles) {
  TempDir dir;
  MemoryChannel ch;
  std::string a = random_bytes(5000, 1), b = "tiny";
  m::FileBatch batch{"images", {entry("a.img", a), entry("sub/b.img", b)}};
  BulkSender out(&ch);
  add_contents(&out, 0, a);
  add_contents(&out, 1, b);
  ASSERT_TRUE(out.flush().ok());
  Status s = receive_files(&ch, batch, dir / "dest");
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(read_all(dir / "dest/a.img"), a);
  EXPECT_EQ(read_all(dir / "dest/sub/b.img"), b);
}

TEST(ReceiveFiles, RefusesNameWithDotDot) {
  TempDir dir;
  MemoryChannel ch;
  m::FileBatch batch{"images", {entry("../escaped.img", "x")}};
  send_contents(&ch, 0, "x");
  Status s = receive_files(&ch, batch, dir / "dest");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.to_string();
  EXPECT_TRUE(contains(s, "unsafe file name ../escaped.img")) << s.to_string();
  EXPECT_FALSE(std::filesystem::exists(dir / "escaped.img"));
}

TEST(ReceiveFiles, RefusesAbsoluteName) {
  TempDir dir;
  MemoryChannel ch;
  std::string target = dir / "abs.img";
  m::FileBatch batch{"images", {entry(target, "x")}};
  send_contents(&ch, 0, "x");
  Status s = receive_files(&ch, batch, dir / "dest");
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.to_string();
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST(ReceiveFiles, MoreBytesThanAnnouncedIsCorruption) {
  TempDir dir;
  MemoryChannel ch;
  std::string content = random_bytes(3000, 2);
  m::FileEntry e = entry("a.img", content);
  e.size = 2000;  // the sender sends 3000
  send_contents(&ch, 0, content);
  Status s = receive_files(&ch, m::FileBatch{"images", {e}}, dir.path());
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_TRUE(contains(s, "more bytes than announced")) << s.to_string();
}

TEST(ReceiveFiles, FewerBytesThanAnnouncedFails) {
  TempDir dir;
  MemoryChannel ch;
  std::string content = random_bytes(3000, 3);
  m::FileEntry e = entry("a.img", content);
  e.size = 4000;  // the stream ends after 3000
  send_contents(&ch, 0, content);
  EXPECT_FALSE(receive_files(&ch, m::FileBatch{"images", {e}}, dir.path()).ok());
}

TEST(ReceiveFiles, ChecksumMismatchIsCorruption) {
  TempDir dir;
  MemoryChannel ch;
  std::string content = random_bytes(3000, 4);
  m::FileEntry e = entry("a.img", content);
  content[1234] ^= 0x20;  // same size, other bytes
  send_contents(&ch, 0, content);
  Status s = receive_files(&ch, m::FileBatch{"images", {e}}, dir.path());
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_TRUE(contains(s, "a.img: checksum mismatch")) << s.to_string();
}

TEST(ReceiveFiles, DataForUnknownFileIsCorruption) {
  TempDir dir;
  MemoryChannel ch;
  m::FileBatch batch{"images", {entry("a.img", "abc")}};
  send_contents(&ch, 1, "abc");
  Status s = receive_files(&ch, batch, dir.path());
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_TRUE(contains(s, "unknown file")) << s.to_string();
}

TEST(ReceiveFiles, FlippedByteInBulkSegmentIsCorruption) {
  TempDir dir;
  MemoryChannel ch;
  std::string content = random_bytes(20000, 5);
  send_contents(&ch, 0, content);
  ch.raw[ch.raw.size() / 2] ^= 0x04;
  Status s = receive_files(&ch, m::FileBatch{"images", {entry("a.img", content)}}, dir.path());
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
}

// A destination that takes one FileBatch through a real Link and RequestGate, as relived does.
class FileTransferOverLink : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<security::AuditLog> log = security::AuditLog::open(dir_ / "audit.jsonl");
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    log_.emplace(std::move(log).value());
    gate_.emplace(&guard_, &*log_);
  }

  // Serves one command on `link`: receives its files into dest and answers.
  Status serve(Link* link, const std::string& dest) {
    Result<m::Command> c = link->next_command(&*gate_);
    if (!c.ok()) return c.status();
    const auto* batch = std::get_if<m::FileBatch>(&*c);
    if (batch == nullptr) return Status::Corruption("expected files");
    Status s = receive_files(&link->channel(), *batch, dest + "/" + batch->dir);
    if (!s.ok()) {
      (void)link->fail(s);
      return s;
    }
    return link->ack();
  }

  TempDir dir_;
  security::ReplayGuard guard_;
  std::optional<security::AuditLog> log_;
  std::optional<security::RequestGate> gate_;
};

TEST_F(FileTransferOverLink, SendsFilesWithSizesAndChecksums) {
  ASSERT_EQ(::mkdir((dir_ / "src").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir_ / "src/sub").c_str(), 0700), 0);
  std::string big = random_bytes(9u << 20, 6);  // several segments
  write_all_to(dir_ / "src/pages-1.img", big);
  write_all_to(dir_ / "src/empty.img", "");
  write_all_to(dir_ / "src/sub/core-7.img", "core");

  auto [a, b] = SocketPairChannel::pair();
  ASSERT_TRUE(a && b);
  Link source(std::move(a)), destination(std::move(b));
  Status served;
  std::thread dest([&] { served = serve(&destination, dir_ / "dst"); });
  Result<uint64_t> wire =
      send_files(&source, "images", dir_ / "src", {"pages-1.img", "empty.img", "sub/core-7.img"});
  dest.join();
  ASSERT_TRUE(served.ok()) << served.to_string();
  ASSERT_TRUE(wire.ok()) << wire.status().to_string();
  EXPECT_GT(*wire, 0u);
  EXPECT_EQ(read_all(dir_ / "dst/images/pages-1.img"), big);
  EXPECT_EQ(read_all(dir_ / "dst/images/empty.img"), "");
  EXPECT_EQ(read_all(dir_ / "dst/images/sub/core-7.img"), "core");
}

TEST_F(FileTransferOverLink, DestinationRefusalReachesTheSource) {
  write_all_to(dir_ / "x.img", "data");
  auto [a, b] = SocketPairChannel::pair();
  ASSERT_TRUE(a && b);
  Link source(std::move(a)), destination(std::move(b));
  Status served;
  // The destination's directory is a file: creating the images fails there.
  write_all_to(dir_ / "dst", "not a directory");
  std::thread dest([&] { served = serve(&destination, dir_ / "dst"); });
  Result<uint64_t> wire = send_files(&source, "images", dir_.path(), {"x.img"});
  dest.join();
  EXPECT_FALSE(served.ok());
  ASSERT_FALSE(wire.ok());
  EXPECT_TRUE(contains(wire.status(), "destination: ")) << wire.status().to_string();
}

TEST_F(FileTransferOverLink, MissingSourceFileFailsBeforeSending) {
  MemoryChannel* raw = new MemoryChannel;
  Link source{std::unique_ptr<security::Channel>(raw)};
  Result<uint64_t> wire = send_files(&source, "images", dir_.path(), {"absent.img"});
  ASSERT_FALSE(wire.ok());
  EXPECT_TRUE(raw->frames.empty());
  EXPECT_TRUE(raw->raw.empty());
}

}  // namespace
}  // namespace relive::transfer
