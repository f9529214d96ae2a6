#include "ha/replica.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/file_util.h"
#include "ha/patch_bundle.h"
#include "ha/thread_state.h"
#include "test_util.h"
#include "transfer/page_cache.h"
#include "transfer/test_channel.h"

namespace relive::ha {
namespace {

namespace m = relive::migration;
using relive::testing::read_all;
using relive::testing::TempDir;
using relive::testing::write_all_to;

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = Replica::open(dir_ / "replica", 1 << 20);
    ASSERT_TRUE(r.ok());
    replica_ = std::move(*r);
  }
  // Sends a complete epoch: no images, one page per `pages` entry, one file write.
  Status send_epoch(uint64_t n, bool full, const std::string& file_content) {
    RELIVE_RETURN_IF_ERROR(replica_->begin({n, full, "alpha"}));
    transfer::testing::MemoryChannel ch;
    RELIVE_RETURN_IF_ERROR(replica_->receive_images(&ch, {"images", {}}));
    transfer::PageSender ps(&ch);
    RELIVE_RETURN_IF_ERROR(ps.add(1, 0x10000, std::string(4096, static_cast<char>('0' + n))));
    RELIVE_RETURN_IF_ERROR(ps.finish());
    RELIVE_RETURN_IF_ERROR(replica_->receive_pages(&ch));
    std::vector<DirChange> changes = {{DirChange::Kind::kSize, "state", 0, 0644, ""},
                                      {DirChange::Kind::kWrite, "state", 0, 0, file_content}};
    RELIVE_RETURN_IF_ERROR(send_dir_changes(&ch, changes));
    RELIVE_RETURN_IF_ERROR(replica_->receive_dir(&ch, {2, file_content.size()}));
    return replica_->commit(n);
  }
  std::string state() const { return read_all(dir_ / "replica/files/state"); }
  // A fast epoch `n`: page 0x10000 of process 1 and `bundle` as its one image file (put into the
  // staging area where received images land).
  Status send_patch_epoch(uint64_t n, const std::string& bundle) {
    RELIVE_RETURN_IF_ERROR(replica_->begin({n, false, "alpha", true}));
    transfer::testing::MemoryChannel ch;
    RELIVE_RETURN_IF_ERROR(replica_->receive_images(&ch, {"images", {}}));
    write_all_to(dir_ / ("replica/staging/" + std::string(kPatchBundle)), bundle);
    transfer::PageSender ps(&ch);
    RELIVE_RETURN_IF_ERROR(ps.add(1, 0x10000, std::string(4096, 'f')));
    RELIVE_RETURN_IF_ERROR(ps.finish());
    RELIVE_RETURN_IF_ERROR(replica_->receive_pages(&ch));
    RELIVE_RETURN_IF_ERROR(send_dir_changes(&ch, {}));
    RELIVE_RETURN_IF_ERROR(replica_->receive_dir(&ch, {0, 0}));
    return replica_->commit(n);
  }
  // Epoch `n` of a VM with one disk: RAM page 0 and the disk blocks `blocks` (offset, byte);
  // committed when `commit`.
  Status send_vm_epoch(uint64_t n, bool full, const std::vector<std::pair<uint64_t, char>>& blocks,
                       bool commit = true) {
    RELIVE_RETURN_IF_ERROR(replica_->begin({n, full, "alpha"}));
    transfer::testing::MemoryChannel ch;
    RELIVE_RETURN_IF_ERROR(replica_->receive_images(&ch, {"images", {}}));
    transfer::PageSender ps(&ch);
    RELIVE_RETURN_IF_ERROR(ps.add(kVmRamPid, 0, std::string(4096, 'r')));
    for (const auto& [offset, byte] : blocks)
      RELIVE_RETURN_IF_ERROR(ps.add(kVmDiskPidBase, offset, std::string(4096, byte)));
    RELIVE_RETURN_IF_ERROR(ps.finish());
    RELIVE_RETURN_IF_ERROR(replica_->receive_pages(&ch));
    RELIVE_RETURN_IF_ERROR(send_dir_changes(&ch, {}));
    RELIVE_RETURN_IF_ERROR(replica_->receive_dir(&ch, {0, 0}));
    return commit ? replica_->commit(n) : Status::Ok();
  }

  TempDir dir_;
  std::unique_ptr<Replica> replica_;
};

