#include "migrate/destination_phase.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;
using S = DestinationState;

m::LogRound log_round(bool final) {
  m::LogRound l;
  l.final = final;
  return l;
}

// Steps through `commands`, all of which must be in order.
void walk(DestinationPhase* p, const std::vector<m::Command>& commands) {
  for (const auto& c : commands) ASSERT_TRUE(p->step(c).ok()) << m::command_name(c);
}

TEST(DestinationPhase, ProcessFlowsInOrder) {
  DestinationPhase stop_copy(DestinationFlow::kProcess);
  walk(&stop_copy, {m::FileBatch{}, m::Restore{}, m::Commit{}});
  EXPECT_EQ(stop_copy.state(), S::kCommitted);

  DestinationPhase precopy(DestinationFlow::kProcess);
  walk(&precopy, {m::PageRound{}, m::PageRound{}, m::FileBatch{}, m::Restore{}, m::Commit{}});
  EXPECT_EQ(precopy.state(), S::kCommitted);

  DestinationPhase crtr(DestinationFlow::kProcess);
  walk(&crtr, {m::FileBatch{}, log_round(false), log_round(true), m::FileBatch{}, m::Verify{},
               m::PageRound{}, m::Restore{}});
  EXPECT_EQ(crtr.state(), S::kRestored);
}

TEST(DestinationPhase, SecondRestoreIsRefusedAndStateKept) {
  DestinationPhase p(DestinationFlow::kProcess);
  walk(&p, {m::FileBatch{}, m::Restore{}});
  Status s = p.step(m::Restore{});
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "migrate.restore is out of order: the migration is restored here");
  EXPECT_EQ(p.state(), S::kRestored);
  EXPECT_TRUE(p.step(m::Commit{}).ok());  // the session goes on as before
}

TEST(DestinationPhase, CommitBeforeRestoreIsRefused) {
  DestinationPhase p(DestinationFlow::kProcess);
  walk(&p, {m::FileBatch{}});
  Status s = p.step(m::Commit{});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("migrate.commit is out of order"), std::string::npos) << s.message();
  EXPECT_EQ(p.state(), S::kReceiving);
  EXPECT_TRUE(p.step(m::Restore{}).ok());
}

TEST(DestinationPhase, NothingAfterCommitOrOutOfFlow) {
  DestinationPhase p(DestinationFlow::kProcess);
  walk(&p, {m::Restore{}, m::Commit{}});
  for (const m::Command& c : std::vector<m::Command>{m::Commit{}, m::Restore{}, m::FileBatch{},
                                                     m::PageRound{}, m::Abort{}}) {
    EXPECT_FALSE(p.step(c).ok()) << m::command_name(c);
    EXPECT_EQ(p.state(), S::kCommitted);
  }
  DestinationPhase q(DestinationFlow::kProcess);
  for (const m::Command& c :
       std::vector<m::Command>{m::Begin{}, m::HaEpoch{}, m::HaSwitchover{}, m::VmProgress{}}) {
    EXPECT_FALSE(q.step(c).ok()) << m::command_name(c);
  }
  // Verify twice, a log round after the verify, files after the restore.
  walk(&q, {m::Verify{}});
  EXPECT_FALSE(q.step(m::Verify{}).ok());
  EXPECT_FALSE(q.step(log_round(false)).ok());
  walk(&q, {m::Restore{}});
  EXPECT_FALSE(q.step(m::FileBatch{}).ok());
  EXPECT_FALSE(q.step(m::PageRound{}).ok());
  EXPECT_EQ(q.state(), S::kRestored);
}

TEST(DestinationPhase, AbortIsAlwaysInOrderBeforeTheCommit) {
  for (auto flow : {DestinationFlow::kProcess, DestinationFlow::kVm, DestinationFlow::kVmLog}) {
    DestinationPhase p(flow);
    EXPECT_TRUE(p.step(m::Abort{}).ok());
    EXPECT_EQ(p.state(), S::kReceiving);
  }
}

TEST(DestinationPhase, VmFlows) {
  DestinationPhase vm(DestinationFlow::kVm);
  walk(&vm, {m::VmProgress{}, m::VmProgress{}});
  EXPECT_FALSE(vm.step(m::Restore{}).ok());
  EXPECT_FALSE(vm.step(log_round(true)).ok());
  walk(&vm, {m::Commit{}});
  EXPECT_FALSE(vm.step(m::Commit{}).ok());

  DestinationPhase log(DestinationFlow::kVmLog);
  EXPECT_FALSE(log.step(m::Commit{}).ok());  // before the last log round: nothing runs here
  EXPECT_EQ(log.state(), S::kReceiving);
  walk(&log, {log_round(false), log_round(false), log_round(true)});
  EXPECT_EQ(log.state(), S::kRestored);
  EXPECT_FALSE(log.step(log_round(false)).ok());  // after the last one
  EXPECT_FALSE(log.step(log_round(true)).ok());
  walk(&log, {m::Commit{}});
  EXPECT_EQ(log.state(), S::kCommitted);
}

TEST(DestinationPhase, RefusalIsAudited) {
  relive::testing::TempDir dir;
  std::string path = (dir / "audit.jsonl");
  Result<security::AuditLog> log = security::AuditLog::open(path);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  security::ReplayGuard guard;
  security::RequestGate gate(&guard, &*log);
  security::PeerIdentity peer{"198.18.0.1:4000", "O = relive, CN = alpha", "alpha", true};
  DestinationPhase p(DestinationFlow::kProcess);
  Status why = p.step(m::Commit{});
  ASSERT_FALSE(why.ok());
  Status returned = refuse_command(&gate, peer, m::Commit{}, why);
  EXPECT_EQ(returned.message(), why.message());
  std::istringstream in(relive::testing::read_all(path));
  std::string line;
  ASSERT_TRUE(std::getline(in, line)) << "no audit record";
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["decision"], "refused");
  EXPECT_EQ(j["command"], "migrate.commit");
  EXPECT_EQ(j["peer_address"], "198.18.0.1:4000");
  EXPECT_EQ(j["reason"], why.message());
}

}  // namespace
}  // namespace relive::migrate
