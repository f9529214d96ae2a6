#include "tracee/vdso.h"

#include <elf.h>
#include <sys/syscall.h>

#include <cstring>
#include <string_view>

#include "tracee/process_info.h"

namespace relive::tracee {
namespace {

struct Target {
  const char* name;
  int nr;  // -1: make the call fail with ENOSYS (callers fall back to the syscall)
};

constexpr Target kTargets[] = {
    {"clock_gettime", SYS_clock_gettime},
    {"gettimeofday", SYS_gettimeofday},
    {"time", SYS_time},
    {"getcpu", SYS_getcpu},
    {"clock_getres", SYS_clock_getres},
    {"getrandom", -1},
};

// mov $nr,%eax; syscall; ret  (8 bytes)
std::string syscall_stub(int nr) {
  unsigned char code[8] = {0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0xc3};
  std::memcpy(code + 1, &nr, 4);
  return std::string(reinterpret_cast<char*>(code), sizeof code);
}

// mov $-ENOSYS,%rax; ret  (8 bytes)
std::string enosys_stub() {
  const unsigned char code[8] = {0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3};
  return std::string(reinterpret_cast<const char*>(code), sizeof code);
}

const Target* target_for(std::string_view sym) {
  if (sym.substr(0, 7) == "__vdso_") sym.remove_prefix(7);
  for (const Target& t : kTargets)
    if (sym == t.name) return &t;
  return nullptr;
}

template <typename T>
bool load(const std::string& img, uint64_t off, T* out) {
  if (off > img.size() || img.size() - off < sizeof(T)) return false;
  std::memcpy(out, img.data() + off, sizeof(T));
  return true;
}

Result<uint64_t> vdso_size(pid_t pid, uint64_t base) {
  RELIVE_ASSIGN_OR_RETURN(auto maps, read_maps(pid));
  for (const Mapping& m : maps)
    if (m.start == base) return m.end - m.start;
  return Status::NotFound("no vDSO mapping at the AT_SYSINFO_EHDR address");
}

}  // namespace

Result<VdsoPatch> patch_vdso(const Task& task, uint64_t base) {
  RELIVE_ASSIGN_OR_RETURN(uint64_t size, vdso_size(task.tid(), base));
  RELIVE_ASSIGN_OR_RETURN(std::string img, task.read_mem(base, size));
  Elf64_Ehdr eh;
  if (!load(img, 0, &eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return Status::Corruption("vDSO is not an ELF image");
  Elf64_Shdr dynsym{}, dynstr{};
  bool found = false;
  for (int i = 0; i < eh.e_shnum && !found; ++i) {
    Elf64_Shdr sh;
    if (!load(img, eh.e_shoff + static_cast<uint64_t>(i) * eh.e_shentsize, &sh)) break;
    if (sh.sh_type != SHT_DYNSYM) continue;
    dynsym = sh;
    found = load(img, eh.e_shoff + static_cast<uint64_t>(sh.sh_link) * eh.e_shentsize, &dynstr);
  }
  if (!found) return Status::Corruption("vDSO has no dynamic symbol table");

  VdsoPatch patch{base, 0, 0};
  for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= dynsym.sh_size; off += sizeof(Elf64_Sym)) {
    Elf64_Sym sym;
    if (!load(img, dynsym.sh_offset + off, &sym) || sym.st_name >= dynstr.sh_size) continue;
    const char* name = img.data() + dynstr.sh_offset + sym.st_name;
    const Target* t =
        target_for(std::string_view(name, strnlen(name, dynstr.sh_size - sym.st_name)));
    if (t == nullptr || ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_value == 0) continue;
    if (sym.st_size < 8)
      return Status::Unsupported(std::string("vDSO function too small: ") + name);
    std::string stub = t->nr >= 0 ? syscall_stub(t->nr) : enosys_stub();
    uint64_t addr = base + sym.st_value;
    RELIVE_RETURN_IF_ERROR(task.write_mem(addr, stub.data(), stub.size()));
    if (t->nr >= 0 && patch.syscall_insn == 0) patch.syscall_insn = addr + 5;
    ++patch.patched;
  }
  if (patch.syscall_insn == 0) return Status::Unsupported("vDSO without clock_gettime");
  return patch;
}

}  // namespace relive::tracee
