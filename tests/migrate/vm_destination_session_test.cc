// The VM destination session without QEMU: its directory's name, begin answered (or failed) to
// the source, and the commands that never reach a strategy's handler (out of order, abort),
// driven over a socketpair by a hand-written source.
#include "migrate/vm_destination_session.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "test_util.h"
#include "transfer/link_pair.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;
using transfer::testing::LinkPair;

class VmDestinationSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status opened = links_.open();
    ASSERT_TRUE(opened.ok()) << opened.to_string();
    Status hello = links_.hello();
    ASSERT_TRUE(hello.ok()) << hello.to_string();
    source_ = &links_.source();
    destination_ = &links_.destination();
    options_.node_name = "beta";
    options_.vm_root = dir_ / "vms";
    options_.insecure = true;
    begin_.kind = m::WorkloadKind::kVm;
    begin_.strategy = m::Strategy::kLogShipping;
    begin_.name = "web-1";
  }

  VmDestinationSession session(DestinationFlow flow) {
    return VmDestinationSession(destination_, links_.gate(), options_, begin_, flow);
  }

  // The source sends begin and the destination admits it, as destination.cc does before it
  // hands a VM migration to its session.
  void send_begin() {
    ASSERT_TRUE(source_->send(begin_).ok());
    Result<m::Command> c = destination_->next_command(links_.gate());
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    ASSERT_TRUE(std::holds_alternative<m::Begin>(*c));
  }

  relive::testing::TempDir dir_;
  LinkPair links_{dir_ / "audit.jsonl"};
  DestinationOptions options_;
  m::Begin begin_;
  transfer::Link* source_ = nullptr;
  transfer::Link* destination_ = nullptr;
};

TEST_F(VmDestinationSessionTest, DirectoryIsNamedAfterASafeLabelElseVm) {
  namespace fs = std::filesystem;
  const std::string root = dir_ / "vms";
  VmDestinationSession named = session(DestinationFlow::kVm);
  ASSERT_TRUE(named.make_dir("web-1").ok());
  EXPECT_EQ(fs::path(named.dir()).parent_path(), root);
  EXPECT_TRUE(fs::path(named.dir()).filename().string().starts_with("web-1."));
  EXPECT_TRUE(fs::is_directory(named.dir()));
  for (const std::string& label :
       std::vector<std::string>{"../../etc", "-rf", ".hidden", "a b", std::string(65, 'x')}) {
    VmDestinationSession s = session(DestinationFlow::kVm);
    ASSERT_TRUE(s.make_dir(label).ok()) << label;
    EXPECT_EQ(fs::path(s.dir()).parent_path(), root) << label;
    EXPECT_TRUE(fs::path(s.dir()).filename().string().starts_with("vm.")) << s.dir();
  }
}

TEST_F(VmDestinationSessionTest, AFailedStartIsTheSourcesAnswerToBegin) {
  send_begin();
  if (HasFatalFailure()) return;
  VmDestinationSession s = session(DestinationFlow::kVmLog);
  Status answered = s.answer_begin(Status::NotFound("qemu-system-x86_64 is not installed"));
  EXPECT_EQ(answered.code(), Status::Code::kNotFound);
  Result<m::Reply> reply = source_->wait_reply();
  ASSERT_FALSE(reply.ok());
  EXPECT_TRUE(source_->peer_refused());
  EXPECT_EQ(reply.status().message(), "destination: qemu-system-x86_64 is not installed");
}

// Begin answered with the session's directory; progress reaches the handler; an abort ends
// the session with its reason, at both ends, without reaching the handler.
TEST_F(VmDestinationSessionTest, ServesTheHandlerUntilAnAbort) {
  send_begin();
  if (HasFatalFailure()) return;
  VmDestinationSession s = session(DestinationFlow::kVmLog);
  ASSERT_TRUE(s.make_dir(begin_.name).ok());
  ASSERT_TRUE(s.answer_begin(m::VmBeginReply{0, 0, s.dir()}).ok());
  Result<m::Reply> begun = source_->wait_reply();
  ASSERT_TRUE(begun.ok()) << begun.status().to_string();
  EXPECT_EQ(*begun, (m::Reply{m::VmBeginReply{0, 0, s.dir()}}));
  EXPECT_EQ(s.outcome().name, "web-1");
  EXPECT_EQ(s.outcome().strategy, "log-shipping");
  EXPECT_EQ(s.outcome().vm_dir, s.dir());
  EXPECT_EQ(s.outcome().vm_qmp, s.dir() + "/qmp.sock");

  std::vector<std::string> handled;
  std::future<Status> served = std::async(std::launch::async, [&] {
    return s.serve([&](const m::Command& c, bool*) -> Result<m::Reply> {
      handled.push_back(m::command_name(c));
      return m::Reply{};
    });
  });
  EXPECT_TRUE(source_->call(m::VmProgress{"{}"}).ok());
  Result<std::string> aborted = source_->call(m::Abort{"the source failed"});
  ASSERT_FALSE(aborted.ok());
  EXPECT_EQ(aborted.status().message(),
            "destination: source aborted the migration: the source failed");
  Status ended = served.get();
  EXPECT_EQ(ended.code(), Status::Code::kAborted);
  EXPECT_EQ(handled, std::vector<std::string>{"migrate.vm_progress"});
}

TEST_F(VmDestinationSessionTest, ACommandOutOfOrderIsRefusedAndAuditedBeforeTheHandler) {
  send_begin();
  if (HasFatalFailure()) return;
  VmDestinationSession s = session(DestinationFlow::kVmLog);
  ASSERT_TRUE(s.answer_begin(m::VmBeginReply{0, 0, "/nowhere"}).ok());
  ASSERT_TRUE(source_->wait_reply().ok());
  bool handler_ran = false;
  std::future<Status> served = std::async(std::launch::async, [&] {
    return s.serve([&](const m::Command&, bool*) -> Result<m::Reply> {
      handler_ran = true;
      return m::Reply{};
    });
  });
  Result<std::string> r = source_->call(m::Commit{});  // before the last log round
  ASSERT_FALSE(r.ok());
  const std::string why = "migrate.commit is out of order: the migration is receiving here";
  EXPECT_EQ(r.status().message(), "destination: " + why);
  EXPECT_EQ(served.get().message(), why);
  EXPECT_FALSE(handler_ran);
  auto refused = links_.refusals();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0]["command"], "migrate.commit");
}

}  // namespace
}  // namespace relive::migrate
