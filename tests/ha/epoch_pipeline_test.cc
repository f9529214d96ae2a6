#include "ha/epoch_pipeline.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "common/file_util.h"
#include "ha/replica.h"
#include "test_util.h"
#include "transfer/link_pair.h"

namespace relive::ha {
namespace {

namespace m = relive::migration;
using relive::testing::eventually;
using relive::testing::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A primary's pipeline against a backup thread applying epochs to a Replica, as relived's
// backup does; the backup can be held (it stops reading) to fall behind.
class EpochPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(links_.open().ok());
    ASSERT_TRUE(links_.hello().ok());
    auto r = Replica::open(dir_ / "replica", 1 << 20);
    ASSERT_TRUE(r.ok());
    replica_ = std::move(*r);
    backup_ = std::thread([this] { serve(); });
  }
  void TearDown() override {
    hold(false);
    pipeline_.reset();
    links_.destination().close();
    if (backup_.joinable()) backup_.join();
  }
  void serve() {
    transfer::Link& link = links_.destination();
    for (;;) {
      Result<m::Command> c = link.next_command(links_.gate());
      if (!c.ok()) return;
      {
        std::unique_lock<std::mutex> l(hold_mu_);
        hold_cv_.wait(l, [this] { return !held_; });
      }
      Status s = Status::Ok();
      if (const auto* e = std::get_if<m::HaEpoch>(&*c)) {
        s = replica_->begin(*e);
      } else if (const auto* f = std::get_if<m::FileBatch>(&*c)) {
        s = replica_->receive_images(&link.channel(), *f);
      } else if (std::holds_alternative<m::PageRound>(*c)) {
        s = replica_->receive_pages(&link.channel());
      } else if (const auto* d = std::get_if<m::HaDir>(&*c)) {
        s = replica_->receive_dir(&link.channel(), *d);
      } else if (const auto* k = std::get_if<m::HaCommit>(&*c)) {
        s = replica_->commit(k->epoch);
        if (s.ok()) applied_.push_back(k->epoch);
      } else if (std::holds_alternative<m::HaHeartbeat>(*c)) {
        ++heartbeats_;
      }
      if (!(s.ok() ? link.ack() : link.fail(s)).ok() || !s.ok()) return;
    }
  }
  // Epoch `n`: one page of process 1, an own images directory with no file.
  CapturedEpoch epoch(uint64_t n, bool full) {
    CapturedEpoch e;
    e.number = n;
    e.full = full;
    e.images_dir = dir_ / ("epoch-" + std::to_string(n));
    e.own_dir = true;
    EXPECT_TRUE(make_dirs(e.images_dir).ok());
    std::string pages = e.images_dir + "/pages";
    EXPECT_TRUE(write_file_atomic(pages, std::string(4096, static_cast<char>('a' + n))).ok());
    e.runs.push_back({1, 0x10000, 1, pages, 0});
    e.changed_pages = 1;
    return e;
  }
  void start(size_t in_flight) {
    EpochPipeline::Options o;
    o.primary = "alpha";
    o.max_in_flight = in_flight;
    o.heartbeat = milliseconds(20);
    o.wake = [this] { ++wakes_; };
    pipeline_ = std::make_unique<EpochPipeline>(links_.take_source(), std::move(o));
  }

  TempDir dir_;
  transfer::testing::LinkPair links_{dir_ / "audit.log"};
  std::unique_ptr<Replica> replica_;
  std::thread backup_;
  // While held, the backup reads a command and then waits before acting on it.
  void hold(bool on) {
    {
      std::lock_guard<std::mutex> l(hold_mu_);
      held_ = on;
    }
    hold_cv_.notify_all();
  }
  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  bool held_ = false;
  std::vector<uint64_t> applied_;
  std::atomic<int> heartbeats_{0}, wakes_{0};
  std::unique_ptr<EpochPipeline> pipeline_;
};

TEST_F(EpochPipelineTest, EpochsCommitInOrderAndABackupBehindStopsNewEpochs) {
  start(2);
  hold(true);  // the backup falls behind: nothing commits
  ASSERT_TRUE(pipeline_->has_room());
  pipeline_->submit(epoch(1, true), EpochPipeline::Clock::now());
  ASSERT_TRUE(pipeline_->has_room());
  pipeline_->submit(epoch(2, false), EpochPipeline::Clock::now());
  EXPECT_FALSE(pipeline_->has_room()) << "a third epoch in flight past max_in_flight 2";
  EXPECT_EQ(pipeline_->in_flight(), 2u);
  EXPECT_TRUE(pipeline_->take_committed().empty()) << "committed without the backup's ack";
  hold(false);
  std::vector<uint64_t> seen;
  ASSERT_TRUE(eventually(
      [&] {
        for (const auto& c : pipeline_->take_committed()) seen.push_back(c.epoch.number);
        return seen.size() == 2;
      },
      seconds(20)));
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(replica_->committed_epoch(), 2u);
  EXPECT_TRUE(pipeline_->has_room());
  EXPECT_GE(wakes_.load(), 2);
  // Shipped epochs' own directories go.
  EXPECT_FALSE(std::filesystem::exists(dir_ / "epoch-1"));
  // Idle: heartbeats keep the backup's silence detector quiet.
  ASSERT_TRUE(eventually([&] { return heartbeats_ >= 2; }, seconds(20)));
  Result<std::unique_ptr<transfer::Link>> link = pipeline_->drain();
  ASSERT_TRUE(link.ok()) << link.status().to_string();
  EXPECT_NE(*link, nullptr);
}

TEST_F(EpochPipelineTest, ARefusedEpochStopsThePipelineWithTheBackupsReason) {
  start(2);
  pipeline_->submit(epoch(5, false), EpochPipeline::Clock::now());  // a delta with no base
  ASSERT_TRUE(eventually([&] { return pipeline_->failure().has_value(); }, seconds(20)));
  EXPECT_NE(pipeline_->failure()->to_string().find("no epoch yet"), std::string::npos)
      << pipeline_->failure()->to_string();
  EXPECT_FALSE(pipeline_->has_room());
  EXPECT_TRUE(pipeline_->take_committed().empty());
  EXPECT_FALSE(pipeline_->drain().ok());
}

}  // namespace
}  // namespace relive::ha
