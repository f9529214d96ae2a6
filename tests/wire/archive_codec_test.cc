// The container archive format: round trips, and every kind of damage a reader must refuse.
#include "wire/archive_codec.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "common/hash.h"
#include "wire/archive_reader.h"
#include "wire/le_bytes.h"

namespace relive::wire {
namespace {

using container::ArchiveEntry;
using container::Manifest;

Manifest sample_manifest(const std::vector<std::pair<std::string, std::string>>& files) {
  Manifest m;
  m.source_host = "src-host";
  m.kernel = "Linux 6.18";
  m.criu_version = "4.1.1";
  m.created_realtime_ns = 1763800000123456789ull;
  m.relive_version = "0.1.0";
  m.root_pid = 4242;
  m.processes = {{4242, 1, 4242, 4242, 2, "server"}, {4243, 4242, 4242, 4242, 1, "worker"}};
  m.stats = {1500, 42000, 3000, 7000, 2048, 1024};
  m.tcp_established = true;
  m.fs_note = "none";
  for (const auto& [name, bytes] : files) {
    m.entries.push_back({name, bytes.size(), hash128_hex(bytes), container::EntryKind::kCriuImage});
  }
  return m;
}

// A whole archive in memory, written the way write_archive() writes files.
std::string build_archive(const Manifest& m, const std::vector<std::string>& contents) {
  std::string prefix = encode_archive_prefix(m), data;
  for (size_t i = 0; i < contents.size(); ++i) {
    for (uint32_t c = 0; c * container::kArchiveChunkBytes < contents[i].size(); ++c) {
      data += encode_frame(
          static_cast<uint32_t>(i), c,
          std::string_view(contents[i])
              .substr(size_t{c} * container::kArchiveChunkBytes, container::kArchiveChunkBytes));
    }
  }
  std::string manifest = prefix.substr(kArchiveHeaderBytes);
  return prefix + data + encode_trailer({data.size(), hash64(manifest)});
}

class CollectSink : public EntrySink {
 public:
  Status begin_entry(size_t, const ArchiveEntry& e) override {
    current_ = &files[e.name];
    return Status::Ok();
  }
  Status chunk(std::string_view b) override {
    current_->append(b);
    return Status::Ok();
  }
  Status end_entry() override { return Status::Ok(); }
  std::map<std::string, std::string> files;

 private:
  std::string* current_ = nullptr;
};

Status read_all(std::string_view archive, CollectSink* sink = nullptr) {
  auto src = memory_source(archive);
  ArchiveReader reader(src.get());
  auto m = reader.read_manifest();
  if (!m.ok()) return m.status();
  return reader.read_entries(sink);
}

const std::vector<std::pair<std::string, std::string>> kFiles = {
    {"pstree.img", "tree bytes"}, {"empty.img", ""}, {"pages-1.img", std::string(5000, 'p')}};

std::string small_archive() {
  return build_archive(sample_manifest(kFiles),
                       {kFiles[0].second, kFiles[1].second, kFiles[2].second});
}

TEST(ArchiveManifest, RoundTrips) {
  Manifest m = sample_manifest(kFiles);
  auto back = decode_manifest(encode_manifest(m));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, m);
}

TEST(ArchiveManifest, RejectsUnsafeAndDuplicateNames) {
  for (std::string bad : {"../etc/passwd", "a/b", "..", ".", ""}) {
    Manifest m = sample_manifest({{bad, "x"}});
    auto r = decode_manifest(encode_manifest(m));
    EXPECT_TRUE(r.status().is_corruption()) << "'" << bad << "' accepted";
  }
  Manifest dup = sample_manifest({{"a.img", "x"}, {"a.img", "y"}});
  EXPECT_TRUE(decode_manifest(encode_manifest(dup)).status().is_corruption());
}

TEST(ArchiveManifest, RejectsBadChecksumText) {
  Manifest m = sample_manifest({{"a.img", "x"}});
  m.entries[0].checksum = "XYZ";
  EXPECT_TRUE(decode_manifest(encode_manifest(m)).status().is_corruption());
}

TEST(ArchiveReader, ReadsBackEveryEntry) {
  CollectSink sink;
  ASSERT_TRUE(read_all(small_archive(), &sink).ok());
  for (const auto& [name, bytes] : kFiles) EXPECT_EQ(sink.files[name], bytes) << name;
}

TEST(ArchiveReader, ReadsMultiChunkEntries) {
  std::string big(container::kArchiveChunkBytes * 2 + 12345, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) >> 7);
  std::string archive = build_archive(sample_manifest({{"pages-1.img", big}}), {big});
  CollectSink sink;
  ASSERT_TRUE(read_all(archive, &sink).ok());
  EXPECT_EQ(sink.files["pages-1.img"], big);
}

