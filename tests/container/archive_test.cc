// Real archives (from a real CRIU dump): inspect describes them; damaged ones (a flipped bit in
// any section, truncation, a wrong magic, a future version) are refused by restore before it
// unpacks or runs anything, and inspect reports the damage.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "common/version.h"
#include "ct_harness.h"
#include "wire/archive_codec.h"
#include "wire/le_bytes.h"

namespace relive::ct {
namespace {

// One archive of a small ct_files tree (open file, ghost file), made once for the suite.
class RealArchive : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto criu = criu::find_criu();
    if (!criu.ok()) return;
    dir_ = new testing::TempDir();
    Subject s("ct_files", *dir_ / "result", {dir_->path()});
    if (!s.ready()) return;
    ContainerCheckpointOptions o = checkpoint_options(s.pid(), *dir_ / "good.rlvc");
    o.leave_running = true;
    auto ck = checkpoint_container(o);
    if (ck.ok()) good_ = testing::read_all(*dir_ / "good.rlvc");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    RELIVE_REQUIRE_CRIU();
    ASSERT_FALSE(good_.empty()) << "the suite's checkpoint failed";
  }

  // Restore must refuse `bytes` with a Corruption or VersionMismatch, before unpacking.
  Status expect_refused(const std::string& bytes, const std::string& what) {
    testing::TempDir work;
    std::string path = work / "bad.rlvc";
    testing::write_all_to(path, bytes);
    ContainerRestoreOptions o = restore_options(path);
    o.work_dir = work.path();
    auto r = restore_container(o);
    if (r.ok()) {
      ::kill(r->init_pid, SIGKILL);
      ADD_FAILURE() << what << ": restored";
      return Status::Ok();
    }
    Status st = r.status();
    EXPECT_TRUE(st.is_corruption() || st.code() == Status::Code::kVersionMismatch)
        << what << ": " << st.to_string();
    for (const auto& e : std::filesystem::directory_iterator(work.path())) {
      EXPECT_EQ(e.path().filename(), "bad.rlvc") << what << ": restore left " << e.path();
    }
    auto inspected = inspect_container(path, false);
    EXPECT_EQ(inspected.status().code(), st.code()) << what << ": inspect disagrees";
    return st;
  }

  static size_t manifest_length() { return wire::get_u32(good_, 16); }

  static testing::TempDir* dir_;
  static std::string good_;
};

testing::TempDir* RealArchive::dir_ = nullptr;
std::string RealArchive::good_;

TEST_F(RealArchive, InspectDescribesTheTree) {
  auto text = inspect_container(*dir_ / "good.rlvc", true);
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  auto j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["format_version"], 1);
  EXPECT_TRUE(j["verified"].get<bool>());
  EXPECT_EQ(j["criu_version"], "4.1.1");
  EXPECT_EQ(j["relive_version"], kVersion) << "the version that made the archive";
  ASSERT_EQ(j["processes"].size(), 1u);
  EXPECT_EQ(j["processes"][0]["comm"], "ct_files");
  EXPECT_GT(j["memory"]["pages"].get<uint64_t>(), 0u);
  EXPECT_GE(j["ghost_files"].get<int>(), 1) << "the deleted file's contents must be inside";
  bool open_file = false;
  for (const auto& f : j["files"]) open_file |= f.get<std::string>() == *dir_ / "open.txt";
  EXPECT_TRUE(open_file) << j["files"].dump();
  EXPECT_GT(j["dump_stats"]["frozen_us"].get<int64_t>(), 0);
  for (const auto& e : j["entries"]) EXPECT_EQ(e["checksum"].get<std::string>().size(), 32u);
  auto plain = inspect_container(*dir_ / "good.rlvc", false);
  ASSERT_TRUE(plain.ok());
  EXPECT_NE(plain->find("all checksums verified"), std::string::npos) << *plain;
}

