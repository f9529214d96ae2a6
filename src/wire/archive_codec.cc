#include "wire/archive_codec.h"

#include <fmt/format.h>
#include <lz4.h>

#include <set>

#include "common/check.h"
#include "common/hash.h"
#include "schemas/archive.capnp.h"
#include "wire/flat_message.h"
#include "wire/le_bytes.h"

namespace relive::wire {
namespace {

using container::kArchiveChunkBytes;
using container::kArchiveFormatVersion;

// Header and trailer field offsets (schemas/archive.capnp).
constexpr size_t kVersionAt = 8, kFlagsAt = 12, kManifestLengthAt = 16, kManifestHashAt = 20;
constexpr size_t kHeaderHashAt = 28;
constexpr size_t kFrameHashAt = 24;
constexpr size_t kTrailerHashAt = 24;
// LZ4 expands a block at most 255-fold; see segment.cc.
constexpr uint64_t kMaxExpansion = 255, kExpansionSlack = 64;
constexpr size_t kMaxCommBytes = 64, kMaxTextBytes = 4096;

void build_stats(const container::DumpStats& s, ArchiveDumpStats::Builder b) {
  b.setFreezingUs(s.freezing_us);
  b.setFrozenUs(s.frozen_us);
  b.setMemdumpUs(s.memdump_us);
  b.setMemwriteUs(s.memwrite_us);
  b.setPagesScanned(s.pages_scanned);
  b.setPagesWritten(s.pages_written);
}

void build(const container::Manifest& m, ArchiveManifest::Builder b) {
  b.setFormatVersion(kArchiveFormatVersion);
  b.setSourceHost(as_text(m.source_host));
  b.setKernel(as_text(m.kernel));
  b.setCriuVersion(as_text(m.criu_version));
  b.setCreatedRealtimeNs(m.created_realtime_ns);
  b.setReliveVersion(as_text(m.relive_version));
  b.setRootPid(m.root_pid);
  auto procs = b.initProcesses(static_cast<unsigned>(m.processes.size()));
  for (size_t i = 0; i < m.processes.size(); ++i) {
    const auto& p = m.processes[i];
    auto pb = procs[static_cast<unsigned>(i)];
    pb.setPid(p.pid);
    pb.setPpid(p.ppid);
    pb.setPgid(p.pgid);
    pb.setSid(p.sid);
    pb.setThreads(p.threads);
    pb.setComm(as_text(p.comm));
  }
  auto entries = b.initEntries(static_cast<unsigned>(m.entries.size()));
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const auto& e = m.entries[i];
    auto eb = entries[static_cast<unsigned>(i)];
    eb.setName(as_text(e.name));
    eb.setSize(e.size);
    eb.setChecksum(as_text(e.checksum));
    eb.setKind(e.kind == container::EntryKind::kFsChange ? ArchiveEntryKind::FS_CHANGE
                                                         : ArchiveEntryKind::CRIU_IMAGE);
  }
  build_stats(m.stats, b.initStats());
  b.setTcpEstablished(m.tcp_established);
  b.setFsNote(as_text(m.fs_note));
}

bool is_hex32(const std::string& s) {
  if (s.size() != 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Entry names become file names in the restore's work dir: nothing may escape it.
bool is_safe_name(const std::string& n) {
  return !n.empty() && n.size() <= kMaxEntryNameBytes && n != "." && n != ".." &&
         n.find('/') == std::string::npos && n.find('\0') == std::string::npos;
}

Result<container::EntryKind> decode_kind(ArchiveEntryKind k) {
  switch (k) {
    case ArchiveEntryKind::CRIU_IMAGE:
      return container::EntryKind::kCriuImage;
    case ArchiveEntryKind::FS_CHANGE:
      return container::EntryKind::kFsChange;
  }
  return Status::Corruption(fmt::format("unknown entry kind {}", static_cast<int>(k)));
}

Result<std::string> bounded_text(capnp::Text::Reader t, size_t max, const char* what) {
  if (t.size() > max) return Status::Corruption(fmt::format("{} of {} bytes", what, t.size()));
  return to_string(t);
}

Status decode_entries(ArchiveManifest::Reader r, container::Manifest* m) {
  auto list = r.getEntries();
  if (list.size() > kMaxArchiveEntries) {
    return Status::Corruption(fmt::format("manifest lists {} entries", list.size()));
  }
  std::set<std::string> names;
  for (auto e : list) {
    container::ArchiveEntry out;
    RELIVE_ASSIGN_OR_RETURN(out.name, bounded_text(e.getName(), kMaxEntryNameBytes, "entry name"));
    if (!is_safe_name(out.name)) return Status::Corruption("unsafe entry name '" + out.name + "'");
    if (!names.insert(out.name).second) {
      return Status::Corruption("entry '" + out.name + "' appears twice");
    }
    out.size = e.getSize();
    if (out.size > kMaxEntryBytes) {
      return Status::Corruption(fmt::format("entry '{}' of {} bytes", out.name, out.size));
    }
    RELIVE_ASSIGN_OR_RETURN(out.checksum, bounded_text(e.getChecksum(), 32, "checksum"));
    if (!is_hex32(out.checksum)) return Status::Corruption("bad checksum of '" + out.name + "'");
    RELIVE_ASSIGN_OR_RETURN(out.kind, decode_kind(e.getKind()));
    m->entries.push_back(std::move(out));
  }
  return Status::Ok();
}

Status decode_processes(ArchiveManifest::Reader r, container::Manifest* m) {
  auto list = r.getProcesses();
  if (list.size() > kMaxArchiveProcesses) {
    return Status::Corruption(fmt::format("manifest lists {} processes", list.size()));
  }
  for (auto p : list) {
    container::ProcessInfo out{p.getPid(), p.getPpid(),    p.getPgid(),
                               p.getSid(), p.getThreads(), ""};
    RELIVE_ASSIGN_OR_RETURN(out.comm, bounded_text(p.getComm(), kMaxCommBytes, "comm"));
    m->processes.push_back(std::move(out));
  }
  return Status::Ok();
}

Result<container::Manifest> decode_root(ArchiveManifest::Reader r) {
  container::Manifest m;
  m.format_version = r.getFormatVersion();
  RELIVE_ASSIGN_OR_RETURN(m.source_host, bounded_text(r.getSourceHost(), kMaxTextBytes, "host"));
  RELIVE_ASSIGN_OR_RETURN(m.kernel, bounded_text(r.getKernel(), kMaxTextBytes, "kernel"));
  RELIVE_ASSIGN_OR_RETURN(m.criu_version,
                          bounded_text(r.getCriuVersion(), kMaxTextBytes, "CRIU version"));
  m.created_realtime_ns = r.getCreatedRealtimeNs();
  RELIVE_ASSIGN_OR_RETURN(m.relive_version,
                          bounded_text(r.getReliveVersion(), kMaxTextBytes, "relive version"));
  m.root_pid = r.getRootPid();
  RELIVE_RETURN_IF_ERROR(decode_processes(r, &m));
  RELIVE_RETURN_IF_ERROR(decode_entries(r, &m));
  auto s = r.getStats();
  m.stats = {s.getFreezingUs(), s.getFrozenUs(),     s.getMemdumpUs(),
             s.getMemwriteUs(), s.getPagesScanned(), s.getPagesWritten()};
  m.tcp_established = r.getTcpEstablished();
  RELIVE_ASSIGN_OR_RETURN(m.fs_note, bounded_text(r.getFsNote(), kMaxTextBytes, "fs note"));
  return m;
}

uint32_t max_compressed(uint32_t raw) {
  return static_cast<uint32_t>(LZ4_compressBound(static_cast<int>(raw)));
}

}  // namespace

std::string encode_manifest(const container::Manifest& m) {
  capnp::MallocMessageBuilder message;
  build(m, message.initRoot<ArchiveManifest>());
  return to_flat_bytes(message);
}

Result<container::Manifest> decode_manifest(std::string_view bytes) {
  return decode_flat<ArchiveManifest>(bytes,
                                      [](ArchiveManifest::Reader r) { return decode_root(r); });
}

std::string encode_archive_prefix(const container::Manifest& m) {
  std::string manifest = encode_manifest(m);
  RELIVE_CHECK(manifest.size() <= kMaxManifestBytes, "manifest of {} bytes", manifest.size());
  std::string out(kArchiveMagic);
  put_u32(&out, kArchiveFormatVersion);
  put_u32(&out, 0);  // flags
  put_u32(&out, static_cast<uint32_t>(manifest.size()));
  put_u64(&out, hash64(manifest));
  put_u32(&out, hash32(out));
  return out + manifest;
}

Result<ArchiveHeader> parse_archive_header(std::string_view b) {
  if (b.size() < kArchiveMagic.size() || b.substr(0, kArchiveMagic.size()) != kArchiveMagic) {
    return Status::Corruption("not a relive container archive (bad magic)");
  }
  if (b.size() < kArchiveHeaderBytes) {
    return Status::Corruption(fmt::format("archive header truncated at {} bytes", b.size()));
  }
  ArchiveHeader h{get_u32(b, kVersionAt), get_u32(b, kManifestLengthAt),
                  get_u64(b, kManifestHashAt)};
  if (h.version > kArchiveFormatVersion) {
    return Status::VersionMismatch(
        fmt::format("archive format version {} is newer than this relive's version {}", h.version,
                    kArchiveFormatVersion));
  }
  if (hash32(b.substr(0, kHeaderHashAt)) != get_u32(b, kHeaderHashAt)) {
    return Status::Corruption("archive header checksum mismatch");
  }
  if (h.version == 0) return Status::Corruption("archive format version 0");
  if (uint32_t flags = get_u32(b, kFlagsAt); flags != 0) {
    return Status::Corruption(fmt::format("unknown archive flags {:#x}", flags));
  }
  if (h.manifest_length == 0 || h.manifest_length > kMaxManifestBytes) {
    return Status::Corruption(fmt::format("manifest length {} is absurd", h.manifest_length));
  }
  return h;
}

std::string encode_frame(uint32_t entry, uint32_t chunk, std::string_view raw) {
  RELIVE_CHECK(raw.size() <= kArchiveChunkBytes, "chunk of {} bytes", raw.size());
  std::string compressed(max_compressed(static_cast<uint32_t>(raw.size())), '\0');
  int n = LZ4_compress_default(raw.data(), compressed.data(), static_cast<int>(raw.size()),
                               static_cast<int>(compressed.size()));
  RELIVE_CHECK(n > 0 || raw.empty(), "LZ4_compress_default failed on {} bytes", raw.size());
  compressed.resize(static_cast<size_t>(n));
  std::string out;
  out.reserve(kArchiveFrameHeaderBytes + compressed.size());
  put_u32(&out, kArchiveFrameMagic);
  put_u32(&out, entry);
  put_u32(&out, chunk);
  put_u32(&out, static_cast<uint32_t>(raw.size()));
  put_u32(&out, static_cast<uint32_t>(compressed.size()));
  put_u32(&out, hash32(compressed));
  put_u32(&out, hash32(out));
  return out + compressed;
}

Result<ArchiveFrameHeader> parse_frame_header(std::string_view b, uint32_t entry, uint32_t chunk,
                                              uint32_t raw_length) {
  if (get_u32(b, 0) != kArchiveFrameMagic) return Status::Corruption("bad frame magic");
  if (hash32(b.substr(0, kFrameHashAt)) != get_u32(b, kFrameHashAt)) {
    return Status::Corruption("frame header checksum mismatch");
  }
  ArchiveFrameHeader h{get_u32(b, 4), get_u32(b, 8), get_u32(b, 12), get_u32(b, 16),
                       get_u32(b, 20)};
  if (h.entry != entry || h.chunk != chunk) {
    return Status::Corruption(fmt::format("frame of entry {} chunk {}, expected entry {} chunk {}",
                                          h.entry, h.chunk, entry, chunk));
  }
  if (h.raw_length != raw_length) {
    return Status::Corruption(
        fmt::format("frame holds {} bytes, expected {}", h.raw_length, raw_length));
  }
  if (h.compressed_length > max_compressed(h.raw_length) ||
      h.raw_length > kMaxExpansion * h.compressed_length + kExpansionSlack) {
    return Status::Corruption(fmt::format("compressed length {} is absurd for {} raw bytes",
                                          h.compressed_length, h.raw_length));
  }
  return h;
}

Status decode_frame_payload(const ArchiveFrameHeader& h, std::string_view compressed,
                            std::string* raw) {
  if (hash32(compressed) != h.payload_hash) return Status::Corruption("frame checksum mismatch");
  raw->resize(h.raw_length);  // bounded by parse_frame_header: at most one chunk
  int n = LZ4_decompress_safe(compressed.data(), raw->data(), static_cast<int>(compressed.size()),
                              static_cast<int>(raw->size()));
  if (n < 0 || static_cast<uint32_t>(n) != h.raw_length) {
    return Status::Corruption("LZ4 decompression failed");
  }
  return Status::Ok();
}

std::string encode_trailer(const ArchiveTrailer& t) {
  std::string out(kArchiveTrailerMagic);
  put_u64(&out, t.data_length);
  put_u64(&out, t.manifest_hash);
  put_u32(&out, hash32(out));
  return out;
}

Result<ArchiveTrailer> parse_trailer(std::string_view b) {
  if (b.size() < kArchiveTrailerBytes ||
      b.substr(0, kArchiveTrailerMagic.size()) != kArchiveTrailerMagic) {
    return Status::Corruption("bad archive trailer magic (truncated archive?)");
  }
  if (hash32(b.substr(0, kTrailerHashAt)) != get_u32(b, kTrailerHashAt)) {
    return Status::Corruption("archive trailer checksum mismatch");
  }
  return ArchiveTrailer{get_u64(b, 8), get_u64(b, 16)};
}

}  // namespace relive::wire