// A fast epoch's bundle is checked before anything is applied: a corrupt one is refused and the
// committed epoch (pages included) stays; a good one commits and is unpacked over the base's
// images when they are built.
TEST_F(ReplicaTest, AFastEpochWithACorruptBundleIsRefusedAndAGoodOneCommits) {
  ASSERT_TRUE(send_epoch(1, true, "one").ok());
  FastState fs;
  ThreadState t;
  t.pid = t.tid = 1;
  t.xstate = std::string(576, 'x');
  fs.threads.push_back(t);
  std::string good = encode_patch_bundle({{kThreadsImage, encode_fast_state(fs)}});
  std::string torn = good.substr(0, good.size() - 9);
  std::string bad_threads = encode_patch_bundle({{kThreadsImage, "RLVTHRD1garbage"}});
  std::string stranger =
      encode_patch_bundle({{kThreadsImage, encode_fast_state(fs)}, {"inventory.img", "x"}});
  for (const std::string& b : {torn, bad_threads, stranger}) {
    EXPECT_FALSE(send_patch_epoch(2, b).ok());
    EXPECT_EQ(replica_->committed_epoch(), 1u);
  }
  Status s = send_patch_epoch(2, good);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(replica_->committed_epoch(), 2u);
  ASSERT_TRUE(replica_->materialize(dir_ / "images", dir_ / "files").ok());
  EXPECT_EQ(read_all(dir_ / ("images/" + std::string(kThreadsImage))), encode_fast_state(fs));
  EXPECT_NE(::access((dir_ / ("images/" + std::string(kPatchBundle))).c_str(), F_OK), 0);
}

TEST_F(ReplicaTest, FullThenDeltaEpochsCommit) {
  Status s = send_epoch(1, true, "one");
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(replica_->committed_epoch(), 1u);
  ASSERT_TRUE(send_epoch(2, false, "two").ok());
  EXPECT_EQ(replica_->committed_epoch(), 2u);
  EXPECT_EQ(state(), "two");
}

// A VM's RAM is materialized only when every page of it arrived: a primary that sent less is
// an error at takeover, never a guest booting on zero pages.
TEST_F(ReplicaTest, AVmRamWithAPageNeverReceivedIsRefused) {
  ASSERT_TRUE(send_epoch(1, true, "one").ok());  // one page, at RAM offset 0x10000 (pid 1)
  Status s = replica_->materialize_vm(dir_ / "images", dir_ / "ram", 0x11000);
  EXPECT_FALSE(s.ok()) << "RAM materialized with pages 0-15 missing";
}

TEST_F(ReplicaTest, ADeltaWithoutABaseIsRefused) {
  Status s = replica_->begin({5, false, "alpha"});
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(replica_->has_epoch());
}

TEST_F(ReplicaTest, AHalfReceivedEpochIsDiscardedNotApplied) {
  ASSERT_TRUE(send_epoch(1, true, "one").ok());
  // Epoch 2 gets as far as its pages, then the primary vanishes; epoch 3 comes next.
  ASSERT_TRUE(replica_->begin({2, false, "alpha"}).ok());
  EXPECT_FALSE(replica_->commit(2).ok()) << "an incomplete epoch committed";
  EXPECT_EQ(replica_->committed_epoch(), 1u);
  EXPECT_EQ(state(), "one");
  ASSERT_TRUE(send_epoch(3, false, "three").ok());
  EXPECT_EQ(state(), "three");
}

TEST_F(ReplicaTest, ACorruptPageStreamLeavesTheCommittedEpoch) {
  ASSERT_TRUE(send_epoch(1, true, "one").ok());
  ASSERT_TRUE(replica_->begin({2, false, "alpha"}).ok());
  transfer::testing::MemoryChannel ch;
  transfer::PageSender ps(&ch);
  ASSERT_TRUE(ps.add(1, 0x10000, std::string(4096, 'x')).ok());
  ASSERT_TRUE(ps.finish().ok());
  ch.raw[ch.raw.size() / 2] ^= 0x40;  // a flipped bit in the segment
  EXPECT_FALSE(replica_->receive_pages(&ch).ok());
  EXPECT_FALSE(replica_->commit(2).ok());
  EXPECT_EQ(replica_->committed_epoch(), 1u);
  EXPECT_EQ(state(), "one");
}

