#include "ha/ram_tracker.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <cstring>
#include <thread>

#include "common/scoped_fd.h"

namespace relive::ha {
namespace bip = boost::interprocess;

namespace {
constexpr uint64_t kPage = 4096;

void append(std::vector<RamRun>* runs, uint64_t offset) {
  if (!runs->empty() && runs->back().offset + runs->back().pages * kPage == offset) {
    ++runs->back().pages;
  } else {
    runs->push_back({offset, 1});
  }
}
}  // namespace

Result<RamTracker> RamTracker::create(const std::string& ram_file, const std::string& shadow_file,
                                      uint64_t bytes) {
  if (bytes == 0 || bytes % kPage != 0)
    return Status::InvalidArgument("RAM size is not a whole number of pages");
  ScopedFd shadow(::open(shadow_file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!shadow.valid()) return PosixError("create " + shadow_file, errno);
  if (::ftruncate(shadow.get(), static_cast<off_t>(bytes)) != 0)
    return PosixError("size " + shadow_file, errno);
  RamTracker t;
  t.shadow_file_ = shadow_file;
  t.bytes_ = bytes;
  try {
    bip::file_mapping ram(ram_file.c_str(), bip::read_only);
    t.ram_ = bip::mapped_region(ram, bip::read_only, 0, bytes);
    bip::file_mapping sh(shadow_file.c_str(), bip::read_write);
    t.shadow_ = bip::mapped_region(sh, bip::read_write, 0, bytes);
  } catch (const bip::interprocess_exception& e) {
    return Status::IoError("mapping the guest RAM " + ram_file + ": " + e.what());
  }
  return t;
}

std::vector<RamRun> RamTracker::scan(uint64_t begin, uint64_t end, bool full) {
  const char* ram = static_cast<const char*>(ram_.get_address());
  char* shadow = static_cast<char*>(shadow_.get_address());
  std::vector<RamRun> runs;
  for (uint64_t off = begin; off < end; off += kPage) {
    if (full || std::memcmp(ram + off, shadow + off, kPage) != 0) {
      std::memcpy(shadow + off, ram + off, kPage);
      append(&runs, off);
    }
  }
  return runs;
}

std::vector<RamRun> RamTracker::capture(bool full) {
  // The guest's vCPUs are stopped, so both cores are ours: half of RAM each.
  uint64_t mid = (bytes_ / 2) / kPage * kPage;
  std::vector<RamRun> high;
  std::thread other([&] { high = scan(mid, bytes_, full); });
  std::vector<RamRun> runs = scan(0, mid, full);
  other.join();
  for (const RamRun& r : high) {
    if (!runs.empty() && runs.back().offset + runs.back().pages * kPage == r.offset) {
      runs.back().pages += r.pages;
    } else {
      runs.push_back(r);
    }
  }
  return runs;
}

}  // namespace relive::ha
