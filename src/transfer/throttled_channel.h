// ThrottledChannel: a Channel whose sends take their bytes from a RateLimiter (the migration's
// --max-bandwidth budget), so every command and bulk segment the source writes is capped and
// metered. Receives pass straight through. Wraps the channel itself rather than the bulk
// senders, so that no write path (file batches, page rounds, log rounds, control messages) can
// bypass the cap.
#pragma once

#include <memory>

#include "security/channel.h"
#include "transfer/rate_limit.h"

namespace relive::transfer {

class ThrottledChannel : public security::Channel {
 public:
  ThrottledChannel(std::unique_ptr<security::Channel> inner, std::shared_ptr<RateLimiter> limiter)
      : inner_(std::move(inner)), limiter_(std::move(limiter)) {}

  // A frame must reach the inner channel in one call: it is acquired whole. Bulk bytes go in
  // chunks, each acquired just before it is written.
  Status send_message(std::string_view frame) override {
    return limiter_->metered(
        frame, [this](std::string_view f) { return inner_->send_message(f); }, /*whole=*/true);
  }
  Status send_raw(std::string_view bytes) override {
    return limiter_->metered(bytes, [this](std::string_view b) { return inner_->send_raw(b); });
  }
  Result<std::string> recv_message() override { return inner_->recv_message(); }
  Status recv_raw(char* buf, size_t len) override { return inner_->recv_raw(buf, len); }
  void close() override { inner_->close(); }
  void set_timeout(std::chrono::milliseconds timeout) override { inner_->set_timeout(timeout); }
  const security::PeerIdentity& peer() const override { return inner_->peer(); }

 private:
  std::unique_ptr<security::Channel> inner_;
  std::shared_ptr<RateLimiter> limiter_;
};

}  // namespace relive::transfer
