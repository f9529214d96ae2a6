#include "tracee/vdso.h"

#include <elf.h>
#include <sys/syscall.h>

#include <cstring>
#include <initializer_list>
#include <string_view>

#include "common/check.h"
#include "tracee/process_info.h"
#include "tracee/syscall_buffer.h"
#include "tracee/x86_asm.h"

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

// The replay side of a fast trampoline (syscall_buffer.h): the next prefilled entry, when the
// buffer has one and it is this very call, is returned without entering the kernel; otherwise the
// call goes down the traced path, where the replayer compares it with the log. Only rax, rcx and
// r11 are written, as by the traced call's `syscall`.
void replay_path(Asm& a, int nr, uint64_t plain) {
  a.load_rcx(kRoomAddr);  // no entry left
  a.when_rcx_zero_jmp(plain);
  a.load_r11(kNextAddr);  // the entry: number and arguments negated, so lea compares them
  a.load_rcx_from_r11(0);
  a.bytes({0x48, 0x8d, 0x89});  // lea nr(%rcx),%rcx
  a.imm32(static_cast<uint32_t>(nr));
  a.unless_rcx_zero_jmp(plain);
  // lea (%rcx,%reg),%rcx for rdi, rsi, rdx, r10, r8, r9: REX and SIB bytes
  constexpr int kCompare[6][2] = {{0x48, 0x39}, {0x48, 0x31}, {0x48, 0x11},
                                  {0x4a, 0x11}, {0x4a, 0x01}, {0x4a, 0x09}};
  for (int i = 0; i < 6; ++i) {
    a.load_rcx_from_r11(8 + 8 * i);
    a.bytes({kCompare[i][0], 0x8d, 0x0c, kCompare[i][1]});
    a.unless_rcx_zero_jmp(plain);
  }
  a.load_rcx(kRoomAddr);  // taken: one room less, the logged bytes written, the entry passed
  a.bytes({0x48, 0x8d, 0x49, 0xff});  // lea -1(%rcx),%rcx
  a.store_rcx(kRoomAddr);
  if (nr != SYS_time) {
    a.load_rcx_from_r11(56);  // the result: 0 means the call wrote its 16 bytes
    size_t copy = a.jrcxz();
    size_t done = a.jmp8();
    a.bind(copy);
    bool to_rdi = nr == SYS_gettimeofday;
    a.bytes({0x49, 0x8b, 0x43, 0x40});                  // mov 64(%r11),%rax
    a.bytes({0x48, 0x89, to_rdi ? 0x07 : 0x06});        // mov %rax,(%rdi|%rsi)
    a.bytes({0x49, 0x8b, 0x43, 0x48});                  // mov 72(%r11),%rax
    a.bytes({0x48, 0x89, to_rdi ? 0x47 : 0x46, 0x08});  // mov %rax,8(%rdi|%rsi)
    a.bind(done);
  }
  a.bytes({0x49, 0x8d, 0x4b, 0x50});  // lea 80(%r11),%rcx
  a.store_rcx(kNextAddr);
  a.bytes({0x49, 0x8b, 0x43, 0x38});  // mov 56(%r11),%rax  the result
  // r11: the flags, as `syscall` saves them, through the word below rsp (free: the vDSO function
  // was entered by a call and jumped here first thing), which is then put back as it was, since
  // a replay compares the stack's bytes at preemption points (tracee/thread_state.h).
  a.bytes({0x48, 0x8b, 0x4c, 0x24, 0xf8});  // mov -8(%rsp),%rcx
  a.bytes({0x9c, 0x41, 0x5b});              // pushf; pop %r11
  a.bytes({0x48, 0x89, 0x4c, 0x24, 0xf8});  // mov %rcx,-8(%rsp)
  a.bytes({0x48, 0xb9});                    // movabs $plain+7,%rcx  as the traced call leaves it
  a.imm64(plain + 7);
  a.bytes({0xc3});
}

