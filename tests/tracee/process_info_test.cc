#include "tracee/process_info.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "tracee/seccomp_filter.h"

namespace relive::tracee {
namespace {

TEST(ProcessInfo, ElfInterpreterOfADynamicProgram) {
  auto interp = elf_interpreter("/bin/ls");
  ASSERT_TRUE(interp.ok()) << interp.status().to_string();
  EXPECT_NE(interp->find("ld-linux"), std::string::npos);
}

TEST(ProcessInfo, ScriptInterpreterFromTheShebangLine) {
  std::string path = "/tmp/relive-proc-info-test.sh";
  std::ofstream(path) << "#!/bin/sh -e\necho hi\n";
  auto interp = elf_interpreter(path);
  ASSERT_TRUE(interp.ok()) << interp.status().to_string();
  EXPECT_EQ(*interp, "/bin/sh");
  ::unlink(path.c_str());
}

TEST(ProcessInfo, NotAnExecutable) {
  std::string path = "/tmp/relive-proc-info-test.txt";
  std::ofstream(path) << "plain text";
  EXPECT_FALSE(elf_interpreter(path).ok());
  ::unlink(path.c_str());
}

TEST(ProcessInfo, ResolvesProgramsLikeExecvp) {
  auto p = resolve_program("ls");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->back(), 's');
  EXPECT_FALSE(resolve_program("relive-no-such-program-xyz").ok());
}

TEST(ProcessInfo, ReadsOwnAuxvAndMaps) {
  auto auxv = read_auxv(::getpid());
  ASSERT_TRUE(auxv.ok());
  EXPECT_NE(auxv->at_random, 0u);
  EXPECT_NE(auxv->at_sysinfo_ehdr, 0u);
  auto maps = read_maps(::getpid());
  ASSERT_TRUE(maps.ok());
  bool vdso = false;
  for (const Mapping& m : *maps) vdso |= m.path == "[vdso]" && m.start == auxv->at_sysinfo_ehdr;
  EXPECT_TRUE(vdso);
}

TEST(SeccompFilter, IsSmallAndEndsInTrace) {
  auto f = build_seccomp_filter();
  ASSERT_GT(f.size(), 10u);
  EXPECT_LT(f.size(), 200u);  // a linear chain: every traced syscall pays for its length
  EXPECT_EQ(f.back().code, BPF_RET | BPF_K);
}

}  // namespace
}  // namespace relive::tracee
