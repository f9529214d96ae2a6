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
constexpr size_t kTrampolineStride = 16;
constexpr size_t kJumpSize = 14;  // jmp *0(%rip); .quad target

// mov $nr,%eax; syscall; ret  (8 bytes)
std::string syscall_trampoline(int nr) {
  unsigned char code[8] = {0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0xc3};
  std::memcpy(code + 1, &nr, 4);
  return std::string(reinterpret_cast<char*>(code), sizeof code);
}

// mov $-ENOSYS,%rax; ret  (8 bytes)
std::string enosys_trampoline() {
  const unsigned char code[8] = {0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3};
  return std::string(reinterpret_cast<const char*>(code), sizeof code);
}

std::string jump_to(uint64_t target) {
  const unsigned char code[6] = {0xff, 0x25, 0, 0, 0, 0};
  std::string out(reinterpret_cast<const char*>(code), sizeof code);
  out.append(reinterpret_cast<const char*>(&target), sizeof target);
  return out;
}

// The index of the target a vDSO symbol names, or -1.
int target_for(std::string_view sym) {
  if (sym.substr(0, 7) == "__vdso_") sym.remove_prefix(7);
  for (size_t i = 0; i < std::size(kTargets); ++i)
    if (sym == kTargets[i].name) return static_cast<int>(i);
  return -1;
}

template <typename T>
bool load(const std::string& img, uint64_t off, T* out) {
  if (off > img.size() || img.size() - off < sizeof(T)) return false;
  std::memcpy(out, img.data() + off, sizeof(T));
  return true;
}

Result<std::string> vdso_image(const Task& task, uint64_t base) {
  RELIVE_ASSIGN_OR_RETURN(Mapping m, vdso_mapping(task.tid()));
  if (m.start != base) return Status::NotFound("no vDSO mapping at the AT_SYSINFO_EHDR address");
  return task.read_mem(m.start, m.end - m.start);
}

struct Symbol {
  std::string name;
  uint64_t value = 0, size = 0;
};

// The vDSO's function symbols.
Result<std::vector<Symbol>> functions(const std::string& img) {
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
  std::vector<Symbol> out;
  for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= dynsym.sh_size; off += sizeof(Elf64_Sym)) {
    Elf64_Sym sym;
    if (!load(img, dynsym.sh_offset + off, &sym) || sym.st_name >= dynstr.sh_size) continue;
    if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_value == 0) continue;
    uint64_t at = dynstr.sh_offset + sym.st_name;
    if (at >= img.size()) continue;
    const char* name = img.data() + at;
    out.push_back({std::string(name, strnlen(name, img.size() - at)), sym.st_value, sym.st_size});
  }
  return out;
}

}  // namespace

std::string trampoline_page() {
  std::string page(kTrampolineSize, '\xcc');  // int3 between trampolines
  for (size_t i = 0; i < std::size(kTargets); ++i) {
    std::string code =
        kTargets[i].nr >= 0 ? syscall_trampoline(kTargets[i].nr) : enosys_trampoline();
    page.replace(i * kTrampolineStride, code.size(), code);
  }
  return page;
}

Result<VdsoPatch> patch_vdso(const Task& task, uint64_t base) {
  RELIVE_ASSIGN_OR_RETURN(std::string img, vdso_image(task, base));
  RELIVE_ASSIGN_OR_RETURN(std::vector<Symbol> syms, functions(img));
  std::string page = trampoline_page();
  RELIVE_RETURN_IF_ERROR(task.write_mem(kTrampolineAddr, page.data(), page.size()));
  VdsoPatch patch{base, kTrampolineAddr + 5, {}};  // target 0 is clock_gettime's syscall
  for (const Symbol& s : syms) {
    int t = target_for(s.name);
    if (t < 0) continue;
    uint64_t addr = base + s.value;
    bool seen = false;  // __vdso_time and time name the same code
    for (const VdsoEntry& e : patch.entries) seen = seen || e.addr == addr;
    if (seen) continue;
    if (s.size < kJumpSize || s.value + kJumpSize > img.size())
      return Status::Unsupported("vDSO function too small to patch: " + s.name);
    std::string jump = jump_to(kTrampolineAddr + static_cast<uint64_t>(t) * kTrampolineStride);
    patch.entries.push_back({addr, img.substr(s.value, kJumpSize)});
    RELIVE_RETURN_IF_ERROR(task.write_mem(addr, jump.data(), jump.size()));
  }
  bool has_clock = false;
  for (const Symbol& s : syms) has_clock = has_clock || target_for(s.name) == 0;
  if (!has_clock) return Status::Unsupported("vDSO without clock_gettime");
  return patch;
}

Status unpatch_vdso(const Task& task, const VdsoPatch& patch) {
  for (const VdsoEntry& e : patch.entries)
    RELIVE_RETURN_IF_ERROR(task.write_mem(e.addr, e.original.data(), e.original.size()));
  return Status::Ok();
}

Result<uint64_t> find_vdso_syscall_insn(const Task& task, uint64_t base) {
  RELIVE_ASSIGN_OR_RETURN(std::string img, vdso_image(task, base));
  size_t at = img.find("\x0f\x05");
  if (at == std::string::npos)
    return Status::Unsupported("the vDSO has no syscall instruction to inject from");
  return base + at;
}

Result<Mapping> vdso_mapping(pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(auto maps, read_maps(pid));
  for (const Mapping& m : maps)
    if (m.path == "[vdso]") return m;
  return Status::NotFound("process " + std::to_string(pid) + " has no vDSO");
}

Result<bool> in_vdso(pid_t pid, uint64_t addr) {
  RELIVE_ASSIGN_OR_RETURN(Mapping m, vdso_mapping(pid));
  return addr >= m.start && addr < m.end;
}

}  // namespace relive::tracee
