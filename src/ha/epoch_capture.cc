#include "ha/epoch_capture.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/process_tree.h"
#include "common/shell_quote.h"
#include "container/image_summary.h"
#include "drivers/criu/criu.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"
#include "drivers/criu/page_image.h"
#include "ha/fast_capture.h"

namespace relive::ha {
namespace {

constexpr uint64_t kPage = criu::kImagePageSize;

Result<std::vector<std::string>> list_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return PosixError("open " + dir, errno);
  std::vector<std::string> out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_type == DT_REG) out.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

Result<std::vector<std::string>> list_subdirs(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return PosixError("open " + dir, errno);
  std::vector<std::string> out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_type == DT_DIR && e->d_name[0] != '.') out.emplace_back(e->d_name);
  }
  ::closedir(d);
  return out;
}
bool ends_with(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

// Reads whatever is queued in the non-blocking FIFO `fd`.
std::string drain(int fd) {
  std::string out;
  char buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

EpochCapture::EpochCapture(CaptureOptions o) : o_(std::move(o)), dir_(o_.directory) {}
EpochCapture::EpochCapture(EpochCapture&&) noexcept = default;
EpochCapture::~EpochCapture() = default;

Result<EpochCapture> EpochCapture::create(const CaptureOptions& options) {
  EpochCapture c(options);
  RELIVE_RETURN_IF_ERROR(make_dirs(options.work_dir));
  // Epochs a previous run left (relived restarted): nothing ships them now.
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> old, list_subdirs(options.work_dir));
  for (const std::string& d : old) {
    if (starts_with(d, "epoch-")) (void)remove_tree(options.work_dir + "/" + d);
  }
  RELIVE_ASSIGN_OR_RETURN(std::string criu, criu::find_criu());
  RELIVE_ASSIGN_OR_RETURN(c.criu_,
                          criu::criu_with_compat(options.work_dir, criu, options.netns_path));
  RELIVE_RETURN_IF_ERROR(c.write_hook());
  return c;
}

Status EpochCapture::write_hook() {
  std::string req = o_.work_dir + "/hook-req", rep = o_.work_dir + "/hook-rep";
  for (const std::string& f : {req, rep}) {
    ::unlink(f.c_str());
    if (::mkfifo(f.c_str(), 0600) != 0) return PosixError("mkfifo " + f, errno);
  }
  // O_RDWR: relived is always a reader and a writer of both, so neither its opens nor the
  // script's ever block, and a read never sees end-of-file.
  hook_req_ = ScopedFd(::open(req.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  hook_rep_ = ScopedFd(::open(rep.c_str(), O_RDWR | O_CLOEXEC));
  if (!hook_req_.valid() || !hook_rep_.valid()) return PosixError("open hook FIFOs", errno);
  // CRIU runs the script with the tree still frozen after the dump (cr-dump.c, post-dump
  // runs before the tasks are resumed); a non-zero exit makes the dump fail and resumes them.
  std::string script = fmt::format(
      "#!/bin/sh\n"
      "[ \"$CRTOOLS_SCRIPT_ACTION\" = post-dump ] || exit 0\n"
      "echo post-dump > {}\n"
      "read -r answer < {}\n"
      "[ \"$answer\" = ok ]\n",
      shell_quote(req), shell_quote(rep));
  std::string path = o_.work_dir + "/hook.sh";
  RELIVE_RETURN_IF_ERROR(write_file_atomic(path, script));
  if (::chmod(path.c_str(), 0700) != 0) return PosixError("chmod " + path, errno);
  return Status::Ok();
}

Result<CapturedEpoch> EpochCapture::capture(uint64_t number, bool full) {
  last_fast_ = false;
  std::string slow_reason = full ? "" : no_fast_;
  if (!full && fast_ != nullptr && fast_->ready()) {
    CapturedEpoch e;
    e.number = number;
    e.images_dir = images_dir(number);
    e.own_dir = true;
    RELIVE_RETURN_IF_ERROR(remove_tree(e.images_dir));
    RELIVE_RETURN_IF_ERROR(make_dirs(e.images_dir));
    auto scan = [this](const std::vector<pid_t>& tree) { return dir_.scan(tree); };
    Status s = fast_->capture(&e, scan);
    if (s.ok()) s = hash_fast_pages(e);
    if (s.ok()) {
      last_fast_ = true;
      return e;
    }
    slow_reason = s.message();
  } else if (!full && fast_ != nullptr && slow_reason.empty()) {
    slow_reason = "the last fast capture could not be completed";
  }
  Result<CapturedEpoch> e = criu_epoch(number, full, std::move(slow_reason));
  if (!e.ok()) (void)remove_tree(images_dir(number));
  return e;
}

// Each epoch in a directory of its own: the last one may still be shipping (epoch_pipeline.h).
std::string EpochCapture::images_dir(uint64_t number) const {
  return fmt::format("{}/epoch-{}", o_.work_dir, number);
}

Status EpochCapture::hash_fast_pages(const CapturedEpoch& e) {
  fast_hashes_.clear();
  ScopedFd fd;
  std::string open_file, buf;
  for (const PageRun& r : e.runs) {
    if (r.file != open_file) {
      fd = ScopedFd(::open(r.file.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd.valid()) return PosixError("open " + r.file, errno);
      open_file = r.file;
    }
    buf.resize(r.pages * kPage);
    if (::pread(fd.get(), buf.data(), buf.size(), static_cast<off_t>(r.offset)) !=
        static_cast<ssize_t>(buf.size())) {
      return PosixError("read " + r.file, errno);
    }
    auto& h = fast_hashes_[r.pid];
    for (uint64_t i = 0; i < r.pages; ++i)
      h[r.vaddr + i * kPage] = hash64(std::string_view(buf.data() + i * kPage, kPage));
  }
  return Status::Ok();
}

Result<CapturedEpoch> EpochCapture::criu_epoch(uint64_t number, bool full,
                                               std::string slow_reason) {
  CapturedEpoch e;
  e.number = number;
  e.full = full;
  e.slow_reason = std::move(slow_reason);
  // Tracking starts before the dump, so that no write after its cut goes unseen.
  fast_.reset();
  no_fast_.clear();
  if (Result<std::unique_ptr<FastCapture>> f = FastCapture::arm(o_.pid); f.ok()) {
    fast_ = std::move(*f);
  } else {
    no_fast_ = "fast epochs unavailable: " + f.status().to_string();
  }
  e.images_dir = images_dir(number);
  e.own_dir = true;
  RELIVE_RETURN_IF_ERROR(remove_tree(e.images_dir));
  RELIVE_RETURN_IF_ERROR(make_dirs(e.images_dir));
  if (full) dir_.reset();

  Status scan = Status::Aborted("CRIU did not reach its post-dump step");
  drain(hook_req_.get());
  std::thread hook([&] {
    pollfd p{hook_req_.get(), POLLIN, 0};
    for (;;) {
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) return;
      std::string got = drain(hook_req_.get());
      if (got.find("cancel") != std::string::npos) return;
      if (got.find("post-dump") == std::string::npos) continue;
      // The tree is frozen: its shared writable mappings are what they were while it ran.
      auto tree = process_tree(o_.pid);
      Result<std::vector<DirChange>> changes =
          dir_.scan(tree.ok() ? *tree : std::vector<pid_t>{o_.pid});
      scan = changes.status();
      if (changes.ok()) e.dir = std::move(*changes);
      if (fast_ != nullptr) {
        if (Status cut = fast_->note_cut(); !cut.ok()) {
          no_fast_ = "fast epochs unavailable: " + cut.to_string();
          fast_.reset();
        }
      }
      const char* answer = scan.ok() ? "ok\n" : "fail\n";
      (void)!::write(hook_rep_.get(), answer, std::strlen(answer));
      return;
    }
  });
  criu::DumpOptions d;
  d.pid = o_.pid;
  d.images_dir = e.images_dir;
  d.leave_running = true;
  d.tcp_established = true;
  // --network-lock skip: relived holds the workload's input itself while CRIU runs (queued,
  // not dropped as CRIU's per-connection iptables rules would, at ~15 ms of iptables each);
  // its output is held anyway until the epoch commits.
  d.extra_args = {"--action-script", o_.work_dir + "/hook.sh", "--skip-in-flight", "--network-lock",
                  "skip"};
  d.run.criu = criu_;
  d.run.timeout = o_.criu_timeout;
  auto t0 = std::chrono::steady_clock::now();
  Result<criu::CriuStats> stats = criu::dump(d);
  e.dump = std::chrono::steady_clock::now() - t0;
  (void)!::write(hook_req_.get(), "cancel\n", 7);
  hook.join();
  drain(hook_req_.get());
  if (!stats.ok()) {
    return scan.ok() ? stats.status() : scan.with_context("scanning the workload directory");
  }
  if (stats->frozen_ms >= 0) {
    e.frozen = std::chrono::nanoseconds(static_cast<int64_t>(stats->frozen_ms * 1e6));
  }
  // A state the backup could not restore must never become the committed one: then the
  // output it releases would be lost at a failover. This cut is refused and the next epoch
  // tries again (the base moves only on commit, so nothing is skipped); programs that read
  // /proc/self/... (redis's RSS probe) hold such files for microseconds.
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> files,
                          container::regular_files_in_images_dir(e.images_dir));
  for (const std::string& f : files) {
    if (container::is_pid_bound_proc_path(f)) {
      return Status::Aborted(fmt::format(
          "the workload held {} open at the cut; a restored tree has other PIDs, so this "
          "epoch could not be restored (retrying at the next epoch)",
          f));
    }
  }
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> names, list_dir(e.images_dir));
  for (const std::string& n : names) {
    if (!starts_with(n, "pages-") && !ends_with(n, ".log")) e.image_files.push_back(n);
  }
  RELIVE_RETURN_IF_ERROR(diff_pages(&e, full));
  if (fast_ != nullptr) {
    if (Status base = fast_->note_images(e.images_dir); !base.ok()) {
      no_fast_ = "fast epochs unavailable: " + base.message();
      fast_.reset();
    }
  }
  return e;
}

Status EpochCapture::diff_pages(CapturedEpoch* e, bool full) {
  pending_.clear();
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> names, list_dir(e->images_dir));
  constexpr uint64_t kChunk = 256;
  std::string buf(kChunk * kPage, '\0');
  for (const std::string& n : names) {
    if (!starts_with(n, "pagemap-") || !ends_with(n, ".img")) continue;
    pid_t pid = std::atoi(n.c_str() + 8);
    RELIVE_ASSIGN_OR_RETURN(std::string raw, read_file(e->images_dir + "/" + n));
    RELIVE_ASSIGN_OR_RETURN(criu::PagemapImage map, criu::decode_pagemap_image(raw));
    std::string pages_file = fmt::format("{}/pages-{}.img", e->images_dir, map.pages_id);
    ScopedFd fd(::open(pages_file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return PosixError("open " + pages_file, errno);
    auto& base = base_[pid];
    auto& now = pending_[pid];
    uint64_t offset = 0;
    for (const criu::PagemapEntry& pe : map.entries) {
      if (!pe.present()) continue;
      for (uint64_t i = 0; i < pe.nr_pages; i += kChunk) {
        uint64_t n_pages = std::min(kChunk, pe.nr_pages - i);
        if (::pread(fd.get(), buf.data(), n_pages * kPage, static_cast<off_t>(offset)) !=
            static_cast<ssize_t>(n_pages * kPage)) {
          return Status::Corruption(pages_file + " is shorter than its pagemap says");
        }
        for (uint64_t j = 0; j < n_pages; ++j, offset += kPage) {
          uint64_t vaddr = pe.vaddr + (i + j) * kPage;
          uint64_t h = hash64(std::string_view(buf.data() + j * kPage, kPage));
          now[vaddr] = h;
          ++e->total_pages;
          auto it = base.find(vaddr);
          if (!full && it != base.end() && it->second == h) continue;
          ++e->changed_pages;
          PageRun* last = e->runs.empty() ? nullptr : &e->runs.back();
          if (last != nullptr && last->pid == pid && last->vaddr + last->pages * kPage == vaddr &&
              last->offset + last->pages * kPage == offset && last->file == pages_file) {
            ++last->pages;
          } else {
            e->runs.push_back({pid, vaddr, 1, pages_file, offset});
          }
        }
      }
    }
  }
  return Status::Ok();
}

void EpochCapture::committed() {
  if (last_fast_) {
    for (auto& [pid, pages] : fast_hashes_) {
      auto& b = base_[pid];
      for (const auto& [vaddr, h] : pages) b[vaddr] = h;
    }
    fast_hashes_.clear();
    fast_->fast_committed();
  } else {
    base_ = std::move(pending_);
    if (fast_ != nullptr) fast_->base_committed();
  }
  pending_.clear();
  dir_.commit();
}

void EpochCapture::reset() {
  base_.clear();
  pending_.clear();
  fast_hashes_.clear();
  if (fast_ != nullptr) fast_->forget_base();
  dir_.reset();
}

}  // namespace relive::ha
