// The recorder's event order on a real multi-threaded program, through an in-memory sink: the
// invariants the replayer depends on.
#include "record/record_session.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "test_util.h"
#include "trace/file_store.h"
#include "tracee/launch.h"
#include "tracee/process_setup.h"

namespace relive::record {
namespace {

// The thread an event belongs to; 0 for process-wide events.
int32_t tid_of(const trace::Event& e) {
  return std::visit(
      [](const auto& ev) -> int32_t {
        if constexpr (requires { ev.tid; })
          return ev.tid;
        else
          return 0;
      },
      e);
}

std::vector<trace::Event> record_in_memory(const std::vector<std::string>& argv, int* status,
                                           pid_t* launched = nullptr) {
  relive::testing::TempDir dir;
  auto files = trace::FileStore::open(dir / "files");
  EXPECT_TRUE(files.ok());
  tracee::LaunchSpec spec{argv[0], argv, {"PATH=/usr/bin:/bin"}, "/", true, {}, -1};
  auto pid = tracee::launch_traced(spec);
  EXPECT_TRUE(pid.ok()) << pid.status().to_string();
  if (launched != nullptr) *launched = *pid;
  EXPECT_TRUE(tracee::setup_process(tracee::Task(*pid), true).ok());
  MemorySink sink;
  SyscallCapture capture(&*files);
  RecordSession session(RecordSession::Mode::kSeccomp, &sink, &capture);
  session.add_initial_thread(*pid);
  auto st = session.run();
  EXPECT_TRUE(st.ok()) << st.status().to_string();
  *status = st.ok() ? *st : -1;
  return sink.all();
}

TEST(RecordSession, ThreadEventsFollowTheirCreationAndEntriesPrecedeResults) {
  int status = 0;
  pid_t first_tid = 0;
  auto events = record_in_memory(
      {relive::testing::test_bin_dir() + "/subjects/threads_counter", "3"}, &status, &first_tid);
  EXPECT_EQ(status, 0);
  ASSERT_FALSE(events.empty());
  std::set<int32_t> known;
  std::map<int32_t, int> parked;  // tid -> syscall nr it is parked in
  known.insert(first_tid);
  size_t entries = 0;
  for (const trace::Event& e : events) {
    // Every event of a thread (rdtsc ones too, where rdtsc traps) follows its creation.
    if (int32_t tid = tid_of(e); tid != 0) {
      ASSERT_TRUE(known.count(tid)) << "event of thread " << tid;
    }
    if (auto* s = std::get_if<trace::SyscallEvent>(&e)) {
      ASSERT_TRUE(known.count(s->tid)) << "event of a thread before its clone";
      if (parked.count(s->tid)) {
        EXPECT_EQ(parked[s->tid], s->nr) << "result of another syscall than the parked one";
        parked.erase(s->tid);
      }
      if ((s->nr == 435 /*clone3*/ || s->nr == 56 /*clone*/) && s->result > 0)
        known.insert(static_cast<int32_t>(s->result));
    } else if (auto* en = std::get_if<trace::SyscallEntryEvent>(&e)) {
      ASSERT_TRUE(known.count(en->tid));
      EXPECT_FALSE(parked.count(en->tid)) << "two entries without a result";
      parked[en->tid] = en->nr;
      ++entries;
    }
  }
  EXPECT_EQ(known.size(), 4u);  // main + 3 workers
  EXPECT_GT(entries, 0u) << "threads blocked in futex should have logged entries";
  EXPECT_TRUE(std::holds_alternative<trace::ProcessExitEvent>(events.back()));
}

TEST(RecordSession, SingleThreadedProgramsLogNoEntryEvents) {
  int status = 0;
  auto events = record_in_memory({"/bin/ls", "/"}, &status);
  EXPECT_EQ(status, 0);
  for (const trace::Event& e : events)
    EXPECT_FALSE(std::holds_alternative<trace::SyscallEntryEvent>(e));
}

}  // namespace
}  // namespace relive::record
