#include "container/archive_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/scoped_fd.h"
#include "wire/archive_codec.h"
#include "wire/archive_reader.h"

namespace relive::container {
namespace {

constexpr uint64_t kMaxKeptBytes = 64u << 20;

// Unlinks a file on destruction unless it was committed (renamed into place).
class PartialFile {
 public:
  explicit PartialFile(std::string path) : path_(std::move(path)) {}
  ~PartialFile() {
    if (!committed_) ::unlink(path_.c_str());
  }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;
  const std::string& path() const { return path_; }
  Status commit(const std::string& final_path) {
    if (::rename(path_.c_str(), final_path.c_str()) != 0) {
      return PosixError("rename " + path_ + " to " + final_path, errno);
    }
    committed_ = true;
    return Status::Ok();
  }

 private:
  std::string path_;
  bool committed_ = false;
};

Result<ScopedFd> open_fd(const std::string& path, int flags, mode_t mode = 0) {
  ScopedFd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
  if (!fd.valid()) return PosixError("open " + path, errno);
  return fd;
}

Result<std::string> hash_file(const std::string& path, uint64_t* size) {
  RELIVE_ASSIGN_OR_RETURN(ScopedFd fd, open_fd(path, O_RDONLY));
  StreamHash128 hash;
  auto src = wire::fd_source(fd.get());
  std::string buf(kArchiveChunkBytes, '\0');
  *size = 0;
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(size_t n, src->read_some(buf.data(), buf.size()));
    hash.update(std::string_view(buf).substr(0, n));
    *size += n;
    if (n < buf.size()) return hash.hex();
  }
}

// Appends one entry's frames to `out`; returns the bytes written.
Result<uint64_t> write_entry(int out, const std::string& path, uint32_t index,
                             const ArchiveEntry& e) {
  RELIVE_ASSIGN_OR_RETURN(ScopedFd fd, open_fd(path, O_RDONLY));
  auto src = wire::fd_source(fd.get());
  StreamHash128 hash;
  std::string buf(kArchiveChunkBytes, '\0');
  uint64_t left = e.size, written = 0;
  for (uint32_t chunk = 0; left > 0; ++chunk) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(left, kArchiveChunkBytes));
    Status st = src->read(buf.data(), want);
    if (!st.ok()) return Status::Corruption(path + " shrank while it was archived");
    std::string_view raw = std::string_view(buf).substr(0, want);
    hash.update(raw);
    std::string frame = wire::encode_frame(index, chunk, raw);
    RELIVE_RETURN_IF_ERROR(write_all(out, frame));
    written += frame.size();
    left -= want;
  }
  RELIVE_ASSIGN_OR_RETURN(bool end, src->at_end());
  if (!end || hash.hex() != e.checksum) {
    return Status::Corruption(path + " changed while it was archived");
  }
  return written;
}

// Writes verified entries to files in a directory.
class DirSink : public wire::EntrySink {
 public:
  explicit DirSink(std::string dir) : dir_(std::move(dir)) {}
  Status begin_entry(size_t, const ArchiveEntry& e) override {
    final_ = dir_ + "/" + e.name;  // names are checked by decode_manifest: no '/', no ".."
    partial_ = std::make_unique<PartialFile>(final_ + ".partial");
    RELIVE_ASSIGN_OR_RETURN(fd_, open_fd(partial_->path(), O_WRONLY | O_CREAT | O_EXCL, 0600));
    return Status::Ok();
  }
  Status chunk(std::string_view bytes) override { return write_all(fd_.get(), bytes); }
  Status end_entry() override {
    fd_.reset();
    Status st = partial_->commit(final_);
    partial_.reset();
    return st;
  }

 private:
  std::string dir_, final_;
  std::unique_ptr<PartialFile> partial_;
  ScopedFd fd_;
};

