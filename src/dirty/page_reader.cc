#include "dirty/page_reader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "common/scoped_fd.h"
#include "tracee/process_info.h"

namespace relive::dirty {
namespace {

constexpr uint64_t kBatchBytes = 8ull << 20;
constexpr size_t kMaxIovecs = 1024;  // IOV_MAX

// Reads the pages of one process: up to kMaxIovecs ranges and kBatchBytes per system call.
class BatchReader {
 public:
  BatchReader(pid_t pid, const PageSink& sink) : pid_(pid), sink_(sink), buf_(kBatchBytes, '\0') {}

  Status read_all(std::vector<PageRange> todo, ReadReport* report) {
    size_t next = 0;  // todo[next..] is left; todo[next] may have been consumed partly
    while (next < todo.size()) {
      std::vector<iovec> local, remote;
      uint64_t total = 0;
      for (size_t i = next; i < todo.size() && remote.size() < kMaxIovecs && total < kBatchBytes;
           ++i) {
        uint64_t len = std::min(todo[i].pages * kPageSize, kBatchBytes - total);
        local.push_back({buf_.data() + total, len});
        remote.push_back({reinterpret_cast<void*>(todo[i].start), len});
        total += len;
      }
      ssize_t n =
          ::process_vm_readv(pid_, local.data(), local.size(), remote.data(), remote.size(), 0);
      if (n < 0 && errno == ESRCH) return Status::NotFound(fmt::format("process {} is gone", pid_));
      uint64_t got = n > 0 ? static_cast<uint64_t>(n) / kPageSize * kPageSize : 0;
      RELIVE_RETURN_IF_ERROR(deliver_batch(got, todo, &next, report));
      if (got < total) {  // the page at todo[next] failed
        RELIVE_ASSIGN_OR_RETURN(uint64_t skipped, read_one_slowly(todo[next], report));
        consume(skipped, todo, &next);
      }
    }
    return Status::Ok();
  }

 private:
  // Hands the first `got` bytes of the buffer, read from todo[*next..], to the sink.
  Status deliver_batch(uint64_t got, std::vector<PageRange>& todo, size_t* next,
                       ReadReport* report) {
    for (uint64_t at = 0; at < got;) {
      uint64_t len = std::min(got - at, todo[*next].pages * kPageSize);
      report->pages_read += len / kPageSize;
      RELIVE_RETURN_IF_ERROR(sink_(todo[*next].start, std::string_view(buf_.data() + at, len)));
      consume(len, todo, next);
      at += len;
    }
    return Status::Ok();
  }

  static void consume(uint64_t len, std::vector<PageRange>& todo, size_t* next) {
    todo[*next].start += len;
    todo[*next].pages -= len / kPageSize;
    if (todo[*next].pages == 0) ++*next;
  }

  // The first page of `r`, which process_vm_readv refused: unreadable (PROT_NONE: read through
  // /proc/PID/mem, which forces access like a debugger) or no longer mapped (reported missing,
  // with the rest of `r` up to the next mapping). Returns the bytes of `r` dealt with.
  Result<uint64_t> read_one_slowly(const PageRange& r, ReadReport* report) {
    if (!mem_.valid())
      mem_.reset(::open(fmt::format("/proc/{}/mem", pid_).c_str(), O_RDONLY | O_CLOEXEC));
    if (mem_.valid() && ::pread(mem_.get(), buf_.data(), kPageSize, static_cast<off_t>(r.start)) ==
                            static_cast<ssize_t>(kPageSize)) {
      ++report->pages_read;
      RELIVE_RETURN_IF_ERROR(sink_(r.start, std::string_view(buf_.data(), kPageSize)));
      return kPageSize;
    }
    uint64_t end = std::min(r.end(), next_mapping_at_or_after(r.start));
    if (end <= r.start) end = r.start + kPageSize;  // mapped, yet unreadable (past a file's end)
    report->missing.push_back({r.start, (end - r.start) / kPageSize});
    return end - r.start;
  }

  // The start of the first mapping that ends after `vaddr` (`vaddr` itself if one holds it).
  uint64_t next_mapping_at_or_after(uint64_t vaddr) const {
    auto maps = tracee::read_maps(pid_);
    if (!maps.ok()) return vaddr + kPageSize;
    for (const tracee::Mapping& m : *maps)
      if (m.end > vaddr) return std::max(m.start, vaddr);
    return UINT64_MAX;
  }

  pid_t pid_;
  const PageSink& sink_;
  std::string buf_;
  ScopedFd mem_;
};

}  // namespace

Result<ReadReport> read_pages(pid_t pid, const std::vector<PageRange>& ranges,
                              const PageSink& sink) {
  BatchReader reader(pid, sink);
  ReadReport report;
  std::vector<PageRange> todo;
  for (const PageRange& r : ranges)
    if (r.pages > 0) todo.push_back(r);
  RELIVE_RETURN_IF_ERROR(reader.read_all(std::move(todo), &report));
  report.missing = normalize(std::move(report.missing));
  return report;
}

}  // namespace relive::dirty
