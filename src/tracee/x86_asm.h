// Just enough of an x86-64 assembler for the code relive writes into traced processes: the vDSO's
// fast trampolines (vdso.h) and the stubs of patched syscall sites (syscall_sites.h). The helper
// forms touch no flags; code that must leave registers as a `syscall` would (only rax, rcx and
// r11 written) says so where it is written.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>

#include "common/check.h"

namespace relive::tracee {

class Asm {
 public:
  explicit Asm(uint64_t at) : at_(at) {}
  std::string take() { return std::move(code_); }
  void bytes(std::initializer_list<int> b) {
    for (int x : b) code_.push_back(static_cast<char>(x));
  }
  void imm32(uint32_t v) { code_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void imm64(uint64_t v) { code_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void load_rcx(uint64_t addr) {  // mov addr(%rip),%rcx
    bytes({0x48, 0x8b, 0x0d});
    rel32(addr);
  }
  void store_rcx(uint64_t addr) {  // mov %rcx,addr(%rip)
    bytes({0x48, 0x89, 0x0d});
    rel32(addr);
  }
  void jmp(uint64_t target) {
    bytes({0xe9});
    rel32(target);
  }
  void load_r11(uint64_t addr) {  // mov addr(%rip),%r11
    bytes({0x4c, 0x8b, 0x1d});
    rel32(addr);
  }
  void load_rcx_from_r11(int disp) {  // mov disp(%r11),%rcx
    bytes({0x49, 0x8b, 0x4b, disp});
  }
  // Forward short jumps, resolved by bind() at the label.
  size_t jrcxz() { return short_jump(0xe3); }
  size_t jmp8() { return short_jump(0xeb); }
  size_t je8() { return short_jump(0x74); }
  size_t ja8() { return short_jump(0x77); }
  void bind(size_t jump) {
    size_t d = code_.size() - (jump + 1);
    RELIVE_CHECK(d < 128, "short jump too far");
    code_[jump] = static_cast<char>(d);
  }
  // A forward near jump, resolved by bind32() at the label.
  size_t jmp32() {
    bytes({0xe9});
    imm32(0);
    return code_.size() - 4;
  }
  void bind32(size_t jump) {
    auto d = static_cast<uint32_t>(code_.size() - (jump + 4));
    std::memcpy(code_.data() + jump, &d, 4);
  }
  // Goes on when rcx is zero, else jumps to `target` (jrcxz over a near jmp).
  void unless_rcx_zero_jmp(uint64_t target) {
    bytes({0xe3, 0x05});
    jmp(target);
  }
  // Jumps to `target` when rcx is zero, else goes on.
  void when_rcx_zero_jmp(uint64_t target) {
    size_t zero = jrcxz();
    size_t other = jmp8();
    bind(zero);
    jmp(target);
    bind(other);
  }

  // The address the next byte goes to.
  uint64_t here() const { return at_ + code_.size(); }

 private:
  void rel32(uint64_t target) {
    int64_t d = static_cast<int64_t>(target - (here() + 4));
    RELIVE_CHECK(d == static_cast<int32_t>(d), "rip-relative target too far");
    imm32(static_cast<uint32_t>(d));
  }
  size_t short_jump(int op) {
    bytes({op, 0});
    return code_.size() - 1;
  }
  uint64_t at_;
  std::string code_;
};

}  // namespace relive::tracee
