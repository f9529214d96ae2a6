#include "transfer/file_transfer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/scoped_fd.h"

namespace relive::transfer {
namespace {

constexpr size_t kChunkBytes = 1u << 20;

Result<migration::FileEntry> describe(const std::string& base, const std::string& name) {
  ScopedFd fd(::open((base + "/" + name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + base + "/" + name, errno);
  StreamHash128 hash;
  std::string buf(kChunkBytes, '\0');
  uint64_t size = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("read " + name, errno);
    if (n == 0) break;
    hash.update(std::string_view(buf.data(), static_cast<size_t>(n)));
    size += static_cast<uint64_t>(n);
  }
  return migration::FileEntry{name, size, hash.hex()};
}

Status stream_file(BulkSender* out, uint32_t index, const std::string& path, uint64_t size) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + path, errno);
  std::string event = event_header(index, 0);
  uint64_t sent = 0;
  while (sent < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, size - sent));
    event.resize(8 + want);
    RELIVE_RETURN_IF_ERROR(read_exact(fd.get(), event.data() + 8, want));
    RELIVE_RETURN_IF_ERROR(out->add(event));
    sent += want;
  }
  return Status::Ok();
}

// One file being received.
struct Incoming {
  ScopedFd fd;
  uint64_t written = 0;
  StreamHash128 hash;
};

Status finish_file(const migration::FileEntry& e, Incoming* in) {
  if (in->written != e.size) {
    return Status::Corruption(
        fmt::format("{}: received {} bytes, announced {}", e.name, in->written, e.size));
  }
  if (in->hash.hex() != e.checksum) {
    return Status::Corruption(e.name + ": checksum mismatch after transfer");
  }
  return Status::Ok();
}

}  // namespace

bool safe_relative_name(const std::string& name) {
  if (name.empty() || name.front() == '/') return false;
  for (const auto& part : std::filesystem::path(name)) {
    if (part == "." || part == ".." || part.empty()) return false;
  }
  return true;
}

Result<uint64_t> send_files(Link* link, const std::string& dir, const std::string& base,
                            const std::vector<std::string>& names) {
  migration::FileBatch batch{dir, {}};
  for (const std::string& n : names) {
    RELIVE_ASSIGN_OR_RETURN(migration::FileEntry e, describe(base, n));
    batch.files.push_back(std::move(e));
  }
  RELIVE_RETURN_IF_ERROR(link->send(batch));
  BulkSender out(&link->channel());
  for (uint32_t i = 0; i < batch.files.size(); ++i) {
    const auto& e = batch.files[i];
    RELIVE_RETURN_IF_ERROR(stream_file(&out, i, base + "/" + e.name, e.size));
  }
  RELIVE_RETURN_IF_ERROR(out.flush());
  RELIVE_RETURN_IF_ERROR(link->wait_ack().status());
  return out.wire_bytes();
}

Status receive_files(security::Channel* channel, const migration::FileBatch& batch,
                     const std::string& dest) {
  std::vector<Incoming> files(batch.files.size());
  uint64_t remaining = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& e = batch.files[i];
    if (!safe_relative_name(e.name)) return Status::InvalidArgument("unsafe file name " + e.name);
    std::string path = dest + "/" + e.name;
    RELIVE_RETURN_IF_ERROR(make_dirs(std::filesystem::path(path).parent_path().string()));
    files[i].fd = ScopedFd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!files[i].fd.valid()) return PosixError("create " + path, errno);
    remaining += e.size;
  }
  BulkReceiver in(channel);
  while (remaining > 0) {
    RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> events, in.next());
    for (const std::string& ev : events) {
      uint32_t index = event_u32(ev, 0);
      if (index >= files.size()) return Status::Corruption("bulk data for an unknown file");
      std::string_view data = std::string_view(ev).substr(8);
      Incoming& f = files[index];
      if (data.size() > remaining || f.written + data.size() > batch.files[index].size) {
        return Status::Corruption(batch.files[index].name + ": more bytes than announced");
      }
      RELIVE_RETURN_IF_ERROR(write_all(f.fd.get(), data));
      f.hash.update(data);
      f.written += data.size();
      remaining -= data.size();
    }
  }
  for (size_t i = 0; i < files.size(); ++i) {
    RELIVE_RETURN_IF_ERROR(finish_file(batch.files[i], &files[i]));
  }
  return Status::Ok();
}

}  // namespace relive::transfer