// Keeps selected entries in memory.
class KeepSink : public wire::EntrySink {
 public:
  KeepSink(bool (*keep)(const std::string&), std::map<std::string, std::string>* kept)
      : keep_(keep), kept_(kept) {}
  Status begin_entry(size_t, const ArchiveEntry& e) override {
    current_ = keep_(e.name) && e.size <= kMaxKeptBytes ? &(*kept_)[e.name] : nullptr;
    return Status::Ok();
  }
  Status chunk(std::string_view bytes) override {
    if (current_ != nullptr) current_->append(bytes);
    return Status::Ok();
  }
  Status end_entry() override { return Status::Ok(); }

 private:
  bool (*keep_)(const std::string&);
  std::map<std::string, std::string>* kept_;
  std::string* current_ = nullptr;
};

Status read_with(const std::string& path, wire::EntrySink* sink, Manifest* manifest,
                 bool* have_manifest = nullptr) {
  RELIVE_ASSIGN_OR_RETURN(ScopedFd fd, open_fd(path, O_RDONLY));
  auto src = wire::fd_source(fd.get());
  wire::ArchiveReader reader(src.get());
  RELIVE_ASSIGN_OR_RETURN(*manifest, reader.read_manifest());
  if (have_manifest != nullptr) *have_manifest = true;
  return reader.read_entries(sink);
}

}  // namespace

Status list_entries(const std::string& images_dir, Manifest* manifest) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(images_dir, ec)) {
    if (!f.is_regular_file()) {
      return Status::Unsupported(f.path().string() + " is not a regular file");
    }
    names.push_back(f.path().filename().string());
  }
  if (ec) return Status::IoError("list " + images_dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  manifest->entries.clear();
  for (const auto& name : names) {
    ArchiveEntry e{name, 0, "", EntryKind::kCriuImage};
    RELIVE_ASSIGN_OR_RETURN(e.checksum, hash_file(images_dir + "/" + name, &e.size));
    manifest->entries.push_back(std::move(e));
  }
  return Status::Ok();
}

Result<uint64_t> write_archive(const std::string& path, const std::string& images_dir,
                               const Manifest& manifest) {
  PartialFile partial(path + ".partial");
  RELIVE_ASSIGN_OR_RETURN(ScopedFd out,
                          open_fd(partial.path(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
  std::string prefix = wire::encode_archive_prefix(manifest);
  RELIVE_RETURN_IF_ERROR(write_all(out.get(), prefix));
  uint64_t data = 0;
  for (size_t i = 0; i < manifest.entries.size(); ++i) {
    const ArchiveEntry& e = manifest.entries[i];
    RELIVE_ASSIGN_OR_RETURN(
        uint64_t n, write_entry(out.get(), images_dir + "/" + e.name, static_cast<uint32_t>(i), e));
    data += n;
  }
  std::string_view manifest_bytes = std::string_view(prefix).substr(wire::kArchiveHeaderBytes);
  std::string trailer = wire::encode_trailer({data, hash64(manifest_bytes)});
  RELIVE_RETURN_IF_ERROR(write_all(out.get(), trailer));
  if (::fsync(out.get()) != 0) return PosixError("fsync " + partial.path(), errno);
  out.reset();
  RELIVE_RETURN_IF_ERROR(partial.commit(path));
  return prefix.size() + data + trailer.size();
}

Result<Manifest> verify_archive(const std::string& path) {
  Manifest m;
  RELIVE_RETURN_IF_ERROR(read_with(path, nullptr, &m));
  return m;
}

Result<Manifest> unpack_archive(const std::string& path, const std::string& dir) {
  DirSink sink(dir);
  Manifest m;
  RELIVE_RETURN_IF_ERROR(read_with(path, &sink, &m));
  return m;
}

Status read_archive(const std::string& path, bool (*keep)(const std::string&), Manifest* manifest,
                    bool* have_manifest, std::map<std::string, std::string>* kept) {
  KeepSink sink(keep, kept);
  *have_manifest = false;
  return read_with(path, &sink, manifest, have_manifest);
}

}  // namespace relive::container
