// Streaming reader of a whole container archive (layout: schemas/archive.capnp). It checks
// every length against the manifest and every checksum on the way, and allocates at most one
// manifest (16 MiB) and one chunk (1 MiB, twice) whatever the input claims.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/hash.h"
#include "relive/result.h"
#include "wire/archive_types.h"

namespace relive::wire {

// Where the archive's bytes come from.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `n` bytes (fewer only at the end of the source); returns how many.
  virtual Result<size_t> read_some(char* buf, size_t n) = 0;

  // Reads exactly `n` bytes; Corruption("archive truncated") when the source ends first. The
  // bytes that were there are in buf[0..*got) either way.
  Status read(char* buf, size_t n, size_t* got = nullptr);
  // True when no byte is left (consumes one byte otherwise).
  Result<bool> at_end();
};

// A source over bytes in memory; `bytes` must outlive it.
std::unique_ptr<ByteSource> memory_source(std::string_view bytes);
// A source over an open file descriptor, read from its current offset; does not own the fd.
std::unique_ptr<ByteSource> fd_source(int fd);

// Receives the verified contents of the entries, in order. A chunk has passed its frame
// checksum; end_entry() is called only after the whole entry matched its manifest checksum.
class EntrySink {
 public:
  virtual ~EntrySink() = default;
  virtual Status begin_entry(size_t index, const container::ArchiveEntry& entry) = 0;
  virtual Status chunk(std::string_view bytes) = 0;
  virtual Status end_entry() = 0;
};

class ArchiveReader {
 public:
  // `source` must outlive the reader.
  explicit ArchiveReader(ByteSource* source) : source_(source) {}

  // Reads the header and the manifest and checks both. Call first, once.
  Result<container::Manifest> read_manifest();

  // Reads every entry's frames, then the trailer, and checks that nothing follows. `sink` may be
  // null (verify only). The first failure names the entry and chunk it was found in.
  Status read_entries(EntrySink* sink);

 private:
  // Reads and checks one frame into raw_.
  Status read_frame(uint32_t index, uint32_t chunk, uint32_t raw_length);
  Status read_entry(size_t index, EntrySink* sink);
  Status read_trailer();

  ByteSource* source_;
  container::Manifest manifest_;
  uint64_t manifest_hash_ = 0;
  uint64_t data_length_ = 0;
  bool have_manifest_ = false;
  std::string compressed_, raw_;
};

}  // namespace relive::wire
