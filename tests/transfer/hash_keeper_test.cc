// HashKeeper against a real process (tests/subjects/dirty_writer.c): the table it keeps while the
// process writes, drops pages and maps memory must agree, page for page, with one taken from
// scratch once the process is stopped.
#include "transfer/hash_keeper.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>

#include "common/process_tree.h"
#include "dirty/subject_process.h"

namespace relive::transfer {
namespace {

using std::chrono::milliseconds;
using testing::SubjectProcess;
constexpr uint64_t kPage = 4096;

using Buffer = testing::WriterBuffer;

bool stop(pid_t pid) {
  if (::kill(pid, SIGSTOP) != 0) return false;
  return testing::eventually([&] { return task_state(pid) == 'T'; }, std::chrono::seconds(30));
}

// Every hash `kept` holds is the page's hash now; returns how many it holds in [addr, +pages).
uint64_t expect_agrees(const PageHashTable& kept, const PageHashTable& fresh, const Buffer& b) {
  uint64_t held = 0;
  for (uint64_t i = 0; i < b.pages; ++i) {
    uint64_t v = b.addr + i * kPage;
    std::optional<uint64_t> k = kept.find(v);
    if (!k) continue;
    ++held;
    EXPECT_EQ(k, fresh.find(v)) << "page " << i << " of the buffer";
  }
  return held;
}

TEST(HashKeeper, KeptHashesAgreeWithFreshOnesAfterWritesAndDrops) {
  SubjectProcess s("dirty_writer", {"8"});
  Buffer b = testing::writer_buffer(s);
  ASSERT_GT(b.pages, 1000u);
  // No period of its own within the test: only refresh() and freeze() catch up.
  auto k = HashKeeper::start(s.pid(), std::chrono::hours(1));
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  ASSERT_TRUE((*k)->refresh().ok());  // the first pass is done: what follows is incremental
  EXPECT_TRUE((*k)->hashed_once());
  EXPECT_EQ(s.cmd("w 1 2 3 500 1000"), "ok");
  ASSERT_TRUE((*k)->refresh().ok());
  EXPECT_EQ(s.cmd("w 3 4 1500"), "ok");
  EXPECT_EQ(s.cmd("d 600 10"), "ok");  // zero-filled without a write
  ASSERT_TRUE(stop(s.pid()));
  ASSERT_TRUE((*k)->freeze().ok());
  auto kept = (*k)->table();
  ASSERT_TRUE(kept.ok()) << kept.status().to_string();
  auto fresh = PageHashTable::of_anonymous_memory(s.pid());
  ASSERT_TRUE(fresh.ok()) << fresh.status().to_string();
  // Every page of the buffer stayed tracked: the kept table vouches for all of them.
  EXPECT_EQ(expect_agrees(*kept, *fresh, b), b.pages);
  k->reset();  // disarms
  ASSERT_EQ(::kill(s.pid(), SIGCONT), 0);
  EXPECT_EQ(s.cmd("check"), "ok");
}

TEST(HashKeeper, ReplacedPagesLoseTheirHashInsteadOfKeepingAStaleOne) {
  SubjectProcess s("dirty_writer", {"8"});
  Buffer b = testing::writer_buffer(s);
  auto k = HashKeeper::start(s.pid(), milliseconds(20));
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  ASSERT_TRUE((*k)->refresh().ok());
  EXPECT_EQ(s.cmd("r 100 4"), "ok");  // a fresh mapping where tracked pages were
  EXPECT_EQ(s.cmd("w 100 101"), "ok");
  std::string mapped = s.cmd("m 1");  // memory the keeper never tracked
  ASSERT_EQ(mapped.rfind("ok ", 0), 0u) << mapped;
  ASSERT_TRUE(stop(s.pid()));
  ASSERT_TRUE((*k)->freeze().ok());
  auto kept = (*k)->table();
  ASSERT_TRUE(kept.ok()) << kept.status().to_string();
  auto fresh = PageHashTable::of_anonymous_memory(s.pid());
  ASSERT_TRUE(fresh.ok());
  uint64_t held = expect_agrees(*kept, *fresh, b);
  EXPECT_GE(held, b.pages - 4);
  uint64_t region = std::stoull(mapped.substr(3), nullptr, 16);
  EXPECT_FALSE(kept->find(region).has_value()) << "an untracked mapping cannot be vouched for";
  ASSERT_EQ(::kill(s.pid(), SIGCONT), 0);
}

TEST(HashKeeper, AProcessThatDiesEndsTheKeeperWithAnError) {
  auto s = std::make_unique<SubjectProcess>("dirty_writer", std::vector<std::string>{"4"});
  auto k = HashKeeper::start(s->pid(), milliseconds(10));
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  ASSERT_TRUE((*k)->refresh().ok());
  s.reset();  // killed and reaped
  Status refreshed = (*k)->refresh();
  EXPECT_FALSE(refreshed.ok());
  EXPECT_FALSE((*k)->freeze().ok());
}

TEST(HashKeeper, StartOnAMissingProcessIsNotFound) {
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ASSERT_GT(gone, 0);
  ::waitpid(gone, nullptr, 0);
  auto k = HashKeeper::start(gone, milliseconds(10));
  EXPECT_EQ(k.status().code(), Status::Code::kNotFound) << k.status().to_string();
}

}  // namespace
}  // namespace relive::transfer
