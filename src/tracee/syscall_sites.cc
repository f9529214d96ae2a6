#include "tracee/syscall_sites.h"

#include <cstddef>
#include <vector>

#include "common/check.h"
#include "tracee/fast_path_abi.h"
#include "tracee/x86_asm.h"

namespace relive::tracee {
namespace {

// The stub's frame on the stack: relive_fp_frame (nr, args[6], result, partial, the six argument
// registers as the program passed them: the fast path may adjust the frame's args for a
// continued write, and the program gets its own values back; a writev's rest), then a pad to 16
// bytes. Every word the stub itself touches is within a disp8 of the stack pointer.
constexpr int kNr = 0, kArgs = 8, kResult = 56, kPartial = 64, kOriginal = 72, kAfterArgs = 120;
constexpr int kFrameBytes = (sizeof(relive_fp_frame) + 15) / 16 * 16;
constexpr uint32_t kFastPathStack = RELIVE_FP_STACK_BYTES;
// The calls a stub makes at once, on the program's stack (see the header).
constexpr uint32_t kStackCalls[] = {15 /* rt_sigreturn */, 56 /* clone */, 57 /* fork */,
                                    58 /* vfork */, 435 /* clone3 */};
static_assert(offsetof(relive_fp_frame, nr) == kNr && offsetof(relive_fp_frame, args) == kArgs &&
              offsetof(relive_fp_frame, result) == kResult &&
              offsetof(relive_fp_frame, partial) == kPartial);
static_assert(offsetof(relive_fp_frame, program_args) == kOriginal &&
              kAfterArgs == kOriginal + 48 && kAfterArgs <= 127 &&
              (kFrameBytes - kAfterArgs) % 8 == 0);

// The argument registers in the kernel's order: rdi, rsi, rdx, r10, r8, r9.
// mov %reg,disp8(%rsp) and mov disp8(%rsp),%reg: REX, ModRM (with SIB 0x24 and disp8).
constexpr int kRex[6] = {0x48, 0x48, 0x48, 0x4c, 0x4c, 0x4c};
constexpr int kModRm[6] = {0x7c, 0x74, 0x54, 0x54, 0x44, 0x4c};

void store_arg(Asm& a, int i, int disp) { a.bytes({kRex[i], 0x89, kModRm[i], 0x24, disp}); }
void load_arg(Asm& a, int i, int disp) { a.bytes({kRex[i], 0x8b, kModRm[i], 0x24, disp}); }

}  // namespace

namespace {

constexpr SiteForm kForms[] = {
    {kSitePattern, 8, 6, false},         {kSitePatternAsm, 8, 6, false},
    {kSitePatternInt, 7, 5, false},      {kSitePatternMovInt, 9, 7, false},
    {kSitePatternRet, 5, 1, true},       {kSitePatternRetNopw, 5, 1, true},
    {kSitePatternRetCsNopw, 5, 1, true},
};

}  // namespace

const SiteForm* site_form(std::string_view bytes) {
  for (const SiteForm& f : kForms)
    if (bytes.substr(0, f.pattern.size()) == f.pattern) return &f;
  return nullptr;
}

size_t site_length(std::string_view bytes) {
  const SiteForm* f = site_form(bytes);
  return f == nullptr ? 0 : f->length;
}

std::string site_jump(uint64_t site, std::string_view site_bytes, uint64_t stub) {
  const SiteForm* f = site_form(site_bytes);
  RELIVE_CHECK(f != nullptr, "not a known site");
  Asm a(site);
  a.jmp(stub);
  // A nop for the rest: never executed, the stub returns past it.
  if (f->length == 7) a.bytes({0x66, 0x90});              // xchg %ax,%ax
  if (f->length == 8) a.bytes({0x0f, 0x1f, 0x00});        // nopl (%rax)
  if (f->length == 9) a.bytes({0x0f, 0x1f, 0x40, 0x00});  // nopl 0(%rax)
  std::string code = a.take();
  RELIVE_CHECK(code.size() == f->length, "site jump is not as long as the site");
  return code;
}

SiteStub site_stub(uint64_t site, std::string_view site_bytes, uint64_t at, uint64_t fast_path,
                   uint64_t buffer) {
  const SiteForm* form = site_form(site_bytes);
  RELIVE_CHECK(form != nullptr, "not a known site");
  std::string_view after =
      site_bytes.substr(2, form->kept);  // the site's compare (and mov), or ret
  // The site's own instructions after its `syscall`, and the way back behind it.
  auto site_end = [&](Asm& a) {
    for (char c : after) a.bytes({static_cast<unsigned char>(c)});
    if (!form->returns) a.jmp(site + form->length);
  };
  Asm b(at);
  // The stack calls, at once: lea and jrcxz leave the flags alone (r11 gets them at entry), and
  // rcx is the kernel's to set.
  std::vector<size_t> stack_call;
  for (uint32_t nr : kStackCalls) {
    b.bytes({0x48, 0x8d, 0x88});  // lea -nr(%rax),%rcx
    b.imm32(static_cast<uint32_t>(-static_cast<int32_t>(nr)));
    stack_call.push_back(b.jrcxz());
  }
  size_t fast = b.jmp8();
  for (size_t j : stack_call) b.bind(j);
  b.bytes({0x0f, 0x05});  // syscall
  site_end(b);
  b.bind(fast);
  b.bytes({0x48, 0x8d, 0x64, 0x24, 0x80});  // lea -128(%rsp),%rsp      past the red zone
  b.bytes({0x9c});                          // pushf                     r11 at the end
  b.bytes({0x55});                          // push %rbp
  b.bytes({0x48, 0x89, 0xe5});              // mov %rsp,%rbp
  b.bytes({0x48, 0x83, 0xe4, 0xf0});        // and $-16,%rsp            the C call's alignment
  b.bytes({0x48, 0x81, 0xec});              // sub $kFrameBytes,%rsp
  b.imm32(kFrameBytes);
  b.bytes({0x48, 0x89, 0x04, 0x24});  // mov %rax,(%rsp)          frame.nr
  for (int i = 0; i < 6; ++i) {
    store_arg(b, i, kArgs + 8 * i);      // frame.args[i]
    store_arg(b, i, kOriginal + 8 * i);  // the program's own copy
  }
  b.bytes({0x48, 0xc7, 0x44, 0x24, kPartial, 0, 0, 0, 0});  // movq $0,frame.partial
  b.bytes({0x48, 0x89, 0xe7});                              // mov %rsp,%rdi
  b.bytes({0x48, 0xbe});                                    // movabs $buffer,%rsi
  b.imm64(buffer);
  b.bytes({0x49, 0xbb});  // movabs $fast_path,%r11
  b.imm64(fast_path);
  b.bytes({0x41, 0xff, 0xd3});              // call *%r11
  b.bytes({0x83, 0xf8, RELIVE_FP_TRACED});  // cmp $TRACED,%eax
  size_t traced = b.je8();
  b.bytes({0x83, 0xf8, RELIVE_FP_CONTINUE});  // cmp $CONTINUE,%eax
  size_t cont = b.je8();
  b.bytes({0x48, 0x8b, 0x44, 0x24, kResult});  // DONE: mov frame.result,%rax
  size_t done = b.jmp8();
  // TRACED and CONTINUE: the call through the traced path, from here, with the frame's
  // arguments (the rest of a continued write).
  b.bind(traced);
  b.bind(cont);  // CONTINUE is told apart by frame.partial, which TRACED leaves 0
  // The traced call may stop this thread here for long (its turn, a blocking call) while
  // another thread is preempted and the whole memory compared: the fast path's dead stack is
  // cleared first (a recording and its replay decide TRACED by different code, after different
  // work; the frame words the fast path wrote for a TRACED answer it clears itself).
  b.bytes({0x48, 0x8d, 0xbc, 0x24});  // lea -kFastPathStack(%rsp),%rdi
  b.imm32(static_cast<uint32_t>(-kFastPathStack));
  b.bytes({0xb9});  // mov $kFastPathStack/8,%ecx
  b.imm32(kFastPathStack / 8);
  b.bytes({0x31, 0xc0});        // xor %eax,%eax
  b.bytes({0xf3, 0x48, 0xab});  // rep stosq
  for (int i = 0; i < 6; ++i) load_arg(b, i, kArgs + 8 * i);
  b.bytes({0x48, 0x8b, 0x04, 0x24});            // mov frame.nr,%rax
  b.bytes({0x0f, 0x05});                        // syscall                  (traced: a stop, logged)
  b.bytes({0x48, 0x8b, 0x4c, 0x24, kPartial});  // mov frame.partial,%rcx
  size_t whole = b.jrcxz();
  b.bytes({0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff});  // cmp $-4096,%rax
  size_t failed = b.ja8();
  b.bytes({0x48, 0x01, 0xc8});  // add %rcx,%rax              partial + the rest
  size_t added = b.jmp8();
  b.bind(failed);
  b.bytes({0x48, 0x89, 0xc8});  // mov %rcx,%rax              the rest failed: partial
  b.bind(added);
  b.bind(whole);
  b.bind(done);
  // The fast path's stack and the frame are left zeroed, but for the program's own arguments:
  // a call the recording made here and the replay answers from the buffer (or the other way
  // round) runs different code and leaves different words there, and a preemption compares the
  // thread's memory (thread_state.h), dead stack too.
  b.bytes({0x49, 0x89, 0xc3});        // mov %rax,%r11            the result
  b.bytes({0x48, 0x8d, 0xbc, 0x24});  // lea -kFastPathStack(%rsp),%rdi
  b.imm32(static_cast<uint32_t>(-kFastPathStack));
  b.bytes({0xb9});  // mov $(kFastPathStack + kOriginal)/8,%ecx
  b.imm32((kFastPathStack + kOriginal) / 8);
  b.bytes({0x31, 0xc0});                          // xor %eax,%eax
  b.bytes({0xf3, 0x48, 0xab});                    // rep stosq
  b.bytes({0x48, 0x8d, 0x7c, 0x24, kAfterArgs});  // lea kAfterArgs(%rsp),%rdi
  b.bytes({0xb9});                                // mov $(kFrameBytes - kAfterArgs)/8,%ecx
  b.imm32((kFrameBytes - kAfterArgs) / 8);
  b.bytes({0xf3, 0x48, 0xab});                                    // rep stosq
  b.bytes({0x4c, 0x89, 0xd8});                                    // mov %r11,%rax
  for (int i = 0; i < 6; ++i) load_arg(b, i, kOriginal + 8 * i);  // the program's registers
  b.bytes({0x48, 0x89, 0xec});                                    // mov %rbp,%rsp
  b.bytes({0x5d});                                                // pop %rbp
  b.bytes({0x41, 0x5b});                                          // pop %r11   the flags at entry
  b.bytes({0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00});      // lea 128(%rsp),%rsp
  b.bytes({0x48, 0xb9});  // movabs $site+2,%rcx   as the kernel's syscall leaves it
  b.imm64(site + 2);
  SiteStub out;
  out.tail = b.here();
  site_end(b);
  out.code = b.take();
  RELIVE_CHECK(out.code.size() <= kSiteStubStride, "site stub too long");
  return out;
}

}  // namespace relive::tracee
