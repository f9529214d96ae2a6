// Link: one migration conversation over an authenticated channel, seen from either end. The
// source sends migration commands (schemas/migration.capnp) as nonce-carrying Requests and
// waits for each one's Ack; the destination admits every Request through its RequestGate
// (replay check + audit) before acting on it. Message order is enforced by ProtocolStream.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "relive/migrate.h"
#include "relive/result.h"
#include "security/channel.h"
#include "security/protocol_stream.h"
#include "security/request_gate.h"
#include "transfer/rate_limit.h"
#include "wire/migration_types.h"

namespace relive::transfer {

class Link {
 public:
  explicit Link(std::unique_ptr<security::Channel> channel)
      : channel_(std::move(channel)), stream_(channel_.get()) {}

  security::Channel& channel() { return *channel_; }

  // Source side. Sends Hello and waits for the peer's Hello.
  Status hello(const std::string& node_name);
  // Sends `command` (bulk data, if any, follows through channel()).
  Status send(const migration::Command& command);
  // Waits for the reply to the last command: its Ack detail, or the peer's Error as a Status.
  Result<std::string> wait_ack();
  // The same for a command answered with a typed reply (wire/migration_codec.h): a reply that
  // does not decode is Corruption.
  Result<migration::Reply> wait_reply();
  // The last wait_ack() failed because the peer answered with an Error (as opposed to a link
  // failure, where the peer's outcome is unknown).
  bool peer_refused() const { return peer_refused_; }
  // send() then wait_ack().
  Result<std::string> call(const migration::Command& command);
  // send() then wait_reply().
  Result<migration::Reply> call_reply(const migration::Command& command);

  // Destination side. Admits the peer's Hello through `gate` and answers with our own.
  Status accept_hello(security::RequestGate* gate, const std::string& node_name);
  // The next admitted command. Refusals are answered with an Error and returned as Status.
  Result<migration::Command> next_command(security::RequestGate* gate);
  Status ack(const std::string& detail = "");
  // Acks the last command with a typed reply.
  Status reply(const migration::Reply& reply);
  // Answers the last command with `error` (its code and message).
  Status fail(const Status& error);
  // Admits and answers commands until `handler` sets *done: what it returns is the Ack's
  // typed reply; its error is answered with fail() and returned.
  using Handler = std::function<Result<migration::Reply>(const migration::Command&, bool* done)>;
  Status serve(security::RequestGate* gate, const Handler& handler);

  void close() { channel_->close(); }

 private:
  std::unique_ptr<security::Channel> channel_;
  security::ProtocolStream stream_;
  Result<protocol::Ack> wait_ack_message();

  uint64_t last_seq_ = 0;  // sequence of the last request sent or received
  bool peer_refused_ = false;
};

// The source's link to the destination relived named by `options` (to_host:to_port, TLS with
// this host's key from tls_dir unless insecure, io_timeout), hello already exchanged. With a
// `limiter`, everything the link sends is capped and metered by it (transfer/throttled_channel.h).
Result<std::unique_ptr<Link>> open_link(const MigrateOptions& options,
                                        std::shared_ptr<RateLimiter> limiter = nullptr);

}  // namespace relive::transfer
