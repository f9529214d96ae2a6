// libFuzzer target for CRIU tcp-stream images (drivers/criu/tcp_stream_image.h), which the HA
// backup receives over the network. No input may crash or read out of bounds; whatever
// decodes must patch, and the patched image must decode to the state patched in.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "drivers/criu/tcp_stream_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace relive;
  using namespace relive::criu;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Result<TcpStreamImage> img = decode_tcp_stream_image(bytes);
  if (!img.ok()) return 0;
  TcpStreamState now = img->stream;
  now.inq_seq += 1;
  now.inq += "x";
  if ((now.opt_mask & kTcpiOptTimestamps) != 0 && !now.timestamp) now.timestamp = 1;
  Result<std::string> patched = patch_tcp_stream_image(bytes, now);
  if (!patched.ok()) return 0;
  Result<TcpStreamImage> back = decode_tcp_stream_image(*patched);
  if (!back.ok() || back->stream.inq != now.inq || back->stream.inq_seq != now.inq_seq)
    std::abort();
  return 0;
}
