// The kernel ABI of async userfaultfd write-protection and PAGEMAP_SCAN, which Debian 12's
// headers (Linux 6.1) predate. Values and layouts are those of the kernel's uapi
// include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h as of Linux 6.7 (where
// UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN appeared); see Documentation/admin-guide/mm/
// pagemap.rst and userfaultfd.rst. Private to src/dirty.
#pragma once

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace relive::dirty::abi {

// userfaultfd.h: features negotiated with UFFDIO_API.
inline constexpr uint64_t kFeatureWpUnpopulated = 1ull << 13;  // UFFD_FEATURE_WP_UNPOPULATED
inline constexpr uint64_t kFeatureWpAsync = 1ull << 15;        // UFFD_FEATURE_WP_ASYNC

// fs.h: one result of PAGEMAP_SCAN, the pages [start, end) sharing `categories`.
struct PageRegion {
  uint64_t start;
  uint64_t end;
  uint64_t categories;
};

// fs.h: struct pm_scan_arg.
struct PmScanArg {
  uint64_t size;  // sizeof(PmScanArg)
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;  // out: where the walk stopped (== end when it completed)
  uint64_t vec;       // PageRegion array
  uint64_t vec_len;
  uint64_t max_pages;  // 0: no limit
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};
static_assert(sizeof(PmScanArg) == 96);
static_assert(sizeof(PageRegion) == 24);

// fs.h: PAGEMAP_SCAN flags and page categories.
inline constexpr uint64_t kScanWpMatching = 1ull << 0;    // PM_SCAN_WP_MATCHING
inline constexpr uint64_t kScanCheckWpAsync = 1ull << 1;  // PM_SCAN_CHECK_WPASYNC
inline constexpr uint64_t kPageIsWritten = 1ull << 1;     // PAGE_IS_WRITTEN
inline constexpr uint64_t kPageIsPresent = 1ull << 3;     // PAGE_IS_PRESENT
inline constexpr uint64_t kPageIsSwapped = 1ull << 4;     // PAGE_IS_SWAPPED

// fs.h: #define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
inline constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);

}  // namespace relive::dirty::abi
