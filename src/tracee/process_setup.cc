#include "tracee/process_setup.h"

#include <sys/mman.h>
#include <sys/syscall.h>

#include "tracee/inject.h"

namespace relive::tracee {

Result<ProcessSetup> setup_process(const Task& task, bool at_exit_stop, bool map_scratch) {
  ProcessSetup out;
  RELIVE_ASSIGN_OR_RETURN(out.auxv, read_auxv(task.tid()));
  if (out.auxv.at_sysinfo_ehdr == 0) return Status::Unsupported("process has no vDSO");
  RELIVE_ASSIGN_OR_RETURN(out.vdso, patch_vdso(task, out.auxv.at_sysinfo_ehdr));
  if (!map_scratch) return out;
  Regs saved = task.regs();
  Injector inj(task, at_exit_stop ? Injector::At::kExit : Injector::At::kElsewhere,
               out.vdso.syscall_insn);
  RELIVE_ASSIGN_OR_RETURN(int64_t addr,
                          inj.call(SYS_mmap, {kScratchAddr, kScratchSize, PROT_READ | PROT_WRITE,
                                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                                              static_cast<uint64_t>(-1), 0}));
  if (static_cast<uint64_t>(addr) != kScratchAddr)
    return Status::IoError("cannot map the tracer's scratch page: error " + std::to_string(-addr));
  out.held_signals = inj.held_signals();
  task.set_regs(saved);
  return out;
}

}  // namespace relive::tracee
