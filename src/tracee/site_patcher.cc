#include "tracee/site_patcher.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <algorithm>

#include "tracee/fast_path_blob.h"
#include "tracee/inject.h"
#include "tracee/process_info.h"
#include "tracee/syscall_buffer.h"
#include "tracee/syscall_sites.h"

namespace relive::tracee {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kReach = 1ull << 30;  // stubs within 1 GiB: well inside a rel32 jump
constexpr uint64_t kStubsPerPage = kPage / kSiteStubStride;

uint64_t distance(uint64_t a, uint64_t b) { return a > b ? a - b : b - a; }

// A free page within kReach of `site`, nearest first: the holes just below and above the
// mapping that holds it, and then between the mappings around it.
std::optional<uint64_t> free_page_near(const std::vector<Mapping>& maps, uint64_t site) {
  std::optional<uint64_t> best;
  auto consider = [&](uint64_t page) {
    if (distance(page, site) + kPage >= kReach) return;
    if (!best || distance(page, site) < distance(*best, site)) best = page;
  };
  for (size_t i = 0; i + 1 < maps.size(); ++i) {
    uint64_t hole_start = maps[i].end, hole_end = maps[i + 1].start;
    if (hole_end - hole_start < 3 * kPage) continue;  // keep a guard page either side
    consider(hole_end - 2 * kPage);                   // the top of the hole (below a mapping)
    consider(hole_start + kPage);                     // the bottom (above one)
  }
  return best;
}

const Mapping* mapping_of(const std::vector<Mapping>& maps, uint64_t addr) {
  for (const Mapping& m : maps)
    if (m.start <= addr && addr < m.end) return &m;
  return nullptr;
}

}  // namespace

Result<std::optional<SitePatch>> SitePatcher::patch_at_exit(const Task& task,
                                                            std::vector<int>* held) {
  Regs r = task.regs();
  uint64_t site = r.rip - 2;
  if (sites_.count(site) != 0 || refused_.count(site) != 0) return std::optional<SitePatch>();
  for (const auto& [page, used] : pages_)  // a stub's own traced call
    if (site >= page && site < page + kPage) return std::optional<SitePatch>();
  Result<std::string> bytes = task.read_mem(site, kSiteBytes);
  if (!bytes.ok() || site_length(*bytes) == 0) {  // unreadable: the end of a mapping
    refused_.insert(site);
    return std::optional<SitePatch>();
  }
  RELIVE_ASSIGN_OR_RETURN(auto maps, read_maps(task.tid()));
  const Mapping* m = mapping_of(maps, site);
  if (m == nullptr || m->path.empty() || m->path[0] != '/' ||
      m->perms.find('x') == std::string::npos) {
    refused_.insert(site);
    return std::optional<SitePatch>();  // only a library's or program's own code
  }
  RELIVE_ASSIGN_OR_RETURN(SitePatch patch, place_stub(task, site));
  RELIVE_RETURN_IF_ERROR(write_patch(task, patch, *bytes, /*at_entry=*/false, held));
  return std::optional<SitePatch>(patch);
}

Result<SitePatch> SitePatcher::place_stub(const Task& task, uint64_t site) {
  SitePatch p;
  p.site = site;
  for (auto& [page, used] : pages_) {
    if (used < kStubsPerPage && distance(page, site) + kPage < kReach) {
      p.stub_page = page;
      p.stub = page + used * kSiteStubStride;
      return p;
    }
  }
  RELIVE_ASSIGN_OR_RETURN(auto maps, read_maps(task.tid()));
  std::optional<uint64_t> page = free_page_near(maps, site);
  if (!page)
    return Status::Unsupported(fmt::format("no free page within reach of the site at {:#x}", site));
  p.stub_page = *page;
  p.stub = *page;
  p.new_page = true;
  return p;
}

Status SitePatcher::map_stub_page(const Task& task, uint64_t page, bool at_entry,
                                  std::vector<int>* held) {
  Regs saved = task.regs();
  Injector inj(task, at_entry ? Injector::At::kEntry : Injector::At::kExit, syscall_insn_);
  RELIVE_ASSIGN_OR_RETURN(int64_t got,
                          inj.call(SYS_mmap, {page, kPage, PROT_READ | PROT_EXEC,
                                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                                              static_cast<uint64_t>(-1), 0}));
  // Back where it was, now at the exit stop of the injected call: the registers as the skipped
  // or completed call left them.
  task.set_regs(saved);
  if (held != nullptr)
    held->insert(held->end(), inj.held_signals().begin(), inj.held_signals().end());
  if (static_cast<uint64_t>(got) != page)
    return Status::IoError(fmt::format("cannot map a stub page at {:#x}: error {}", page, -got));
  return Status::Ok();
}

Status SitePatcher::write_patch(const Task& task, const SitePatch& p, std::string_view site_bytes,
                                bool at_entry, std::vector<int>* held) {
  if (p.new_page) {
    RELIVE_RETURN_IF_ERROR(map_stub_page(task, p.stub_page, at_entry, held));
    pages_[p.stub_page] = 0;
  }
  SiteStub stub = site_stub(p.site, site_bytes, p.stub, kFastPathBlobAddr, kSyscallBufferAddr);
  RELIVE_RETURN_IF_ERROR(task.write_mem(p.stub, stub.code.data(), stub.code.size()));
  std::string jump = site_jump(p.site, site_bytes, p.stub);
  RELIVE_RETURN_IF_ERROR(task.write_mem(p.site, jump.data(), jump.size()));
  ++pages_[p.stub_page];
  sites_[p.site] = Stub{p.stub, stub.tail, site_form(site_bytes)->kept};
  Regs r = task.regs();
  if (std::optional<uint64_t> tail = redirect(r.rip)) {  // back from the call: on to the tail
    r.rip = *tail;
    task.set_regs(r);
  }
  return Status::Ok();
}

Status SitePatcher::apply(const Task& task, const SitePatch& patch, bool at_entry,
                          std::vector<int>* held) {
  auto used = pages_.find(patch.stub_page);
  uint64_t expected = patch.stub_page + (used == pages_.end() ? 0 : used->second) * kSiteStubStride;
  if (patch.new_page != (used == pages_.end()) || patch.stub != expected ||
      sites_.count(patch.site) != 0)
    return Status::Corruption(fmt::format(
        "a site patch at {:#x} (stub {:#x} in page {:#x}) that the recorder could not have made",
        patch.site, patch.stub, patch.stub_page));
  Result<std::string> bytes = task.read_mem(patch.site, kSiteBytes);
  if (!bytes.ok() || site_length(*bytes) == 0)
    return Status::Corruption(
        fmt::format("the log patches the site at {:#x}, which holds other code", patch.site));
  return write_patch(task, patch, *bytes, at_entry, held);
}

std::optional<uint64_t> SitePatcher::redirect(uint64_t ip) const {
  // Right after the `syscall` or, in a site of two instructions after it, after the first (the
  // stub's tail holds the same instructions, in the same order).
  auto it = sites_.upper_bound(ip - 2);
  if (it == sites_.begin()) return std::nullopt;
  --it;
  uint64_t into = ip - (it->first + 2);
  if (into >= it->second.kept) return std::nullopt;
  return it->second.tail + into;
}

void SitePatcher::reset() {
  refused_.clear();
  sites_.clear();
  pages_.clear();
}

}  // namespace relive::tracee
