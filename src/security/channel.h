// Channel: how two relive agents talk. Every later feature (migration, HA, container migration)
// sends its control messages through one, so the choice of TLS or plaintext is made once, when
// the channel is built (security/listener.h), and never by the code that uses it.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "relive/result.h"
#include "wire/protocol_types.h"

namespace relive::security {

// Who is at the other end, as established by the handshake.
struct PeerIdentity {
  std::string address;   // "127.0.0.1:40123"
  std::string subject;   // certificate subject, "" on an insecure channel
  std::string dns_name;  // first subjectAltName DNS entry, "" on an insecure channel
  bool authenticated = false;
};

// A bidirectional stream of whole protocol frames (schemas/protocol.capnp). Not thread-safe:
// one thread sends and receives at a time. Any error leaves the channel broken (a frame may
// have been half read or written); later calls fail too, and the owner should close it.
class Channel {
 public:
  virtual ~Channel() = default;

  // Sends one whole frame (wire::encode_message's output). InvalidArgument when `frame` is not
  // one well-formed frame header plus its payload.
  virtual Status send_message(std::string_view frame) = 0;

  // The next whole frame. Its header (magic, version, kind, length bound) is checked before
  // the payload is read or allocated; the checksum and payload are checked by
  // wire::decode_message. Fails after the channel's timeout with nothing received.
  virtual Result<std::string> recv_message() = 0;

  // Raw bytes between frames: the LZ4 segments of bulk data that follow a control message
  // (transport of pages and images; the segment format checks itself). Same timeout and
  // sticky errors as the frame calls.
  virtual Status send_raw(std::string_view bytes) = 0;
  virtual Status recv_raw(char* buf, size_t len) = 0;

  // Ends the connection (TLS close_notify first when encrypted). Idempotent.
  virtual void close() = 0;

  // Bounds every later send and receive by `timeout` instead of ChannelOptions::timeout: for a
  // wait known to be long (a log-shipping migration's final replay). Channels that never time
  // out ignore it.
  virtual void set_timeout(std::chrono::milliseconds timeout) { (void)timeout; }

  virtual const PeerIdentity& peer() const = 0;
};

// Encode-and-send and receive-and-decode of protocol messages.
Status send_protocol_message(Channel& channel, const protocol::Message& message);
Result<protocol::Message> recv_protocol_message(Channel& channel);

// How to build a channel. Either all three TLS files are given, or `insecure` is set; nothing
// ever falls back from TLS to plaintext.
struct ChannelOptions {
  std::string ca_file;    // CA whose signature the peer's certificate must carry
  std::string cert_file;  // this host's certificate
  std::string key_file;   // this host's private key
  // When not empty, the peer's certificate must name this host (subjectAltName DNS).
  std::string expected_peer_name;
  // Plaintext TCP, for tests and trusted single-host setups only. Both ends must ask for it.
  bool insecure = false;
  // Bound on each handshake, accept, send and receive.
  std::chrono::milliseconds timeout{10000};
};

// TLS options for `host` from a key directory made by init_keys (security/keys.h).
ChannelOptions tls_options_for_host(const std::string& key_dir, const std::string& host,
                                    const std::string& expected_peer_name = "");

}  // namespace relive::security