TEST(ArchiveReader, RejectsEveryFlippedBit) {
  const std::string good = small_archive();
  for (size_t at = 0; at < good.size(); ++at) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ (1 << bit));
      Status st = read_all(bad);
      ASSERT_FALSE(st.ok()) << "flip of bit " << bit << " at byte " << at << " went unnoticed";
    }
  }
}

TEST(ArchiveReader, RejectsEveryTruncation) {
  const std::string good = small_archive();
  for (size_t len = 0; len < good.size(); ++len) {
    Status st = read_all(good.substr(0, len));
    ASSERT_TRUE(st.is_corruption()) << "truncated to " << len << ": " << st.to_string();
  }
}

TEST(ArchiveReader, RejectsBytesAfterTheTrailer) {
  EXPECT_TRUE(read_all(small_archive() + "x").is_corruption());
}

TEST(ArchiveReader, RejectsWrongMagic) {
  std::string bad = small_archive();
  bad[0] = 'X';
  Status st = read_all(bad);
  EXPECT_TRUE(st.is_corruption());
  EXPECT_NE(st.message().find("bad magic"), std::string::npos) << st.to_string();
  EXPECT_NE(read_all("hello").message().find("bad magic"), std::string::npos);
}

TEST(ArchiveReader, ReportsAFutureVersionAsSuch) {
  std::string bad = small_archive();
  std::string v;
  put_u32(&v, container::kArchiveFormatVersion + 1);
  bad.replace(8, 4, v);  // header checksum left stale: the version is reported first
  Status st = read_all(bad);
  EXPECT_EQ(st.code(), Status::Code::kVersionMismatch) << st.to_string();
  EXPECT_NE(st.message().find("newer"), std::string::npos);
}

TEST(ArchiveReader, RejectsAbsurdManifestLengthBeforeAllocating) {
  std::string bad = small_archive().substr(0, kArchiveHeaderBytes);
  std::string len;
  put_u32(&len, 0xfffffff0u);
  bad.replace(16, 4, len);
  std::string sum;
  put_u32(&sum, hash32(std::string_view(bad).substr(0, 28)));
  bad.replace(28, 4, sum);
  EXPECT_NE(read_all(bad).message().find("absurd"), std::string::npos);
}

TEST(ArchiveFrame, RejectsAbsurdCompressedLength) {
  std::string frame = encode_frame(0, 0, "hello hello hello");
  std::string len;
  put_u32(&len, 0x7fffffffu);
  frame.replace(16, 4, len);
  std::string sum;
  put_u32(&sum, hash32(std::string_view(frame).substr(0, 24)));
  frame.replace(24, 4, sum);
  auto h = parse_frame_header(frame.substr(0, kArchiveFrameHeaderBytes), 0, 0, 17);
  EXPECT_TRUE(h.status().is_corruption());
}

TEST(ArchiveFrame, RejectsFramesOutOfOrder) {
  std::string frame = encode_frame(1, 0, "abc");
  EXPECT_TRUE(parse_frame_header(frame, 0, 0, 3).status().is_corruption());
  EXPECT_TRUE(parse_frame_header(frame, 1, 1, 3).status().is_corruption());
  EXPECT_TRUE(parse_frame_header(frame, 1, 0, 4).status().is_corruption());
  EXPECT_TRUE(parse_frame_header(frame, 1, 0, 3).ok());
}

TEST(StreamHash128, MatchesOneShotHash) {
  StreamHash128 h;
  h.update("hello ");
  h.update("world");
  EXPECT_EQ(h.hex(), hash128_hex("hello world"));
}

}  // namespace
}  // namespace relive::wire
