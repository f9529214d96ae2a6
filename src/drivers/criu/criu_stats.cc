#include "drivers/criu/criu_stats.h"

#include "common/file_util.h"
#include "drivers/criu/pb_reader.h"

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

double us_to_ms(uint64_t us) { return static_cast<double>(us) / 1000.0; }

bool no_nested(uint32_t, std::string_view) { return true; }

bool parse_dump_entry(std::string_view m, CriuStats* s) {
  return pb::walk(
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
  return pb::walk(
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

}  // namespace

Status parse_stats_image(std::string_view image, CriuStats* stats) {
  if (image.size() < kHeaderBytes) return Status::Corruption("stats image shorter than its header");
  if (pb::le32(image, 0) != kImgServiceMagic || pb::le32(image, 4) != kStatsMagic) {
    return Status::Corruption("not a CRIU stats image (bad magic)");
  }
  uint32_t len = pb::le32(image, 8);
  if (len != image.size() - kHeaderBytes) {
    return Status::Corruption("stats entry length " + std::to_string(len) + " does not match the " +
                              std::to_string(image.size() - kHeaderBytes) + " bytes present");
  }
  CriuStats decoded = *stats;  // committed only if everything decodes
  bool ok = pb::walk(
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
