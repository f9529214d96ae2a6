// Facts about a traced process read from /proc and its ELF files: auxiliary vector, mappings,
// the program's ELF interpreter.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "relive/result.h"

namespace relive::tracee {

struct Auxv {
  uint64_t at_random = 0;        // AT_RANDOM: 16 random bytes the kernel put on the stack
  uint64_t at_sysinfo_ehdr = 0;  // AT_SYSINFO_EHDR: the vDSO
};
Result<Auxv> read_auxv(pid_t pid);

struct Mapping {
  uint64_t start = 0, end = 0;
  std::string perms;
  uint64_t offset = 0;
  std::string path;  // "[vdso]", "[stack]", a file, or empty
};
Result<std::vector<Mapping>> read_maps(pid_t pid);

// The PT_INTERP of an ELF executable; empty for a static program. For a script, the program
// named on its #! line (the kernel's interpreter for it).
Result<std::string> elf_interpreter(const std::string& path);

// Resolves `program` like execvp: a path with a slash is taken as is, else searched in PATH.
Result<std::string> resolve_program(const std::string& program);

}  // namespace relive::tracee
