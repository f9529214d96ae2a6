#include "tracee/process_setup.h"

#include <sys/mman.h>
#include <sys/syscall.h>

#include "tracee/fast_path_blob.h"
#include "tracee/inject.h"
#include "tracee/syscall_buffer.h"

namespace relive::tracee {
namespace {

bool mapped_at(const std::vector<Mapping>& maps, uint64_t addr) {
  for (const Mapping& m : maps)
    if (m.start <= addr && addr < m.end) return true;
  return false;
}

// Maps a fixed page with an injected mmap.
Status map_page(Injector& inj, uint64_t addr, uint64_t size, int prot, const char* what) {
  RELIVE_ASSIGN_OR_RETURN(int64_t got,
                          inj.call(SYS_mmap, {addr, size, static_cast<uint64_t>(prot),
                                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                                              static_cast<uint64_t>(-1), 0}));
  if (static_cast<uint64_t>(got) != addr)
    return Status::IoError(std::string("cannot map the tracer's ") + what + ": error " +
                           std::to_string(-got));
  return Status::Ok();
}

}  // namespace

Result<ProcessSetup> setup_process(const Task& task, bool at_exit_stop, bool map_scratch) {
  ProcessSetup out;
  RELIVE_ASSIGN_OR_RETURN(out.auxv, read_auxv(task.tid()));
  if (out.auxv.at_sysinfo_ehdr == 0) return Status::Unsupported("process has no vDSO");
  RELIVE_ASSIGN_OR_RETURN(auto maps, read_maps(task.tid()));
  bool need_scratch = map_scratch && !mapped_at(maps, kScratchAddr);
  // A checkpoint taken by an older relive has the scratch page but no trampoline page.
  bool need_trampolines = !mapped_at(maps, kTrampolineAddr);
  // The fast trampolines read the syscall buffer's header: it is there wherever they are.
  bool need_buffer = !mapped_at(maps, kSyscallBufferAddr);
  // The fast path of patched syscall sites (fast_path_blob.h); a checkpoint carries it.
  bool need_blob = !mapped_at(maps, kFastPathBlobAddr);
  if (need_scratch || need_trampolines || need_buffer || need_blob) {
    RELIVE_ASSIGN_OR_RETURN(uint64_t insn, find_vdso_syscall_insn(task, out.auxv.at_sysinfo_ehdr));
    Regs saved = task.regs();
    Injector inj(task, at_exit_stop ? Injector::At::kExit : Injector::At::kElsewhere, insn);
    if (need_scratch)
      RELIVE_RETURN_IF_ERROR(
          map_page(inj, kScratchAddr, kScratchSize, PROT_READ | PROT_WRITE, "scratch page"));
    if (need_trampolines)
      RELIVE_RETURN_IF_ERROR(map_page(inj, kTrampolineAddr, kTrampolineSize, PROT_READ | PROT_EXEC,
                                      "trampoline page"));
    if (need_buffer)
      RELIVE_RETURN_IF_ERROR(map_page(inj, kSyscallBufferAddr, kSyscallBufferSize,
                                      PROT_READ | PROT_WRITE, "syscall buffer"));
    if (need_blob) {
      RELIVE_RETURN_IF_ERROR(map_page(inj, kFastPathBlobAddr, kFastPathBlobSize,
                                      PROT_READ | PROT_EXEC, "fast-path blob"));
      std::string_view blob = fast_path_blob_bytes();
      RELIVE_RETURN_IF_ERROR(task.write_mem(kFastPathBlobAddr, blob.data(), blob.size()));
    }
    out.held_signals = inj.held_signals();
    task.set_regs(saved);
  }
  RELIVE_ASSIGN_OR_RETURN(out.vdso, patch_vdso(task, out.auxv.at_sysinfo_ehdr));
  return out;
}

}  // namespace relive::tracee
