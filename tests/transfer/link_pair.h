// LinkPair: a migration's two ends in one test. Two Links over connected channels (by default a
// SocketPairChannel pair), the destination admitting through a RequestGate with its own replay
// guard and an audit log at `audit_path`.
#pragma once

#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "security/audit_log.h"
#include "security/replay_guard.h"
#include "security/request_gate.h"
#include "test_util.h"
#include "transfer/link.h"
#include "transfer/test_channel.h"

namespace relive::transfer::testing {

class LinkPair {
 public:
  using Channels =
      std::pair<std::unique_ptr<security::Channel>, std::unique_ptr<security::Channel>>;

  explicit LinkPair(std::string audit_path) : audit_path_(std::move(audit_path)) {}

  // Opens the audit log and builds the Links; no message is exchanged yet.
  Status open(Channels channels = socketpair_channels()) {
    Result<security::AuditLog> log = security::AuditLog::open(audit_path_);
    if (!log.ok()) return log.status();
    audit_.emplace(std::move(*log));
    gate_.emplace(&guard_, &*audit_);
    source_ = std::make_unique<Link>(std::move(channels.first));
    destination_ = std::make_unique<Link>(std::move(channels.second));
    return Status::Ok();
  }
  // After open(): the hello, "alpha" to "beta", admitted through the gate.
  Status hello() {
    std::future<Status> accepted = std::async(
        std::launch::async, [this] { return destination_->accept_hello(&*gate_, "beta"); });
    Status sent = source_->hello("alpha");
    Status accept = accepted.get();
    return sent.ok() ? accept : sent;
  }

  Link& source() { return *source_; }
  // The source end for an owner of its own (after hello()); source() is then invalid.
  std::unique_ptr<Link> take_source() { return std::move(source_); }
  Link& destination() { return *destination_; }
  security::RequestGate* gate() { return &*gate_; }

  // The audit log's refused requests, oldest first.
  std::vector<nlohmann::json> refusals() const {
    std::istringstream in(relive::testing::read_all(audit_path_));
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j["decision"] == "refused") out.push_back(j);
    }
    return out;
  }

  static Channels socketpair_channels() {
    auto [a, b] = SocketPairChannel::pair();
    return {std::move(a), std::move(b)};
  }

 private:
  std::string audit_path_;
  security::ReplayGuard guard_;
  std::optional<security::AuditLog> audit_;
  std::optional<security::RequestGate> gate_;
  std::unique_ptr<Link> source_, destination_;
};

}  // namespace relive::transfer::testing
