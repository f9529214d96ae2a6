// SitePatcher: patches the byte-call sites of one traced process (syscall_sites.h) and keeps the
// stub pages it made for them. The recorder patches a site at the exit stop of the site's first
// traced call, when it can, and logs the patch; the replayer applies the logged patch at the
// same point of its replay, so both processes run the same bytes from then on.
//
// A stub page is an anonymous read+exec page mapped (by an injected mmap) in a hole within
// +-1 GiB of the site, so the site's 5-byte jump reaches it; it holds 4096 / kSiteStubStride
// stubs. A site is written through /proc/pid/mem (the library's text page becomes the process's
// own copy, as a debugger's breakpoint makes it).
//
// Per address space: a new one after exec (reset()), a copy after fork (the child inherits the
// patched bytes and the stub pages: copy the patcher with the process).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "relive/result.h"
#include "tracee/task.h"

namespace relive::tracee {

struct SitePatch {
  uint64_t site = 0;       // the `syscall` instruction's address
  uint64_t stub = 0;       // where its stub starts
  uint64_t stub_page = 0;  // the page holding the stub
  bool new_page = false;   // the page was mapped for this patch
  bool operator==(const SitePatch&) const = default;
};

class SitePatcher {
 public:
  // `syscall_insn`: a `syscall` instruction in the process (the trampoline page's) to inject the
  // stub page's mmap from when the thread is at a syscall exit.
  explicit SitePatcher(uint64_t syscall_insn) : syscall_insn_(syscall_insn) {}

  // Record: `task` is stopped at the exit of a traced call made at rip - 2 (kExit) and no other
  // thread of the process runs user code. Patches that site when it is one syscall_sites.h
  // knows, in a file mapping's code, not patched yet; moves `task` to the stub's tail. nullopt
  // when it does not patch. Signals that arrived while the stub page was mapped are appended to
  // `held` (the caller's to deliver later).
  Result<std::optional<SitePatch>> patch_at_exit(const Task& task, std::vector<int>* held);

  // Replay: applies `patch` as the recorder did, `task` stopped at the same call's entry (a
  // skipped one: `at_entry`) or exit.
  Status apply(const Task& task, const SitePatch& patch, bool at_entry, std::vector<int>* held);

  // Where a thread whose next instruction is `ip` must go on instead: the stub's tail when `ip`
  // is right after a patched site's `syscall` (the middle of its jump now), or the tail's copy
  // of the instruction `ip` is inside the site.
  std::optional<uint64_t> redirect(uint64_t ip) const;
  bool empty() const { return sites_.empty(); }

  // The address space was replaced (exec): no stub pages, no patched sites.
  void reset();

 private:
  struct Stub {
    uint64_t at = 0;
    uint64_t tail = 0;
    uint64_t kept = 0;  // the site's bytes after its `syscall` that the stub's tail repeats
  };
  Result<SitePatch> place_stub(const Task& task, uint64_t site);
  Status write_patch(const Task& task, const SitePatch& patch, std::string_view site_bytes,
                     bool at_entry, std::vector<int>* held);
  Status map_stub_page(const Task& task, uint64_t page, bool at_entry, std::vector<int>* held);

  uint64_t syscall_insn_;
  std::map<uint64_t, Stub> sites_;      // patched site -> its stub
  std::map<uint64_t, uint64_t> pages_;  // stub page -> stubs written in it
  std::set<uint64_t> refused_;          // sites looked at and left alone (record)
};

}  // namespace relive::tracee
