#include "drivers/criu/criu_stats.h"

#include <cstring>

#include "common/file_util.h"

namespace relive::criu {
namespace {

// From CRIU's criu/include/magic.h.
constexpr uint32_t kImgServiceMagic = 0x55105940;
constexpr uint32_t kStatsMagic = 0x57093306;
constexpr size_t kHeaderBytes = 12;

// Field numbers from CRIU's images/stats.proto.
enum StatsEntryField : uint32_t { kDump = 1, kRestore = 2 };
enum DumpField : uint32_t {
  kFreezingTime = 1,
  kFrozenTime = 2,
  kMemdumpTime = 3,
  kMemwriteTime = 4,
  kPagesScanned = 5,
  kPagesWritten = 7,
};
enum RestoreField : uint32_t { kForkingTime = 3, kRestoreTime = 4, kPagesRestored = 5 };

// A cursor over protobuf wire format, just enough for StatsEntry: every read is bounds-checked
// and returns false on truncated or malformed input.
class PbReader {
 public:
  explicit PbReader(std::string_view in) : in_(in) {}
  bool done() const { return in_.empty(); }

  bool varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && !in_.empty(); shift += 7) {
      auto byte = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      *v |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool key(uint32_t* number, uint32_t* wire_type) {
    uint64_t k;
    if (!varint(&k) || (k >> 3) == 0 || (k >> 3) > UINT32_MAX) return false;
    *number = static_cast<uint32_t>(k >> 3);
    *wire_type = static_cast<uint32_t>(k & 7);
    return true;
  }
  bool bytes(std::string_view* out) {
    uint64_t len;
    if (!varint(&len) || len > in_.size()) return false;
    *out = in_.substr(0, len);
    in_.remove_prefix(len);
    return true;
  }
  bool skip_fixed(size_t n) {
    if (n > in_.size()) return false;
    in_.remove_prefix(n);
    return true;
  }

 private:
  std::string_view in_;
};

// Calls on_varint(field, value) and on_bytes(field, bytes) for each field of one message;
// fields of other wire types are skipped. False when the message does not decode.
template <typename OnVarint, typename OnBytes>
bool walk(std::string_view message, OnVarint on_varint, OnBytes on_bytes) {
  PbReader r(message);
  while (!r.done()) {
    uint32_t field, type;
    uint64_t v;
    std::string_view b;
    if (!r.key(&field, &type)) return false;
    bool ok = false;
    switch (type) {
      case 0:
        ok = r.varint(&v);
        if (ok) on_varint(field, v);
        break;
      case 1:
        ok = r.skip_fixed(8);
        break;
      case 2:
        ok = r.bytes(&b) && on_bytes(field, b);
        break;
      case 5:
        ok = r.skip_fixed(4);
        break;
      default:
        break;  // groups (3, 4) and invalid types: CRIU writes neither
    }
    if (!ok) return false;
  }
  return true;
}

double us_to_ms(uint64_t us) { return static_cast<double>(us) / 1000.0; }

bool no_nested(uint32_t, std::string_view) { return true; }

bool parse_dump_entry(std::string_view m, CriuStats* s) {
  return walk(
      m,
      [s](uint32_t f, uint64_t v) {
        switch (f) {
          case kFreezingTime:
            s->freezing_ms = us_to_ms(v);
            break;
          case kFrozenTime:
            s->frozen_ms = us_to_ms(v);
            break;
          case kMemdumpTime:
            s->memdump_ms = us_to_ms(v);
            break;
          case kMemwriteTime:
            s->memwrite_ms = us_to_ms(v);
            break;
          case kPagesScanned:
            s->pages_scanned = v;
            break;
          case kPagesWritten:
            s->pages_written = v;
            break;
          default:
            break;
        }
      },
      no_nested);
}

bool parse_restore_entry(std::string_view m, CriuStats* s) {
  return walk(
      m,
      [s](uint32_t f, uint64_t v) {
        switch (f) {
          case kForkingTime:
            s->forking_ms = us_to_ms(v);
            break;
          case kRestoreTime:
            s->restore_ms = us_to_ms(v);
            break;
          case kPagesRestored:
            s->pages_restored = v;
            break;
          default:
            break;
        }
      },
      no_nested);
}

uint32_t le32(std::string_view s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, sizeof v);  // CRIU images are little-endian, as is x86-64
  return v;
}

}  // namespace

Status parse_stats_image(std::string_view image, CriuStats* stats) {
  if (image.size() < kHeaderBytes) return Status::Corruption("stats image shorter than its header");
  if (le32(image, 0) != kImgServiceMagic || le32(image, 4) != kStatsMagic) {
    return Status::Corruption("not a CRIU stats image (bad magic)");
  }
  uint32_t len = le32(image, 8);
  if (len != image.size() - kHeaderBytes) {
    return Status::Corruption("stats entry length " + std::to_string(len) + " does not match the " +
                              std::to_string(image.size() - kHeaderBytes) + " bytes present");
  }
  CriuStats decoded = *stats;  // committed only if everything decodes
  bool ok = walk(
      image.substr(kHeaderBytes), [](uint32_t, uint64_t) {},
      [&](uint32_t f, std::string_view m) {
        if (f == kDump) return parse_dump_entry(m, &decoded);
        if (f == kRestore) return parse_restore_entry(m, &decoded);
        return true;
      });
  if (!ok) return Status::Corruption("stats entry does not decode as protobuf");
  *stats = decoded;
  return Status::Ok();
}

CriuStats read_stats(const std::string& images_dir) {
  CriuStats stats;
  for (const char* name : {"/stats-dump", "/stats-restore"}) {
    auto image = read_file(images_dir + name);
    if (image.ok()) (void)parse_stats_image(*image, &stats);
  }
  return stats;
}

}  // namespace relive::criu
