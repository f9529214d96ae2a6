// The destination's session driven over a socketpair by a hand-written source that sends
// commands out of order: each is refused with an error naming it, audited, and the session
// undoes what it held.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "migrate/destination.h"
#include "test_util.h"
#include "transfer/link_pair.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;
using transfer::testing::LinkPair;

class DestinationOrder : public ::testing::Test {
 protected:
  void SetUp() override {
    Status opened = links_.open();
    ASSERT_TRUE(opened.ok()) << opened.to_string();
    source_ = &links_.source();
    options_.node_name = "beta";
    options_.work_root = dir_ / "work";
    options_.insecure = true;
    std::filesystem::create_directories(options_.work_root);
    served_ = std::async(std::launch::async, [this] {
      return serve_migration(&links_.destination(), links_.gate(), options_).status();
    });
    ASSERT_TRUE(source_->hello("alpha").ok());
  }

  // Begins a stop-copy migration of a process tree.
  void begin() {
    m::Begin b;
    b.name = "order";
    b.source_node = "alpha";
    Result<std::string> r = source_->call(b);  // finds CRIU (scripts/bootstrap.sh installs it)
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  relive::testing::TempDir dir_;
  LinkPair links_{dir_ / "audit.jsonl"};
  DestinationOptions options_;
  transfer::Link* source_ = nullptr;
  std::future<Status> served_;
};

TEST_F(DestinationOrder, CommitBeforeRestoreIsRefusedAndAudited) {
  begin();
  if (HasFatalFailure()) return;
  ASSERT_TRUE(source_->call(m::FileBatch{"images", {}}).ok());
  Result<std::string> r = source_->call(m::Commit{});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(source_->peer_refused());
  const std::string why = "migrate.commit is out of order: the migration is receiving here";
  EXPECT_EQ(r.status().message(), "destination: " + why);
  Status served = served_.get();
  EXPECT_EQ(served.message(), why);
  auto refused = links_.refusals();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0]["command"], "migrate.commit");
  EXPECT_EQ(refused[0]["reason"], why);
  // Nothing of the migration is left in its work root.
  EXPECT_TRUE(std::filesystem::is_empty(options_.work_root));
}

TEST_F(DestinationOrder, SecondBeginIsRefusedAndAudited) {
  begin();
  if (HasFatalFailure()) return;
  m::Begin again;
  again.name = "other";
  Result<std::string> r = source_->call(again);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(source_->peer_refused());
  EXPECT_EQ(r.status().message(),
            "destination: migrate.begin is out of order: the migration is receiving here");
  (void)served_.get();
  auto refused = links_.refusals();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0]["command"], "migrate.begin");
}

}  // namespace
}  // namespace relive::migrate