TEST_F(RealArchive, RefusesAFlippedBitInEverySection) {
  size_t data = wire::kArchiveHeaderBytes + manifest_length();
  struct At {
    const char* section;
    size_t offset;
  } spots[] = {
      {"header", 20},
      {"manifest", wire::kArchiveHeaderBytes + manifest_length() / 2},
      {"first frame header", data + 5},
      {"first frame payload", data + wire::kArchiveFrameHeaderBytes + 1},
      {"middle of the data", data + (good_.size() - data) / 2},
      {"trailer", good_.size() - 10},
  };
  for (const auto& s : spots) {
    std::string bad = good_;
    bad[s.offset] = static_cast<char>(bad[s.offset] ^ 0x10);
    Status st = expect_refused(bad, s.section);
    EXPECT_TRUE(st.is_corruption()) << s.section << ": " << st.to_string();
  }
}

TEST_F(RealArchive, RefusesTruncatedArchives) {
  for (size_t len : {size_t{0}, size_t{5}, size_t{31}, wire::kArchiveHeaderBytes + 7,
                     good_.size() / 2, good_.size() - 1}) {
    Status st = expect_refused(good_.substr(0, len), "truncated to " + std::to_string(len));
    EXPECT_TRUE(st.is_corruption()) << st.to_string();
  }
}

TEST_F(RealArchive, RefusesWrongMagic) {
  std::string bad = good_;
  bad.replace(0, 4, "ZZZZ");
  Status st = expect_refused(bad, "wrong magic");
  EXPECT_NE(st.message().find("not a relive container archive"), std::string::npos)
      << st.to_string();
}

TEST_F(RealArchive, RefusesAFutureVersion) {
  std::string bad = good_;
  std::string v, sum;
  wire::put_u32(&v, 2);
  bad.replace(8, 4, v);
  wire::put_u32(&sum, hash32(std::string_view(bad).substr(0, 28)));
  bad.replace(28, 4, sum);
  Status st = expect_refused(bad, "future version");
  EXPECT_EQ(st.code(), Status::Code::kVersionMismatch) << st.to_string();
  EXPECT_NE(st.message().find("version 2 is newer"), std::string::npos) << st.to_string();
}

TEST_F(RealArchive, InspectOfADamagedArchiveStillShowsItsManifest) {
  std::string bad = good_;
  bad[good_.size() - 100] ^= 0x01;
  testing::TempDir work;
  testing::write_all_to(work / "bad.rlvc", bad);
  std::string partial;
  auto r = inspect_container(work / "bad.rlvc", true, &partial);
  ASSERT_FALSE(r.ok());
  auto j = nlohmann::json::parse(partial);
  EXPECT_FALSE(j["verified"].get<bool>());
  EXPECT_EQ(j["processes"][0]["comm"], "ct_files");
  EXPECT_NE(j["error"].get<std::string>().find("corruption"), std::string::npos) << j["error"];
}

// Processes named `comm` outside our PID namespace: what a failed restore must not leave.
int namespaced_processes(const std::string& comm) {
  std::error_code ec;
  auto self_ns = std::filesystem::read_symlink("/proc/self/ns/pid", ec);
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    if (testing::read_all(e.path() / "comm") != comm + "\n") continue;
    n += std::filesystem::read_symlink(e.path() / "ns" / "pid", ec) != self_ns;
  }
  return n;
}

TEST_F(RealArchive, FailedCriuRestoreLeavesNothingRunning) {
  // CRIU reopens regular files by path: without open.txt the restore fails inside CRIU.
  std::string file = *dir_ / "open.txt";
  std::filesystem::rename(file, file + ".away");
  testing::TempDir work;  // CRIU's log of the failed restore stays there
  ContainerRestoreOptions o = restore_options(*dir_ / "good.rlvc");
  o.work_dir = work.path();
  auto r = restore_container(o);
  std::filesystem::rename(file + ".away", file);
  ASSERT_FALSE(r.ok());
  std::printf("expected failure: %s\n", r.status().to_string().c_str());
  EXPECT_NE(r.status().message().find("criu restore"), std::string::npos);
  EXPECT_TRUE(wait_until([] { return namespaced_processes("ct_files") == 0; }, milliseconds(5000)));
}

}  // namespace
}  // namespace relive::ct
