// Decoding the task state of CRIU core images built by hand, including corrupt ones, and of a
// golden CRIU 4.1.1 image. criu_test.cc decodes a dump it makes with the installed CRIU.
#include "drivers/criu/core_image.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "common/file_util.h"
#include "drivers/criu/pb_writer.h"

namespace relive::criu {
namespace {

using pb::put_bytes;
using pb::put_uint;

std::string itimer(uint64_t isec, uint64_t iusec, uint64_t vsec, uint64_t vusec) {
  std::string m;
  put_uint(&m, 1, isec);
  put_uint(&m, 2, iusec);
  put_uint(&m, 3, vsec);
  put_uint(&m, 4, vusec);
  return m;
}

std::string timers(const std::string& real, const std::string& virt, const std::string& prof) {
  std::string m;
  put_bytes(&m, 1, real);
  put_bytes(&m, 2, virt);
  put_bytes(&m, 3, prof);
  put_bytes(&m, 4, "\x08\x01");  // a POSIX timer, ignored
  return m;
}

// The sa_entry CRIU writes for the i-th sigaction; only the handler depends on i.
std::string sa_entry(uint64_t handler, bool with_compat = true) {
  std::string m;
  put_uint(&m, 1, handler);
  put_uint(&m, 2, 0x04000004);  // SA_RESTORER | SA_SIGINFO
  put_uint(&m, 3, 0x7f0000001000);
  put_uint(&m, 4, 1u << (SIGUSR2 - 1));
  if (with_compat) put_uint(&m, 5, 0);
  return m;
}

// A task_core_entry with CRIU's required scalars, then `rest`.
std::string task_core(const std::string& rest) {
  std::string m;
  put_uint(&m, 1, 1);  // task_state: alive
  put_uint(&m, 2, 0);
  put_uint(&m, 3, 0);
  put_uint(&m, 4, 0x400040);
  put_uint(&m, 5, 0);
  put_bytes(&m, 6, "subject");
  return m + rest;
}

std::string sigactions(size_t n, bool with_compat = true) {
  std::string m;
  for (size_t i = 0; i < n; ++i) put_bytes(&m, 15, sa_entry(0x401000 + i, with_compat));
  return m;
}

std::string core_entry(const std::string& tc, uint64_t mtype = 1) {
  std::string m;
  put_uint(&m, 1, mtype);
  put_bytes(&m, 2, std::string(600, 'r'));  // thread_info: registers, skipped
  put_bytes(&m, 3, tc);
  put_bytes(&m, 4, "\x08\x01\x10\x01\x18\x01\x20\x01");  // ids
  return m;
}

std::string core_image(const std::string& entry) {
  std::string img;
  pb::put_le32(&img, 0x54564319);
  pb::put_le32(&img, 0x55053847);
  pb::put_object(&img, entry);
  return img;
}

// task_core_entry.timers
std::string timers_field(const std::string& timers_entry) {
  std::string m;
  put_bytes(&m, 7, timers_entry);
  return m;
}

const std::string kImage = core_image(core_entry(task_core(
    sigactions(62) +
    timers_field(timers(itimer(5, 0, 4, 999999), itimer(0, 0, 0, 0), itimer(0, 250000, 1, 5))))));

TEST(CoreImage, DecodesTimers) {
  auto state = decode_task_core(kImage);
  ASSERT_TRUE(state.ok()) << state.status().to_string();
  EXPECT_EQ(state->real, (ITimer{5000000, 4999999}));
  EXPECT_EQ(state->virt, ITimer{});
  EXPECT_EQ(state->prof, (ITimer{250000, 1000005}));
}

TEST(CoreImage, NumbersSigactionsSkippingKillAndStop) {
  auto state = decode_task_core(kImage);
  ASSERT_TRUE(state.ok()) << state.status().to_string();
  ASSERT_EQ(state->sigactions.size(), 62u);
  const auto& sa = state->sigactions;
  EXPECT_EQ(sa[0].signo, 1);
  EXPECT_EQ(sa[7].signo, 8);
  EXPECT_EQ(sa[8].signo, 10);  // SIGKILL has none
  EXPECT_EQ(sa[8].handler, 0x401008u);
  EXPECT_EQ(sa[16].signo, 18);
  EXPECT_EQ(sa[17].signo, 20);  // nor SIGSTOP
  EXPECT_EQ(sa[61].signo, 64);
  EXPECT_EQ(sa[8], (SigAction{.signo = SIGUSR1,
                              .handler = 0x401008,
                              .flags = 0x04000004,
                              .restorer = 0x7f0000001000,
                              .mask = 1u << (SIGUSR2 - 1)}));
}

TEST(CoreImage, OptionalFieldsMayBeAbsent) {
  // No timers, no compat flag, no sigactions.
  auto state = decode_task_core(core_image(core_entry(task_core(sigactions(62, false)))));
  ASSERT_TRUE(state.ok()) << state.status().to_string();
  EXPECT_EQ(state->real, ITimer{});
  EXPECT_EQ(state->prof, ITimer{});
  EXPECT_EQ(state->sigactions.size(), 62u);
  EXPECT_FALSE(state->sigactions[0].compat);
  state = decode_task_core(core_image(core_entry(task_core(""))));
  ASSERT_TRUE(state.ok()) << state.status().to_string();
  EXPECT_TRUE(state->sigactions.empty());
  std::string compat;
  put_uint(&compat, 5, 1);
  std::string tc;
  for (int i = 0; i < 62; ++i) put_bytes(&tc, 15, sa_entry(1, false) + compat);
  state = decode_task_core(core_image(core_entry(task_core(tc))));
  ASSERT_TRUE(state.ok()) << state.status().to_string();
  EXPECT_TRUE(state->sigactions[61].compat);
}

// CRIU 4.1.1 dumped (x86-64) a process that had armed ITIMER_REAL (5 s, repeating) and handled
// SIGALRM and SIGUSR1 with the function at 0x55dad9508199, blocking SIGUSR2; the values below
// are those protoc --decode=core_entry (images/core.proto) shows.
TEST(CoreImage, DecodesAGoldenCriuImage) {
  auto image = read_file(RELIVE_SOURCE_DIR "/tests/data/golden/criu_4.1.1/core.img");
  ASSERT_TRUE(image.ok()) << image.status().to_string();
  auto state = decode_task_core(*image);
  ASSERT_TRUE(state.ok()) << state.status().to_string();
  EXPECT_EQ(state->real, (ITimer{5000000, 4573982}));
  EXPECT_EQ(state->virt, ITimer{});
  EXPECT_EQ(state->prof, ITimer{});
  ASSERT_EQ(state->sigactions.size(), 62u);
  const SigAction handled{.signo = SIGUSR1,
                          .handler = 0x55dad9508199,
                          .flags = 0x04000000,  // SA_RESTORER
                          .restorer = 0x7f7e3fb05050,
                          .mask = 1u << (SIGUSR2 - 1)};
  EXPECT_EQ(state->sigactions[8], handled);
  EXPECT_EQ(state->sigactions[9], SigAction{.signo = SIGSEGV});
  SigAction alarm = handled;
  alarm.signo = SIGALRM;
  EXPECT_EQ(state->sigactions[12], alarm);
}

void expect_corrupt(const std::string& image, const char* what) {
  auto state = decode_task_core(image);
  ASSERT_FALSE(state.ok()) << what;
  EXPECT_TRUE(state.status().is_corruption()) << what << ": " << state.status().to_string();
}

TEST(CoreImage, RejectsBadFraming) {
  expect_corrupt("", "empty");
  expect_corrupt(kImage.substr(0, 7), "short magic");
  std::string bad = kImage;
  bad[4] ^= 1;
  expect_corrupt(bad, "wrong magic");
  expect_corrupt(kImage.substr(0, 10), "truncated length");
  expect_corrupt(kImage.substr(0, kImage.size() - 1), "truncated entry");
  expect_corrupt(kImage + "x", "trailing byte");
  std::string huge = kImage.substr(0, 8) + "\xff\xff\xff\xff" + kImage.substr(12);
  expect_corrupt(huge, "length beyond the image");
}

TEST(CoreImage, RejectsEveryTruncation) {
  for (size_t n = 0; n < kImage.size(); ++n) {
    auto state = decode_task_core(kImage.substr(0, n));
    EXPECT_TRUE(state.status().is_corruption()) << n;
  }
}

TEST(CoreImage, RejectsBadEntries) {
  const std::string zero = itimer(0, 0, 0, 0);
  auto with_timers = [](const std::string& t) {
    return core_image(core_entry(task_core(timers_field(t))));
  };
  expect_corrupt(with_timers(timers(itimer(1, 1000000, 0, 0), zero, zero)), "usec out of range");
  expect_corrupt(with_timers(timers(itimer(UINT64_MAX / 1000000, 999999, 0, 0), zero, zero)),
                 "seconds overflow");
  std::string no_vusec;
  put_uint(&no_vusec, 1, 1);
  put_uint(&no_vusec, 2, 1);
  put_uint(&no_vusec, 3, 1);
  expect_corrupt(with_timers(timers(no_vusec, zero, zero)), "itimer without vusec");
  expect_corrupt(with_timers(""), "timers without real");
  expect_corrupt(core_image(core_entry(task_core(sigactions(61)))), "61 sigactions");
  expect_corrupt(core_image(core_entry(task_core(sigactions(63)))), "63 sigactions");
  std::string no_mask;
  put_uint(&no_mask, 1, 0);
  put_uint(&no_mask, 2, 0);
  put_uint(&no_mask, 3, 0);
  std::string tc = sigactions(61);
  put_bytes(&tc, 15, no_mask);
  expect_corrupt(core_image(core_entry(task_core(tc))), "sigaction without mask");
  std::string mtype_only;
  put_uint(&mtype_only, 1, 1);
  expect_corrupt(core_image(mtype_only), "no task core (a thread's core)");
  expect_corrupt(core_image(core_entry(task_core("")).substr(2)), "no mtype");
  expect_corrupt(core_image(core_entry(task_core("")) + core_entry(task_core(""))), "two tc");
  expect_corrupt(core_image("\x1a\x05\x0a\x03\x08"), "task core runs past the entry");
  expect_corrupt(core_image("\x08\xff\xff\xff"), "varint runs off the end");
}

TEST(CoreImage, OtherArchitecturesAreUnsupported) {
  auto state = decode_task_core(core_image(core_entry(task_core(sigactions(62)), 3)));
  EXPECT_TRUE(state.status().is_unsupported()) << state.status().to_string();
}

TEST(CoreImage, SurvivesGarbage) {
  // Every single-byte change decodes or fails cleanly; no crash, no exception.
  for (size_t i = 0; i < kImage.size(); ++i) {
    for (int bit : {0, 3, 7}) {
      std::string img = kImage;
      img[i] ^= static_cast<char>(1 << bit);
      (void)decode_task_core(img);
    }
  }
  std::string noise;
  for (uint32_t x = 12345, i = 0; i < 4096; ++i)
    noise.push_back(static_cast<char>((x = x * 1103515245 + 12345) >> 16));
  EXPECT_FALSE(decode_task_core(core_image(noise)).ok());
}

}  // namespace
}  // namespace relive::criu
