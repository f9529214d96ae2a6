#include "record/syscall_capture.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "tracee/out_buffers.h"

namespace relive::record {

using tracee::Policy;

SyscallCapture::SyscallCapture(trace::FileStore* files) : files_(files) {
  have_stdout_ = ::fstat(1, &stdout_) == 0;
  have_stderr_ = ::fstat(2, &stderr_) == 0;
}

SyscallCapture::SyscallCapture(trace::FileStore* files, pid_t attached) : files_(files) {
  std::string fd = "/proc/" + std::to_string(attached) + "/fd/";
  have_stdout_ = ::stat((fd + "1").c_str(), &stdout_) == 0;
  have_stderr_ = ::stat((fd + "2").c_str(), &stderr_) == 0;
}

Result<trace::SyscallEvent> SyscallCapture::capture(const tracee::Task& task, int nr,
                                                    const tracee::SyscallArgs& args, int64_t result,
                                                    Policy policy) {
  trace::SyscallEvent ev;
  ev.tid = task.tid();
  ev.nr = nr;
  ev.args = args;
  ev.result = result;
  ev.mode =
      policy == Policy::kEmulate ? trace::SyscallMode::kEmulated : trace::SyscallMode::kNative;
  // A new thread or process (a reused tid is a new table) or an exec (close-on-exec descriptors
  // are gone) invalidates what is known, as does any change to a table.
  if (tracee::changes_fd_table(nr) || policy == Policy::kClone || policy == Policy::kFork ||
      policy == Policy::kExec)
    stream_cache_.clear();
  if (policy == Policy::kMmapFile) {
    RELIVE_RETURN_IF_ERROR(capture_mapped_file(task, &ev));
    return ev;
  }
  if (policy != Policy::kEmulate) return ev;
  RELIVE_RETURN_IF_ERROR(capture_writes(task, &ev));
  if (tracee::is_output_write(nr) && result > 0) RELIVE_RETURN_IF_ERROR(capture_output(task, &ev));
  return ev;
}

Status SyscallCapture::capture_writes(const tracee::Task& task, trace::SyscallEvent* ev) {
  RELIVE_ASSIGN_OR_RETURN(auto ranges, tracee::out_ranges(task, ev->nr, ev->args, ev->result));
  for (const tracee::MemRange& r : ranges) {
    trace::MemWrite w;
    w.addr = r.addr;
    RELIVE_ASSIGN_OR_RETURN(w.data, task.read_mem(r.addr, r.len));
    ev->writes.push_back(std::move(w));
  }
  return Status::Ok();
}

Status SyscallCapture::capture_output(const tracee::Task& task, trace::SyscallEvent* ev) {
  RELIVE_ASSIGN_OR_RETURN(std::string data,
                          tracee::written_bytes(task, ev->nr, ev->args, ev->result));
  ev->data_hash = hash64(data);
  ev->stream = stream_of(task.tid(), static_cast<int>(ev->args[0]));
  return Status::Ok();
}

// A file mapping: the replayer cannot reopen the file (it may have changed or be gone), so the
// file as it is now is saved in the trace and mapped from there at replay.
Status SyscallCapture::capture_mapped_file(const tracee::Task& task, trace::SyscallEvent* ev) {
  ev->mode = trace::SyscallMode::kMapFile;
  if (ev->result < 0 && ev->result > -4096) {
    ev->mode = trace::SyscallMode::kEmulated;  // a failed mmap is replayed as the same failure
    return Status::Ok();
  }
  std::string fd_path = "/proc/" + std::to_string(task.tid()) + "/fd/" +
                        std::to_string(static_cast<int>(ev->args[4]));
  bool shared_writable = (ev->args[3] & MAP_SHARED) && (ev->args[2] & PROT_WRITE);
  if (!shared_writable) {
    RELIVE_ASSIGN_OR_RETURN(ev->file, files_->add(fd_path));
    return Status::Ok();
  }
  struct stat st {};
  if (::stat(fd_path.c_str(), &st) != 0) return PosixError("stat " + fd_path, errno);
  if (pid_t outsider = holder_outside_recording(st.st_dev, st.st_ino); outsider != 0) {
    std::error_code ec;
    std::string name = std::filesystem::read_symlink(fd_path, ec).string();
    return Status::Unsupported(fmt::format(
        "a shared writable mapping of {}, which process {} outside the recording also holds "
        "(its writes could not be replayed)",
        name.empty() ? fd_path : name, outsider));
  }
  RELIVE_ASSIGN_OR_RETURN(ev->file, files_->add(fd_path, trace::FileStore::Memo::kReadAgain));
  ev->shared_key = fmt::format("{}:{}", st.st_dev, st.st_ino);
  return Status::Ok();
}

// A process that is not traced by this recorder and has the file (dev, ino) open or mapped;
// 0 if none. Processes that vanish while looked at are skipped.
pid_t SyscallCapture::holder_outside_recording(dev_t dev, ino_t ino) {
  namespace fs = std::filesystem;
  std::string tracer = std::to_string(::getpid());
  std::error_code ec;
  for (const auto& proc : fs::directory_iterator("/proc", ec)) {
    std::string pid = proc.path().filename().string();
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit) || pid == tracer) continue;
    std::ifstream status(proc.path() / "status");
    std::string line;
    bool ours = false;
    while (std::getline(status, line))
      if (line.rfind("TracerPid:", 0) == 0)
        ours = std::strtol(line.c_str() + 10, nullptr, 10) == ::getpid();
    if (ours) continue;
    std::error_code fd_ec;
    for (const auto& fd : fs::directory_iterator(proc.path() / "fd", fd_ec)) {
      struct stat st {};
      if (::stat(fd.path().c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino)
        return static_cast<pid_t>(std::strtol(pid.c_str(), nullptr, 10));
    }
    std::error_code map_ec;
    for (const auto& m : fs::directory_iterator(proc.path() / "map_files", map_ec)) {
      struct stat st {};
      if (::stat(m.path().c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino)
        return static_cast<pid_t>(std::strtol(pid.c_str(), nullptr, 10));
    }
  }
  return 0;
}

std::vector<trace::SyscallEvent> SyscallCapture::from_buffer(
    pid_t tid, std::vector<tracee::BufferedCall>&& calls) {
  using FileId = std::pair<uint64_t, uint64_t>;
  // A descriptor the batch has not opened or closed yet is what it was when the batch began: what
  // its first close in the batch says it was, else what it is now (the cache, /proc).
  std::unordered_map<int, FileId> first_close;
  for (const tracee::BufferedCall& c : calls)
    if (c.nr == SYS_close && c.result == 0)
      first_close.emplace(static_cast<int>(c.args[0]), FileId{c.file_dev, c.file_ino});
  std::unordered_map<int, std::optional<FileId>> changed;  // nullopt: closed
  std::vector<trace::SyscallEvent> out;
  out.reserve(calls.size());
  for (tracee::BufferedCall& c : calls) {
    trace::SyscallEvent ev;
    ev.tid = tid;
    ev.nr = c.nr;
    ev.args = c.args;
    ev.result = c.result;
    ev.mode = trace::SyscallMode::kEmulated;
    if (c.write_addr != 0) ev.writes.push_back({c.write_addr, std::move(c.write_data)});
    for (auto& [addr, bytes] : c.scattered) ev.writes.push_back({addr, std::move(bytes)});
    int fd = static_cast<int>(c.args[0]);
    if (tracee::is_output_write(c.nr) && c.result > 0) {
      ev.data_hash = hash64(c.written);
      auto now = changed.find(fd);
      auto closed = first_close.find(fd);
      if (now != changed.end())
        ev.stream = now->second ? stream_of_file(now->second->first, now->second->second)
                                : trace::Stream::kNone;
      else if (closed != first_close.end())
        ev.stream = stream_of_file(closed->second.first, closed->second.second);
      else
        ev.stream = stream_of(tid, fd);
    }
    if (c.nr == SYS_openat && c.result >= 0)
      changed[static_cast<int>(c.result)] = FileId{c.file_dev, c.file_ino};
    if (c.nr == SYS_close && c.result == 0) changed[fd] = std::nullopt;
    ev.continued = c.continued;
    out.push_back(std::move(ev));
  }
  if (!changed.empty()) stream_cache_.clear();
  return out;
}

trace::Stream SyscallCapture::stream_of_file(uint64_t dev, uint64_t ino) const {
  if (have_stdout_ && dev == stdout_.st_dev && ino == stdout_.st_ino) return trace::Stream::kStdout;
  if (have_stderr_ && dev == stderr_.st_dev && ino == stderr_.st_ino) return trace::Stream::kStderr;
  return trace::Stream::kNone;
}

trace::Stream SyscallCapture::stream_of(pid_t tid, int fd) {
  auto it = stream_cache_.find(cache_key(tid, fd));
  if (it != stream_cache_.end()) return it->second;
  struct stat st {};
  trace::Stream s = trace::Stream::kNone;
  std::string path = "/proc/" + std::to_string(tid) + "/fd/" + std::to_string(fd);
  if (::stat(path.c_str(), &st) == 0) s = stream_of_file(st.st_dev, st.st_ino);
  stream_cache_[cache_key(tid, fd)] = s;
  return s;
}

}  // namespace relive::record
