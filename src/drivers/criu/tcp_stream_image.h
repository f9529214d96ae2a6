// CRIU's tcp-stream-<inode>.img: the repair state of one established TCP socket. Its layout
// (criu/sk-tcp.c, dump_tcp_conn_state): [u32 IMG_COMMON_MAGIC] u32 TCP_STREAM_MAGIC, u32 length,
// a TcpStreamEntry protobuf (images/tcp-stream.proto), then the receive queue's inq_len bytes and
// the send queue's outq_len bytes, raw. The HA fast path patches a base dump's image with the
// state captured at each epoch (ha/tcp_stream_capture.h), so that CRIU restores the connection
// as it is now. The images come over the network: every reader here bounds-checks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "relive/result.h"

namespace relive::criu {

// TCP_REPAIR_WINDOW (struct tcp_repair_window, Linux 4.8+).
struct TcpWindow {
  uint32_t snd_wl1 = 0;
  uint32_t snd_wnd = 0;
  uint32_t max_window = 0;
  uint32_t rcv_wnd = 0;
  uint32_t rcv_wup = 0;
  bool operator==(const TcpWindow&) const = default;
};

// The parts of a connection's repair state that change while it runs.
struct TcpStreamState {
  int tcp_state = 0;  // TCP_ESTABLISHED, ...; CRIU keeps it in InetSkEntry, not here (0: unknown)
  uint32_t opt_mask = 0;  // TCPI_OPT_* negotiated at connect; fixed for the connection's life
  uint32_t inq_seq = 0;   // rcv_nxt: the sequence number after the last byte of `inq`
  uint32_t outq_seq = 0;  // write_seq: the sequence number after the last byte of `outq`
  uint32_t unsq_len = 0;  // how many of outq's last bytes were never sent
  std::optional<uint32_t> timestamp;  // with TCPI_OPT_TIMESTAMPS only
  std::optional<TcpWindow> window;    // absent on kernels without TCP_REPAIR_WINDOW
  std::string inq;                    // received, not yet read by the process (inq_len = size)
  std::string outq;  // written by the process, not yet acknowledged (outq_len = size)
};

// A decoded tcp-stream image.
struct TcpStreamImage {
  TcpStreamState stream;  // stream.tcp_state is 0
  uint32_t snd_wscale = 0;
  uint32_t mss_clamp = 0;
  std::optional<uint32_t> rcv_wscale;
  std::optional<bool> cork;  // deprecated in CRIU (TcpOptsEntry), still read on restore
  std::optional<bool> nodelay;
  bool has_unsq_len = false;  // CRIU 4 refuses to restore an image without it
};

inline constexpr uint32_t kTcpStreamMagic = 0x51465506;  // criu/include/magic.h
inline constexpr uint32_t kTcpiOptTimestamps = 1;        // TCPI_OPT_TIMESTAMPS

// Corruption on a bad magic, a malformed or truncated entry, missing required fields, queues
// shorter than their lengths, or bytes after the queues.
Result<TcpStreamImage> decode_tcp_stream_image(std::string_view image);

// `base_image` with its dynamic fields (inq_len, inq_seq, outq_len, outq_seq, unsq_len,
// timestamp, the window and both queues' bytes) replaced by `now`; the header and every other
// field, unknown ones included, are copied verbatim, in their order. Corruption when the base
// does not decode; InvalidArgument when `now` does not fit it (another opt_mask, timestamps
// negotiated but no timestamp, unsq_len > outq_len). The caller checks that the connection's
// TCP state is still the one in the base's InetSkEntry.
Result<std::string> patch_tcp_stream_image(std::string_view base_image, const TcpStreamState& now);

// A new image holding `image` (as CRIU would write it, with IMG_COMMON_MAGIC); for tests and
// tools.
std::string encode_tcp_stream_image(const TcpStreamImage& image);

}  // namespace relive::criu
