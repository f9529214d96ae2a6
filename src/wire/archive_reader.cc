#include "wire/archive_reader.h"

#include <fmt/format.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/check.h"
#include "common/hash.h"
#include "wire/archive_codec.h"

namespace relive::wire {
namespace {

class MemorySource : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : rest_(bytes) {}
  Result<size_t> read_some(char* buf, size_t n) override {
    n = std::min(n, rest_.size());
    std::memcpy(buf, rest_.data(), n);
    rest_.remove_prefix(n);
    return n;
  }

 private:
  std::string_view rest_;
};

class FdSource : public ByteSource {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  Result<size_t> read_some(char* buf, size_t n) override {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::read(fd_, buf + got, n - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return PosixError("read archive", errno);
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    return got;
  }

 private:
  int fd_;
};

}  // namespace

Status ByteSource::read(char* buf, size_t n, size_t* got) {
  RELIVE_ASSIGN_OR_RETURN(size_t have, read_some(buf, n));
  if (got != nullptr) *got = have;
  if (have < n) return Status::Corruption("archive truncated");
  return Status::Ok();
}

Result<bool> ByteSource::at_end() {
  char c;
  RELIVE_ASSIGN_OR_RETURN(size_t have, read_some(&c, 1));
  return have == 0;
}

std::unique_ptr<ByteSource> memory_source(std::string_view bytes) {
  return std::make_unique<MemorySource>(bytes);
}
std::unique_ptr<ByteSource> fd_source(int fd) { return std::make_unique<FdSource>(fd); }

Result<container::Manifest> ArchiveReader::read_manifest() {
  RELIVE_CHECK(!have_manifest_, "read_manifest called twice");
  std::string header(kArchiveHeaderBytes, '\0');
  // A short file still gets its magic checked, so that "not an archive" wins over "truncated".
  size_t got = 0;
  Status st = source_->read(header.data(), header.size(), &got);
  if (!st.ok()) {
    auto short_header = parse_archive_header(std::string_view(header).substr(0, got));
    return short_header.ok() ? st : short_header.status();
  }
  RELIVE_ASSIGN_OR_RETURN(ArchiveHeader h, parse_archive_header(header));
  std::string manifest(h.manifest_length, '\0');  // bounded by parse_archive_header
  RELIVE_RETURN_IF_ERROR(source_->read(manifest.data(), manifest.size()).with_context("manifest"));
  if (hash64(manifest) != h.manifest_hash) {
    return Status::Corruption("manifest checksum mismatch");
  }
  RELIVE_ASSIGN_OR_RETURN(manifest_, decode_manifest(manifest));
  if (manifest_.format_version != h.version) {
    return Status::Corruption(fmt::format("manifest says format version {}, header {}",
                                          manifest_.format_version, h.version));
  }
  manifest_hash_ = h.manifest_hash;
  have_manifest_ = true;
  return manifest_;
}

Status ArchiveReader::read_frame(uint32_t index, uint32_t chunk, uint32_t raw_length) {
  std::string header(kArchiveFrameHeaderBytes, '\0');
  RELIVE_RETURN_IF_ERROR(source_->read(header.data(), header.size()));
  RELIVE_ASSIGN_OR_RETURN(ArchiveFrameHeader h,
                          parse_frame_header(header, index, chunk, raw_length));
  compressed_.resize(h.compressed_length);  // bounded by parse_frame_header
  RELIVE_RETURN_IF_ERROR(source_->read(compressed_.data(), compressed_.size()));
  RELIVE_RETURN_IF_ERROR(decode_frame_payload(h, compressed_, &raw_));
  data_length_ += kArchiveFrameHeaderBytes + compressed_.size();
  return Status::Ok();
}

Status ArchiveReader::read_entry(size_t index, EntrySink* sink) {
  const container::ArchiveEntry& e = manifest_.entries[index];
  if (sink != nullptr) RELIVE_RETURN_IF_ERROR(sink->begin_entry(index, e));
  StreamHash128 hash;
  uint64_t left = e.size;
  for (uint32_t chunk = 0; left > 0; ++chunk) {
    auto want = static_cast<uint32_t>(std::min<uint64_t>(left, container::kArchiveChunkBytes));
    Status st = read_frame(static_cast<uint32_t>(index), chunk, want);
    if (!st.ok()) return st.with_context(fmt::format("chunk {}", chunk));
    hash.update(raw_);
    if (sink != nullptr) RELIVE_RETURN_IF_ERROR(sink->chunk(raw_));
    left -= want;
  }
  if (hash.hex() != e.checksum) {
    return Status::Corruption(fmt::format("checksum mismatch: {} in the archive, manifest says {}",
                                          hash.hex(), e.checksum));
  }
  return sink != nullptr ? sink->end_entry() : Status::Ok();
}

Status ArchiveReader::read_trailer() {
  std::string bytes(kArchiveTrailerBytes, '\0');
  RELIVE_RETURN_IF_ERROR(source_->read(bytes.data(), bytes.size()).with_context("trailer"));
  RELIVE_ASSIGN_OR_RETURN(ArchiveTrailer t, parse_trailer(bytes));
  if (t.manifest_hash != manifest_hash_) {
    return Status::Corruption("trailer names another manifest than the header");
  }
  if (t.data_length != data_length_) {
    return Status::Corruption(fmt::format("trailer says {} data bytes, the archive holds {}",
                                          t.data_length, data_length_));
  }
  RELIVE_ASSIGN_OR_RETURN(bool end, source_->at_end());
  if (!end) return Status::Corruption("bytes after the archive trailer");
  return Status::Ok();
}

Status ArchiveReader::read_entries(EntrySink* sink) {
  RELIVE_CHECK(have_manifest_, "read_entries before read_manifest");
  for (size_t i = 0; i < manifest_.entries.size(); ++i) {
    Status st = read_entry(i, sink);
    if (!st.ok()) return st.with_context("entry '" + manifest_.entries[i].name + "'");
  }
  return read_trailer();
}

}  // namespace relive::wire
