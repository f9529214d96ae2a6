// Patched syscall sites: how a call made by the program's libc reaches the fast path
// (fast_path_abi.h) without a ptrace stop.
//
// glibc makes its calls as `syscall` followed by a compare of the result with -4096 (or -4095)
// and a branch on the flags: `cmp $-4096,%rax` (8 bytes with the syscall: most wrappers),
// `cmp $-4095,%rax` (the assembly templates: getpid and the id calls, and syscall(2)),
// `cmp $-4096,%eax` (7: wrappers returning int, fstatat), `mov %eax,%edx; cmp $-4096,%eax` (9:
// ioctl); and the calls that cannot fail as `syscall; ret` before the next function's alignment
// padding (getpid, getuid). After a site's first traced call of a fast-path form the recorder may
// replace those bytes with a jump to a stub of its own (`jmp rel32` and a nop), in a stub page it
// maps within reach of the site. The stub saves the call's registers in a frame, calls the fast
// path, and then either returns its result, makes the call itself through the traced path (from the
// stub's own `syscall`, which the recorder logs as any other), or, for a write that went out only
// in part, makes the traced call for the rest and adds the two. It ends as the site did: rcx and
// r11 as the kernel's `syscall` leaves them (the address after the site's `syscall`, the flags at
// entry), the other registers as they came, the site's own instructions after its `syscall`, and
// a jump back behind the site (or the site's `ret`). It keeps clear of the 128-byte red zone below
// the stack pointer.
//
// The calls that depend on the stack pointer (rt_sigreturn reads the signal frame there, clone,
// clone3, fork and vfork start a thread or process on it) are made by the stub at once, with the
// program's registers and stack untouched: syscall(2)'s one site makes every call a program
// passes it.
//
// A thread whose instruction pointer lies inside the site (stopped right after the `syscall`,
// blocked in it) would resume in the middle of the jump: a site is patched only when no thread
// is there but the caller, which is moved to the stub's tail (the site's own instructions after
// the `syscall`, and the jump back).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace relive::tracee {

// The sites the recorder knows how to patch: `syscall` and what follows it.
inline constexpr std::string_view kSitePattern{"\x0f\x05\x48\x3d\x00\xf0\xff\xff", 8};
inline constexpr std::string_view kSitePatternAsm{"\x0f\x05\x48\x3d\x01\xf0\xff\xff", 8};
inline constexpr std::string_view kSitePatternInt{"\x0f\x05\x3d\x00\xf0\xff\xff", 7};
inline constexpr std::string_view kSitePatternMovInt{"\x0f\x05\x89\xc2\x3d\x00\xf0\xff\xff", 9};
// `syscall; ret` and the function's alignment padding after it, a multi-byte nop (`nopl`, or
// `nopw` with a prefix): the calls that cannot fail (getpid, getuid and the other ids). The
// site's jump takes the padding's first bytes, which nothing executes.
inline constexpr std::string_view kSitePatternRet{"\x0f\x05\xc3\x0f\x1f", 5};
inline constexpr std::string_view kSitePatternRetNopw{"\x0f\x05\xc3\x66\x0f\x1f", 6};
inline constexpr std::string_view kSitePatternRetCsNopw{"\x0f\x05\xc3\x66\x2e\x0f\x1f", 7};
// The longest of them: what the recorder reads at a site to tell.
inline constexpr size_t kSiteBytes = 9;

struct SiteForm {
  std::string_view pattern;
  size_t length = 0;     // the bytes the site's jump replaces
  size_t kept = 0;       // the site's instructions after its `syscall` (bytes) the stub repeats
  bool returns = false;  // they end in `ret`: no jump back
};

// The form of the site at the start of `bytes` (kSiteBytes read at the `syscall` instruction, or
// fewer at the end of a mapping): nullptr when it is none the recorder knows how to patch.
const SiteForm* site_form(std::string_view bytes);
// Its length; 0 when there is no such site.
size_t site_length(std::string_view bytes);

// The site_length(site_bytes) bytes that replace the site at `site`, jumping to `stub`; `stub`
// must be within a 32-bit displacement of the site.
std::string site_jump(uint64_t site, std::string_view site_bytes, uint64_t stub);

struct SiteStub {
  std::string code;
  uint64_t tail = 0;  // the site's own instructions after its `syscall` and the jump back, where
                      // a caller stopped at the site's syscall exit resumes
};

// The stub for the site at `site` holding `site_bytes` (a known site), to be placed at `at`; it
// calls the fast path at `fast_path` with the syscall buffer at `buffer`.
SiteStub site_stub(uint64_t site, std::string_view site_bytes, uint64_t at, uint64_t fast_path,
                   uint64_t buffer);

// The most any stub is long: stubs are laid out in a stub page at this stride.
inline constexpr size_t kSiteStubStride = 384;

}  // namespace relive::tracee
