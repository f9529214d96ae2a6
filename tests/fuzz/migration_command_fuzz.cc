// libFuzzer target for the migration commands a relived agent decodes from a Request's body
// (schemas/migration.capnp) and for the bulk-segment framing that follows them: hostile bytes
// from an authenticated but compromised peer must never crash, hang or over-allocate.
//   byte 0 even: decode_migration_command(name chosen by byte 1, rest); what decodes must
//                round-trip unchanged
//   byte 0 odd:  whole_segments_prefix(rest) must return a prefix length within bounds, and a
//                SegmentDecoder fed that prefix must not crash
//   byte 0 % 4 == 2, byte 1 odd: decode_migration_reply(rest) (an Ack's typed reply); what
//                decodes must encode to the same bytes again
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "wire/migration_codec.h"
#include "wire/segment.h"

namespace relive::wire {
namespace {

const char* const kNames[] = {
    "migrate.begin",  "migrate.files", "migrate.pages",  "migrate.log",         "migrate.restore",
    "migrate.commit", "migrate.abort", "migrate.verify", "migrate.vm_progress", "migrate.bogus"};

void fuzz_command(std::string_view name, std::string_view body) {
  Result<migration::Command> c = decode_migration_command(name, body);
  if (!c.ok()) return;
  Result<migration::Command> again = decode_migration_command(name, encode_migration_command(*c));
  if (!again.ok() || !(*again == *c)) std::abort();
}

void fuzz_reply(std::string_view bytes) {
  Result<migration::Reply> r = decode_migration_reply(bytes);
  if (!r.ok()) return;
  // Compared as bytes: a reply may carry a NaN, which never equals itself.
  std::string once = encode_migration_reply(*r);
  Result<migration::Reply> again = decode_migration_reply(once);
  if (!again.ok() || encode_migration_reply(*again) != once) std::abort();
}

void fuzz_segments(std::string_view bytes) {
  size_t n = whole_segments_prefix(bytes);
  if (n > bytes.size()) std::abort();
  SegmentDecoder d;
  d.feed(bytes.substr(0, n));
  for (int i = 0; i < 64; ++i) {
    auto r = d.next();
    if (!r.ok() || !r->has_value()) break;
  }
}

}  // namespace
}  // namespace relive::wire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (data[0] % 4 == 2 && data[1] % 2 == 1) {
    relive::wire::fuzz_reply(rest);
  } else if (data[0] % 2 == 0) {
    relive::wire::fuzz_command(relive::wire::kNames[data[1] % 9], rest);
  } else {
    relive::wire::fuzz_segments(rest);
  }
  return 0;
}
