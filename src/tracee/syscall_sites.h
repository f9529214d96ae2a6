// Patched syscall sites: how a byte call (read, write, pread64, pwrite64) made by the program's
// libc reaches the fast path (fast_path_abi.h) without a ptrace stop.
//
// glibc makes these calls as `syscall; cmp $-4096,%rax` (8 bytes) followed by a branch on the
// flags. After a site's first traced call the recorder may replace those 8 bytes with a jump to
// a stub of its own (`jmp rel32` and a 3-byte nop), in a stub page it maps within reach of the
// site. The stub saves the call's registers in a frame, calls the fast path, and then either
// returns its result, makes the call itself through the traced path (from the stub's own
// `syscall`, which the recorder logs as any other), or, for a write that went out only in part,
// makes the traced call for the rest and adds the two. It ends as the site did: rcx and r11 as
// the kernel's `syscall` leaves them (the address after the site's `syscall`, the flags at
// entry), the other registers as they came, `cmp $-4096,%rax`, and a jump back behind the 8
// bytes. It keeps clear of the 128-byte red zone below the stack pointer.
//
// A thread whose instruction pointer lies inside the 8 bytes (stopped right after the `syscall`,
// blocked in it) would resume in the middle of the jump: a site is patched only when no thread
// is there but the caller, which is moved to the stub's tail (`cmp; jmp back`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace relive::tracee {

inline constexpr size_t kSiteBytes = 8;
// `syscall; cmp $-4096,%rax`
inline constexpr std::string_view kSitePattern{"\x0f\x05\x48\x3d\x00\xf0\xff\xff", kSiteBytes};

// Whether `bytes` (kSiteBytes read at a site: the `syscall` instruction's address) is a site
// the recorder knows how to patch.
bool is_patchable_site(std::string_view bytes);

// The 8 bytes that replace the site at `site`, jumping to `stub`; `stub` must be within a
// 32-bit displacement of the site.
std::string site_jump(uint64_t site, uint64_t stub);

struct SiteStub {
  std::string code;
  uint64_t tail = 0;  // the stub's `cmp $-4096,%rax; jmp site+8`, where a caller stopped at
                      // the site's syscall exit resumes
};

// The stub for the site at `site`, to be placed at `at`; it calls the fast path at `fast_path`
// with the syscall buffer at `buffer`.
SiteStub site_stub(uint64_t site, uint64_t at, uint64_t fast_path, uint64_t buffer);

// The most any stub is long: stubs are laid out in a stub page at this stride.
inline constexpr size_t kSiteStubStride = 320;

}  // namespace relive::tracee
