#include "transfer/link.h"

#include <fmt/format.h>

#include "security/listener.h"
#include "security/replay_guard.h"
#include "transfer/throttled_channel.h"
#include "wire/migration_codec.h"

namespace relive::transfer {

namespace p = relive::protocol;

Status Link::hello(const std::string& node_name) {
  RELIVE_RETURN_IF_ERROR(
      stream_.send(p::Hello{node_name, security::random_nonce(), security::unix_now_ns()})
          .status());
  RELIVE_ASSIGN_OR_RETURN(p::Message m, stream_.recv());
  if (const auto* e = std::get_if<p::Error>(&m.body)) {
    return Status::FromCode(e->code, "peer refused: " + e->message);
  }
  if (!std::holds_alternative<p::Hello>(m.body)) {
    return Status::Corruption(
        fmt::format("expected the peer's hello, got a {}", p::kind_name(m.kind())));
  }
  return Status::Ok();
}

Status Link::send(const migration::Command& command) {
  p::Request r{migration::command_name(command), security::random_nonce(), security::unix_now_ns(),
               wire::encode_migration_command(command)};
  RELIVE_ASSIGN_OR_RETURN(last_seq_, stream_.send(std::move(r)));
  return Status::Ok();
}

Result<p::Ack> Link::wait_ack_message() {
  peer_refused_ = false;
  RELIVE_ASSIGN_OR_RETURN(p::Message m, stream_.recv());
  if (auto* a = std::get_if<p::Ack>(&m.body)) {
    if (a->request_seq != last_seq_) {
      return Status::Corruption(
          fmt::format("ack for request {}, expected {}", a->request_seq, last_seq_));
    }
    return std::move(*a);
  }
  if (const auto* e = std::get_if<p::Error>(&m.body)) {
    peer_refused_ = true;
    return Status::FromCode(e->code, "destination: " + e->message);
  }
  return Status::Corruption(fmt::format("expected an ack, got a {}", p::kind_name(m.kind())));
}

Result<std::string> Link::wait_ack() {
  RELIVE_ASSIGN_OR_RETURN(p::Ack a, wait_ack_message());
  return std::move(a.detail);
}

Result<migration::Reply> Link::wait_reply() {
  RELIVE_ASSIGN_OR_RETURN(p::Ack a, wait_ack_message());
  return wire::decode_migration_reply(a.reply);
}

Result<std::string> Link::call(const migration::Command& command) {
  RELIVE_RETURN_IF_ERROR(send(command));
  return wait_ack();
}

Result<migration::Reply> Link::call_reply(const migration::Command& command) {
  RELIVE_RETURN_IF_ERROR(send(command));
  return wait_reply();
}

Status Link::accept_hello(security::RequestGate* gate, const std::string& node_name) {
  RELIVE_ASSIGN_OR_RETURN(p::Message m, stream_.recv());
  if (!std::holds_alternative<p::Hello>(m.body)) {
    return Status::Corruption(fmt::format("expected a hello, got a {}", p::kind_name(m.kind())));
  }
  last_seq_ = m.sequence;
  Status admitted = gate->admit(channel_->peer(), m, security::unix_now_ns());
  if (!admitted.ok()) {
    (void)fail(admitted);
    return admitted;
  }
  return stream_.send(p::Hello{node_name, security::random_nonce(), security::unix_now_ns()})
      .status();
}

Result<migration::Command> Link::next_command(security::RequestGate* gate) {
  RELIVE_ASSIGN_OR_RETURN(p::Message m, stream_.recv());
  last_seq_ = m.sequence;
  const auto* r = std::get_if<p::Request>(&m.body);
  if (r == nullptr) {
    Status s = Status::Corruption(
        fmt::format("expected a migration command, got a {}", p::kind_name(m.kind())));
    (void)fail(s);
    return s;
  }
  Status admitted = gate->admit(channel_->peer(), m, security::unix_now_ns());
  if (!admitted.ok()) {
    (void)fail(admitted);
    return admitted;
  }
  Result<migration::Command> c = wire::decode_migration_command(r->command, r->body);
  if (!c.ok()) (void)fail(c.status());
  return c;
}

Status Link::ack(const std::string& detail) {
  return stream_.send(p::Ack{last_seq_, detail}).status();
}

Status Link::reply(const migration::Reply& reply) {
  return stream_.send(p::Ack{last_seq_, "", wire::encode_migration_reply(reply)}).status();
}

Status Link::fail(const Status& error) {
  return stream_.send(p::Error{last_seq_, static_cast<uint32_t>(error.code()), error.message()})
      .status();
}

Status Link::serve(security::RequestGate* gate, const Handler& handler) {
  for (bool done = false; !done;) {
    RELIVE_ASSIGN_OR_RETURN(migration::Command c, next_command(gate));
    Result<migration::Reply> answer = handler(c, &done);
    if (!answer.ok()) {
      (void)fail(answer.status());
      return answer.status();
    }
    RELIVE_RETURN_IF_ERROR(reply(*answer));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Link>> open_link(const MigrateOptions& options,
                                        std::shared_ptr<RateLimiter> limiter) {
  security::ChannelOptions co;
  if (options.insecure) {
    co.insecure = true;
  } else {
    co = security::tls_options_for_host(options.tls_dir, options.node_name, options.peer_name);
  }
  co.timeout = options.io_timeout;
  RELIVE_ASSIGN_OR_RETURN(auto ch, security::connect_channel(options.to_host, options.to_port, co));
  if (limiter) ch = std::make_unique<ThrottledChannel>(std::move(ch), std::move(limiter));
  auto link = std::make_unique<Link>(std::move(ch));
  RELIVE_RETURN_IF_ERROR(link->hello(options.node_name.empty() ? "relive" : options.node_name));
  return link;
}

}  // namespace relive::transfer
