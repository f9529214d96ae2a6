#include "tracee/process_info.h"

#include <elf.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "common/file_util.h"

namespace relive::tracee {

Result<Auxv> read_auxv(pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(std::string raw, read_file("/proc/" + std::to_string(pid) + "/auxv"));
  Auxv out;
  for (size_t off = 0; off + 16 <= raw.size(); off += 16) {
    uint64_t key, value;
    std::memcpy(&key, raw.data() + off, 8);
    std::memcpy(&value, raw.data() + off + 8, 8);
    if (key == AT_RANDOM) out.at_random = value;
    if (key == AT_SYSINFO_EHDR) out.at_sysinfo_ehdr = value;
  }
  return out;
}

Result<std::vector<Mapping>> read_maps(pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(std::string raw, read_file("/proc/" + std::to_string(pid) + "/maps"));
  std::vector<Mapping> out;
  std::istringstream in(raw);
  std::string line;
  while (std::getline(in, line)) {
    Mapping m;
    char perms[8] = {};
    unsigned long long start, end, offset;
    int name_at = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s %n", &start, &end, perms, &offset,
                    &name_at) < 4)
      continue;
    m.start = start, m.end = end, m.perms = perms, m.offset = offset;
    if (name_at > 0 && static_cast<size_t>(name_at) < line.size()) m.path = line.substr(name_at);
    out.push_back(std::move(m));
  }
  return out;
}

namespace {

// "#!/usr/bin/env python3" -> "/usr/bin/env". The kernel runs that program, which must itself
// be an ELF executable for relive (a script whose interpreter is a script is refused).
Result<std::string> script_interpreter(const std::string& path, const std::string& img) {
  size_t end = img.find('\n');
  std::string line = img.substr(2, end == std::string::npos ? std::string::npos : end - 2);
  size_t start = line.find_first_not_of(" \t");
  if (start == std::string::npos) return Status::InvalidArgument(path + ": empty #! line");
  std::string interp = line.substr(start, line.find_first_of(" \t", start) - start);
  auto head = read_file(interp);
  if (!head.ok()) return head.status().with_context(path + ": its #! interpreter");
  if (head->compare(0, 2, "#!") == 0)
    return Status::Unsupported(path + ": its interpreter " + interp + " is itself a script");
  return interp;
}

}  // namespace

Result<std::string> elf_interpreter(const std::string& path) {
  RELIVE_ASSIGN_OR_RETURN(std::string img, read_file(path));
  if (img.compare(0, 2, "#!") == 0) return script_interpreter(path, img);
  if (img.size() < sizeof(Elf64_Ehdr) || std::memcmp(img.data(), ELFMAG, SELFMAG) != 0)
    return Status::InvalidArgument(path + ": not an ELF executable");
  Elf64_Ehdr eh;
  std::memcpy(&eh, img.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64)
    return Status::Unsupported(path + ": only x86-64 ELF programs are supported");
  for (int i = 0; i < eh.e_phnum; ++i) {
    size_t off = eh.e_phoff + static_cast<size_t>(i) * eh.e_phentsize;
    if (off + sizeof(Elf64_Phdr) > img.size()) break;
    Elf64_Phdr ph;
    std::memcpy(&ph, img.data() + off, sizeof ph);
    if (ph.p_type != PT_INTERP) continue;
    if (ph.p_offset + ph.p_filesz > img.size() || ph.p_filesz == 0)
      return Status::Corruption(path + ": bad PT_INTERP");
    return std::string(img.data() + ph.p_offset, strnlen(img.data() + ph.p_offset, ph.p_filesz));
  }
  return std::string();
}

Result<std::string> resolve_program(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    if (::access(program.c_str(), X_OK) != 0) return Status::NotFound(program + ": not executable");
    return program;
  }
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return Status::NotFound(program + ": command not found in PATH");
}

}  // namespace relive::tracee
