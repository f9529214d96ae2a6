// libFuzzer target for the container archive reader (src/wire/archive_*): archives arrive from
// other hosts and old disks, so no input may crash, hang, leak, read out of bounds or make the
// reader allocate more than its fixed bounds.
//
// The first input byte selects a mode. Modes 2 and 3 repair magics, lengths and checksums so
// that mutations reach the Cap'n Proto decoder, the manifest checks and the LZ4 decoder instead
// of dying at the first checksum.
//   0 a whole archive: rest                 2 header (repaired) + rest as the manifest, then
//   1 decode_manifest(rest)                   entry frames made from the manifest's entries
//                                           3 one frame: rest[0..28) as its header with the
//                                             checksums repaired, the rest as its payload
// A manifest that decodes must survive a round trip through its encoder unchanged.
// Seeds, one per mode: tests/data/fuzz_seeds_archive/ (written by wire_archive_golden_test).
//   build-fuzz/fuzz/archive_reader_fuzz CORPUS_DIR tests/data/fuzz_seeds_archive -max_len=65536
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/hash.h"
#include "wire/archive_codec.h"
#include "wire/archive_reader.h"
#include "wire/le_bytes.h"

namespace relive::wire {
namespace {

void set_u32(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}

void check_manifest(std::string_view bytes) {
  auto m = decode_manifest(bytes);
  if (!m.ok()) return;
  auto again = decode_manifest(encode_manifest(*m));
  // The encoder always writes this relive's version; every other field must survive.
  if (!again.ok()) std::abort();
  again->format_version = m->format_version;
  if (!(*again == *m)) std::abort();
}

void read_archive(std::string_view bytes) {
  auto src = memory_source(bytes);
  ArchiveReader reader(src.get());
  if (!reader.read_manifest().ok()) return;
  (void)reader.read_entries(nullptr);
}

// A valid header in front of `manifest`, then a frame of each entry's (zero) bytes, capped.
std::string repaired_archive(std::string_view manifest) {
  std::string out(kArchiveMagic);
  put_u32(&out, container::kArchiveFormatVersion);
  put_u32(&out, 0);
  put_u32(&out, static_cast<uint32_t>(manifest.size()));
  put_u64(&out, hash64(manifest));
  put_u32(&out, hash32(out));
  out += manifest;
  auto m = decode_manifest(manifest);
  if (!m.ok()) return out;
  std::string data;
  for (size_t i = 0; i < m->entries.size() && i < 4; ++i) {
    if (m->entries[i].size > 4096) break;
    data += encode_frame(static_cast<uint32_t>(i), 0,
                         std::string(static_cast<size_t>(m->entries[i].size), '\0'));
  }
  return out + data + encode_trailer({data.size(), hash64(manifest)});
}

void check_frame(std::string_view in) {
  if (in.size() < kArchiveFrameHeaderBytes) return;
  std::string s(in);
  set_u32(&s, 0, kArchiveFrameMagic);
  set_u32(&s, 20, hash32(std::string_view(s).substr(kArchiveFrameHeaderBytes)));
  set_u32(&s, 24, hash32(std::string_view(s).substr(0, 24)));
  uint32_t raw = get_u32(s, 12) % (container::kArchiveChunkBytes + 1);
  auto h = parse_frame_header(std::string_view(s).substr(0, kArchiveFrameHeaderBytes),
                              get_u32(s, 4), get_u32(s, 8), raw);
  if (!h.ok()) return;
  std::string_view payload = std::string_view(s).substr(kArchiveFrameHeaderBytes);
  if (payload.size() < h->compressed_length) return;
  std::string out;
  (void)decode_frame_payload(*h, payload.substr(0, h->compressed_length), &out);
}

}  // namespace
}  // namespace relive::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace relive::wire;
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      read_archive(rest);
      break;
    case 1:
      check_manifest(rest);
      break;
    case 2:
      check_manifest(rest);
      read_archive(repaired_archive(rest));
      break;
    case 3:
      check_frame(rest);
      break;
  }
  return 0;
}