// A delta epoch's pages past limits.max_epoch_bytes (1 MiB here) wait on disk, and the epoch
// commits whole: the page store holds every page of it, in order.
TEST_F(ReplicaTest, ADeltaEpochLargerThanTheLimitWaitsOnDiskAndCommits) {
  auto pages_epoch = [&](uint64_t n, bool full,
                         const std::vector<std::pair<uint64_t, std::string>>& runs) -> Status {
    RELIVE_RETURN_IF_ERROR(replica_->begin({n, full, "alpha"}));
    transfer::testing::MemoryChannel ch;
    RELIVE_RETURN_IF_ERROR(replica_->receive_images(&ch, {"images", {}}));
    transfer::PageSender ps(&ch);
    for (const auto& [vaddr, bytes] : runs) RELIVE_RETURN_IF_ERROR(ps.add(1, vaddr, bytes));
    RELIVE_RETURN_IF_ERROR(ps.finish());
    RELIVE_RETURN_IF_ERROR(replica_->receive_pages(&ch));
    RELIVE_RETURN_IF_ERROR(send_dir_changes(&ch, {}));
    RELIVE_RETURN_IF_ERROR(replica_->receive_dir(&ch, {0, 0}));
    return replica_->commit(n);
  };
  const uint64_t mib = 1 << 20;
  ASSERT_TRUE(pages_epoch(1, true, {{0, std::string(3 * mib, 'a')}}).ok());
  // 512 KiB in memory, then 2 MiB past the limit, the last page of it written twice.
  Status s = pages_epoch(2, false,
                         {{0, std::string(mib / 2, 'b')},
                          {mib / 2, std::string(2 * mib, 'c')},
                          {mib / 2 + 2 * mib - 4096, std::string(4096, 'd')}});
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(replica_->committed_epoch(), 2u);
  EXPECT_NE(::access((dir_ / "replica/pages.spill").c_str(), F_OK), 0) << "the spill file stays";
  ASSERT_TRUE(replica_->materialize_vm(dir_ / "images", dir_ / "ram", 3 * mib).ok());
  std::string ram = read_all(dir_ / "ram");
  ASSERT_EQ(ram.size(), 3 * mib);
  EXPECT_EQ(ram.substr(0, mib / 2), std::string(mib / 2, 'b'));
  EXPECT_EQ(ram.substr(mib / 2, 2 * mib - 4096), std::string(2 * mib - 4096, 'c'));
  EXPECT_EQ(ram.substr(mib / 2 + 2 * mib - 4096, 4096), std::string(4096, 'd'));
  EXPECT_EQ(ram.substr(mib / 2 + 2 * mib), std::string(mib / 2, 'a'));
}

// A half-received delta that spilled to disk is discarded by the next epoch, never applied.
TEST_F(ReplicaTest, AHalfReceivedSpilledEpochIsDiscarded) {
  ASSERT_TRUE(send_epoch(1, true, "one").ok());
  ASSERT_TRUE(replica_->begin({2, false, "alpha"}).ok());
  transfer::testing::MemoryChannel ch;
  transfer::PageSender ps(&ch);
  ASSERT_TRUE(ps.add(1, 0x10000, std::string(2 << 20, 'x')).ok());  // limit is 1 MiB
  ASSERT_TRUE(ps.finish().ok());
  ASSERT_TRUE(replica_->receive_pages(&ch).ok());
  EXPECT_FALSE(replica_->commit(2).ok()) << "an incomplete epoch committed";
  ASSERT_TRUE(send_epoch(3, false, "three").ok());
  EXPECT_EQ(replica_->committed_epoch(), 3u);
  EXPECT_EQ(state(), "three");
  EXPECT_NE(::access((dir_ / "replica/pages.spill").c_str(), F_OK), 0);
}

// Warm images (Replica::stage): used only when complete and of the committed epoch.
class ReplicaStageTest : public ReplicaTest {
 protected:
  std::string out_state() const { return read_all(dir_ / "out/state"); }
  Status materialize() { return replica_->materialize(dir_ / "images", dir_ / "out"); }
};

TEST_F(ReplicaStageTest, AStageOfTheCommittedEpochIsMovedIntoPlace) {
  ASSERT_TRUE(send_epoch(1, true, "one").ok());
  ASSERT_TRUE(replica_->stage().ok());
  ASSERT_EQ(replica_->staged_epoch(), std::optional<uint64_t>(1));
  // Marks the staged copy, to tell it from one built from the replica.
  ASSERT_TRUE(write_file_atomic(dir_ / "replica/stage-1/files/state", "staged one").ok());
  Status s = materialize();
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(out_state(), "staged one");
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "images"));
  EXPECT_FALSE(replica_->staged_epoch().has_value()) << "a consumed stage still offered";
  EXPECT_FALSE(std::filesystem::exists(dir_ / "replica/stage-1"));
}