// The fast path of target `index` (clock_gettime, gettimeofday or time; syscall_buffer.h): when
// the buffer has room and the call is one it takes, the call is made from here, where the
// seccomp filter lets it through without a stop, and appended to the buffer; otherwise it jumps
// to the traced trampoline.
std::string fast_trampoline(int index) {
  const int nr = kTargets[index].nr;
  const uint64_t plain = kTrampolineAddr + static_cast<uint64_t>(index) * kTrampolineStride;
  Asm a(kTrampolineAddr + kFastTrampolineOffset +
        static_cast<uint64_t>(index) * kFastTrampolineStride);
  if (nr == SYS_gettimeofday) {
    a.bytes({0x48, 0x89, 0xf9});  // mov %rdi,%rcx     no time value wanted: traced
    size_t no_value = a.jrcxz();
    a.bytes({0x48, 0x89, 0xf1});  // mov %rsi,%rcx     a time zone wanted: traced
    size_t no_zone = a.jrcxz();
    a.bind(no_value);
    a.jmp(plain);
    a.bind(no_zone);
  } else if (nr == SYS_time) {
    a.bytes({0x48, 0x89, 0xf9});  // mov %rdi,%rcx     time(&t): traced
    size_t no_pointer = a.jrcxz();
    a.jmp(plain);
    a.bind(no_pointer);
  }
  a.load_rcx(kModeAddr);  // a replayer filled the buffer: the replay path below
  size_t recording = a.jrcxz();
  size_t replaying = a.jmp32();
  a.bind(recording);
  a.load_rcx(kRoomAddr);  // no room
  a.when_rcx_zero_jmp(plain);
  // Room is taken before the call, from the value just tested: the tracer may lower it to 0
  // behind the thread's back (syscall_buffer.h), and an update from a second read could then
  // wrap it below zero.
  a.bytes({0x48, 0x8d, 0x49, 0xff});  // lea -1(%rcx),%rcx
  a.store_rcx(kRoomAddr);
  a.bytes({0xb8});  // mov $nr,%eax; syscall
  a.imm32(static_cast<uint32_t>(nr));
  a.bytes({0x0f, 0x05});
  a.load_rcx(kNextAddr);        // the entry (SyscallBufferEntry): number, arguments, result
  a.bytes({0x48, 0xc7, 0x01});  // movq $nr,(%rcx)
  a.imm32(static_cast<uint32_t>(nr));
  a.bytes({0x48, 0x89, 0x79, 0x08});  // mov %rdi,8(%rcx)
  a.bytes({0x48, 0x89, 0x71, 0x10});  // mov %rsi,16(%rcx)
  a.bytes({0x48, 0x89, 0x51, 0x18});  // mov %rdx,24(%rcx)
  a.bytes({0x4c, 0x89, 0x51, 0x20});  // mov %r10,32(%rcx)
  a.bytes({0x4c, 0x89, 0x41, 0x28});  // mov %r8,40(%rcx)
  a.bytes({0x4c, 0x89, 0x49, 0x30});  // mov %r9,48(%rcx)
  a.bytes({0x48, 0x89, 0x41, 0x38});  // mov %rax,56(%rcx)
  a.bytes({0x48, 0x91});              // xchg %rax,%rcx   rax: the entry, rcx: the result
  if (nr != SYS_time) {
    size_t copy = a.jrcxz();  // success: copy the 16 bytes the kernel wrote
    size_t done = a.jmp8();
    a.bind(copy);
    bool from_rdi = nr == SYS_gettimeofday;
    a.bytes({0x48, 0x8b, from_rdi ? 0x0f : 0x0e});        // mov (%rdi|%rsi),%rcx
    a.bytes({0x48, 0x89, 0x48, 0x40});                    // mov %rcx,64(%rax)
    a.bytes({0x48, 0x8b, from_rdi ? 0x4f : 0x4e, 0x08});  // mov 8(%rdi|%rsi),%rcx
    a.bytes({0x48, 0x89, 0x48, 0x48});                    // mov %rcx,72(%rax)
    a.bind(done);
  }
  a.bytes({0x48, 0x8d, 0x48, 0x50});  // lea 80(%rax),%rcx  the entry is complete: advance
  a.store_rcx(kNextAddr);
  a.bytes({0x48, 0x8b, 0x40, 0x38});  // mov 56(%rax),%rax  the result
  a.bytes({0x48, 0xb9});  // movabs $plain+7,%rcx  as the traced call's syscall leaves it
  a.imm64(plain + 7);
  a.bytes({0xc3});  // ret; r11 holds the flags, as after the traced call's syscall
  a.bind32(replaying);
  replay_path(a, nr, plain);
  std::string code = a.take();
  RELIVE_CHECK(code.size() <= kFastTrampolineStride, "fast trampoline too long");
  return code;
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
  for (size_t i = 0; i < std::size(kTargets); ++i) {
    if (!fast_path_clock_call(kTargets[i].nr)) continue;
    std::string code = fast_trampoline(static_cast<int>(i));
    page.replace(kFastTrampolineOffset + i * kFastTrampolineStride, code.size(), code);
  }
  return page;
}

Result<bool> has_current_trampolines(const Task& task) {
  std::string page(kTrampolineSize, '\0');
  RELIVE_RETURN_IF_ERROR(task.read_mem(kTrampolineAddr, page.data(), page.size()));
  return page == trampoline_page();
}

Result<VdsoPatch> patch_vdso(const Task& task, uint64_t base) {
  RELIVE_ASSIGN_OR_RETURN(std::string img, vdso_image(task, base));
  RELIVE_ASSIGN_OR_RETURN(std::vector<Symbol> syms, functions(img));
  std::string page = trampoline_page();
  RELIVE_RETURN_IF_ERROR(task.write_mem(kTrampolineAddr, page.data(), page.size()));
  VdsoPatch patch{base, kTrampolineSyscallInsn, {}};
  for (const Symbol& s : syms) {
    int t = target_for(s.name);
    if (t < 0) continue;
    uint64_t addr = base + s.value;
    bool seen = false;  // __vdso_time and time name the same code
    for (const VdsoEntry& e : patch.entries) seen = seen || e.addr == addr;
    if (seen) continue;
    if (s.size < kJumpSize || s.value + kJumpSize > img.size())
      return Status::Unsupported("vDSO function too small to patch: " + s.name);
    std::string jump =
        jump_to(fast_path_clock_call(kTargets[t].nr)
                    ? kTrampolineAddr + kFastTrampolineOffset +
                          static_cast<uint64_t>(t) * kFastTrampolineStride
                    : kTrampolineAddr + static_cast<uint64_t>(t) * kTrampolineStride);
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
