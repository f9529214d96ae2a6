// Golden container archives: an archive written by each released archive format version,
// checked in under tests/data/golden/container_v<N>/, must keep decoding to exactly what was
// written. Also writes the seed corpus of archive_reader_fuzz (tests/data/fuzz_seeds_archive/).
//
// To (re)generate the files of the CURRENT version only:
//   RELIVE_REGENERATE_GOLDEN=1 build/tests/wire_archive_golden_test
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "common/file_util.h"
#include "common/hash.h"
#include "wire/archive_codec.h"
#include "wire/archive_reader.h"

namespace relive::wire {
namespace {

namespace fs = std::filesystem;
using container::Manifest;

fs::path data_dir() {
  if (const char* src = std::getenv("RELIVE_SOURCE")) return fs::path(src) / "tests" / "data";
  return fs::path(RELIVE_SOURCE_DIR) / "tests" / "data";
}

bool regenerate() { return std::getenv("RELIVE_REGENERATE_GOLDEN") != nullptr; }

// Frozen: the contents of tests/data/golden/container_v1. Never edit; add v2 expectations.
std::map<std::string, std::string> v1_files() {
  std::string pages(container::kArchiveChunkBytes + 100, '\0');
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = static_cast<char>(i % 251);
  return {{"core-100.img", "core bytes"}, {"inventory.img", ""}, {"pages-1.img", pages}};
}

Manifest v1_manifest() {
  Manifest m;
  m.format_version = 1;
  m.source_host = "golden";
  m.kernel = "Linux 6.18.0 #1";
  m.criu_version = "4.1.1";
  m.created_realtime_ns = 1763800000000000000ull;
  m.relive_version = "0.1.0";
  m.root_pid = 100;
  m.processes = {{100, 0, 100, 100, 3, "golden"}, {101, 100, 100, 100, 1, "child"}};
  m.stats = {1200, 15000, 2000, 3000, 300, 257};
  m.tcp_established = false;
  m.fs_note = "golden";
  for (const auto& [name, bytes] : v1_files()) {
    m.entries.push_back({name, bytes.size(), hash128_hex(bytes), container::EntryKind::kCriuImage});
  }
  return m;
}

std::string build_v1() {
  Manifest m = v1_manifest();
  auto files = v1_files();
  std::string prefix = encode_archive_prefix(m), data;
  for (uint32_t i = 0; i < m.entries.size(); ++i) {
    const std::string& bytes = files[m.entries[i].name];
    for (uint32_t c = 0; size_t{c} * container::kArchiveChunkBytes < bytes.size(); ++c) {
      data += encode_frame(i, c,
                           std::string_view(bytes).substr(size_t{c} * container::kArchiveChunkBytes,
                                                          container::kArchiveChunkBytes));
    }
  }
  return prefix + data +
         encode_trailer(
             {data.size(), hash64(std::string_view(prefix).substr(kArchiveHeaderBytes))});
}

class Collect : public EntrySink {
 public:
  Status begin_entry(size_t, const container::ArchiveEntry& e) override {
    cur_ = &files[e.name];
    return Status::Ok();
  }
  Status chunk(std::string_view b) override {
    cur_->append(b);
    return Status::Ok();
  }
  Status end_entry() override { return Status::Ok(); }
  std::map<std::string, std::string> files;

 private:
  std::string* cur_ = nullptr;
};

void write_seeds(const fs::path& dir) {
  ASSERT_TRUE(make_dirs(dir.string()).ok());
  std::string archive = build_v1();
  std::string manifest = encode_manifest(v1_manifest());
  std::string frame = encode_frame(0, 0, "a small frame, a small frame");
  ASSERT_TRUE(write_file_atomic((dir / "archive").string(), std::string(1, '\0') + archive).ok());
  ASSERT_TRUE(write_file_atomic((dir / "manifest").string(), std::string(1, '\1') + manifest).ok());
  ASSERT_TRUE(write_file_atomic((dir / "repaired").string(), std::string(1, '\2') + manifest).ok());
  ASSERT_TRUE(write_file_atomic((dir / "frame").string(), std::string(1, '\3') + frame).ok());
}

TEST(GoldenArchive, Version1StillReads) {
  fs::path dir = data_dir() / "golden" / "container_v1";
  if (regenerate() && container::kArchiveFormatVersion == 1) {
    ASSERT_TRUE(make_dirs(dir.string()).ok());
    ASSERT_TRUE(write_file_atomic((dir / "archive.rlvc").string(), build_v1()).ok());
  }
  auto bytes = read_file((dir / "archive.rlvc").string());
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  auto src = memory_source(*bytes);
  ArchiveReader reader(src.get());
  auto m = reader.read_manifest();
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(*m, v1_manifest());
  Collect sink;
  ASSERT_TRUE(reader.read_entries(&sink).ok());
  EXPECT_EQ(sink.files, v1_files());
}

TEST(GoldenArchive, FuzzSeedsArePresent) {
  fs::path dir = data_dir() / "fuzz_seeds_archive";
  if (regenerate()) write_seeds(dir);
  auto archive = read_file((dir / "archive").string());
  ASSERT_TRUE(archive.ok()) << archive.status().to_string();
  auto src = memory_source(std::string_view(*archive).substr(1));
  ArchiveReader reader(src.get());
  ASSERT_TRUE(reader.read_manifest().ok()) << "seed must be a valid archive";
  EXPECT_TRUE(reader.read_entries(nullptr).ok());
}

}  // namespace
}  // namespace relive::wire