TEST_F(ReplicaStageTest, ATakeoverAfterANewerCommitIgnoresTheOlderStage) {
  ASSERT_TRUE(send_epoch(1, true, "one").ok());
  ASSERT_TRUE(replica_->stage().ok());
  ASSERT_TRUE(send_epoch(2, false, "two").ok());  // committed before epoch 2 was staged
  EXPECT_EQ(replica_->staged_epoch(), std::optional<uint64_t>(1));
  ASSERT_TRUE(materialize().ok());
  EXPECT_EQ(out_state(), "two") << "restored from a stage older than the committed epoch";
}

TEST_F(ReplicaStageTest, ANewerCommitSupersedesTheStage) {
  ASSERT_TRUE(send_epoch(1, true, "one").ok());
  ASSERT_TRUE(replica_->stage().ok());
  ASSERT_TRUE(send_epoch(2, false, "two").ok());
  ASSERT_TRUE(replica_->stage().ok());
  EXPECT_EQ(replica_->staged_epoch(), std::optional<uint64_t>(2));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "replica/stage-1")) << "superseded stage kept";
  EXPECT_EQ(read_all(dir_ / "replica/stage-2/files/state"), "two");
  ASSERT_TRUE(materialize().ok());
  EXPECT_EQ(out_state(), "two");
}

TEST_F(ReplicaStageTest, AHalfWrittenStageIsNeverUsed) {
  ASSERT_TRUE(send_epoch(1, true, "one").ok());
  // A stage interrupted before its rename: present on disk, but never complete.
  std::filesystem::create_directories(dir_ / "replica/stage-1.tmp/files");
  std::filesystem::create_directories(dir_ / "replica/stage-1.tmp/images");
  ASSERT_TRUE(write_file_atomic(dir_ / "replica/stage-1.tmp/files/state", "torn").ok());
  EXPECT_FALSE(replica_->staged_epoch().has_value());
  ASSERT_TRUE(materialize().ok());
  EXPECT_EQ(out_state(), "one");
}

TEST_F(ReplicaStageTest, StagingWithoutACommittedEpochIsRefused) {
  EXPECT_FALSE(replica_->stage().ok());
  EXPECT_FALSE(replica_->staged_epoch().has_value());
}

// A VM's disk: the full epoch's copy, then each delta's blocks, applied only at commit; a takeover
// moves the committed copy to where the restored VM runs.
TEST_F(ReplicaTest, AVmDiskChangesOnlyWhenItsEpochCommits) {
  Status s = send_vm_epoch(1, true, {{0, 'a'}, {4096, 'b'}, {8192, 'c'}});
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(replica_->last_disk_bytes(), 3u * 4096);
  ASSERT_TRUE(send_vm_epoch(2, false, {{4096, 'B'}}).ok());
  // Epoch 3 arrives but never commits (the primary died first).
  ASSERT_TRUE(send_vm_epoch(3, false, {{8192, 'X'}, {0, 'X'}}, false).ok());
  std::string disk = read_all(dir_ / "replica/disk-0.raw");
  EXPECT_EQ(disk, std::string(4096, 'a') + std::string(4096, 'B') + std::string(4096, 'c'));
  ASSERT_TRUE(replica_->take_disk(0, dir_ / "vm-disk.raw").ok());
  EXPECT_EQ(read_all(dir_ / "vm-disk.raw"), disk);
  EXPECT_EQ(replica_->take_disk(0, dir_ / "again.raw").code(), Status::Code::kNotFound);
}

TEST_F(ReplicaTest, AVmDiskDeltaPastTheEpochLimitIsRefused) {
  ASSERT_TRUE(send_vm_epoch(1, true, {{0, 'a'}}).ok());
  std::vector<std::pair<uint64_t, char>> many;
  for (uint64_t i = 0; i < 300; ++i) many.emplace_back(i * 4096, 'z');  // > 1 MiB
  EXPECT_EQ(send_vm_epoch(2, false, many).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(read_all(dir_ / "replica/disk-0.raw"), std::string(4096, 'a'));
}

TEST_F(ReplicaTest, ABlockOfADiskBeyondTheLimitIsCorruption) {
  ASSERT_TRUE(replica_->begin({1, true, "alpha"}).ok());
  transfer::testing::MemoryChannel ch;
  transfer::PageSender ps(&ch);
  ASSERT_TRUE(ps.add(kVmDiskPidBase + kMaxVmDisks, 0, std::string(4096, 'x')).ok());
  ASSERT_TRUE(ps.finish().ok());
  EXPECT_EQ(replica_->receive_pages(&ch).code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace relive::ha
