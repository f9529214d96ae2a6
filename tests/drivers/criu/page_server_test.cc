// CRIU's page-server protocol as relive speaks it, against a client written from criu/page-xfer.c
// (the real `criu lazy-pages` and `criu dump --lazy-pages` are driven by the CR/TR migrations in
// tests/integration/migrate_test.cc).
#include "drivers/criu/page_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "common/file_util.h"
#include "drivers/criu/page_image.h"

namespace relive::criu {
namespace {

using std::chrono::seconds;

struct Iov {
  uint32_t cmd = 0;
  uint64_t nr_pages = 0;
  uint64_t vaddr = 0;
  uint64_t dst_id = 0;
};

// CRIU 4.1's header (u32 nr_pages, 24 bytes) and CRIU 4.2's (u64 nr_pages after padding, 32).
struct Iov41 {
  uint32_t cmd, nr_pages;
  uint64_t vaddr, dst_id;
};
struct Iov42 {
  uint32_t cmd, pad;
  uint64_t nr_pages, vaddr, dst_id;
};
static_assert(sizeof(Iov41) == 24 && sizeof(Iov42) == 32);

constexpr uint32_t kGet = 7, kAddF = 6, kClose = 0x1023, kForceClose = 0x1024;

class PageServerLayoutTest : public ::testing::TestWithParam<PageServerLayout> {
 protected:
  bool v41() const { return GetParam() == PageServerLayout::kCriu41; }
  void send_iov(int fd, const Iov& iov) {
    Iov41 a{iov.cmd, static_cast<uint32_t>(iov.nr_pages), iov.vaddr, iov.dst_id};
    Iov42 b{iov.cmd, 0, iov.nr_pages, iov.vaddr, iov.dst_id};
    const void* p = v41() ? static_cast<const void*>(&a) : &b;
    size_t n = v41() ? sizeof a : sizeof b;
    ASSERT_EQ(::send(fd, p, n, MSG_NOSIGNAL), static_cast<ssize_t>(n));
  }
  Iov read_iov(int fd) {
    Iov out;
    if (v41()) {
      Iov41 a{};
      EXPECT_TRUE(read_exact(fd, &a, sizeof a).ok());
      out = {a.cmd, a.nr_pages, a.vaddr, a.dst_id};
    } else {
      Iov42 b{};
      EXPECT_TRUE(read_exact(fd, &b, sizeof b).ok());
      out = {b.cmd, b.nr_pages, b.vaddr, b.dst_id};
    }
    return out;
  }
};

TEST(PageServerLayout, FollowsTheCriuVersion) {
  EXPECT_EQ(page_server_layout({4, 1, 1}), PageServerLayout::kCriu41);
  EXPECT_EQ(page_server_layout({4, 2, 0}), PageServerLayout::kCriu42);
  EXPECT_EQ(page_server_layout({5, 0, 0}), PageServerLayout::kCriu42);
}

// Every page of process 42 holds its own address in its first 8 bytes, then 0x5a.
Status fill(uint64_t pid, uint64_t vaddr, uint64_t pages, char* out) {
  if (pid != 42) return Status::NotFound("no such process");
  for (uint64_t i = 0; i < pages; ++i) {
    uint64_t at = vaddr + i * 4096;
    std::memset(out + i * 4096, 0x5a, 4096);
    std::memcpy(out + i * 4096, &at, 8);
  }
  return Status::Ok();
}

TEST_P(PageServerLayoutTest, AnswersGetRequestsWithThePagesAndEndsOnClose) {
  auto server = LocalPageServer::start(fill, GetParam());
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  int fd = (*server)->criu_end();
  for (uint64_t vaddr : {0x10000ull, 0x7f0000003000ull}) {
    send_iov(fd, Iov{kGet, 3, vaddr, 42});
    Iov reply = read_iov(fd);
    EXPECT_EQ(reply.cmd & 0xffff, kAddF);
    EXPECT_EQ(reply.cmd >> 16, kPePresent);
    EXPECT_EQ(reply.nr_pages, 3u);
    EXPECT_EQ(reply.vaddr, vaddr);
    EXPECT_EQ(reply.dst_id, 42u);
    std::string pages(3 * 4096, '\0');
    ASSERT_TRUE(read_exact(fd, pages.data(), pages.size()).ok());
    for (int i = 0; i < 3; ++i) {
      uint64_t at;
      std::memcpy(&at, pages.data() + i * 4096, 8);
      EXPECT_EQ(at, vaddr + i * 4096);
      EXPECT_EQ(pages[i * 4096 + 100], 0x5a);
    }
  }
  send_iov(fd, Iov{kForceClose, 0, 0, 0});
  int32_t status = -1;
  ASSERT_TRUE(read_exact(fd, &status, sizeof status).ok());
  EXPECT_EQ(status, 0);
  EXPECT_TRUE((*server)->wait(seconds(30)).ok());
  EXPECT_EQ((*server)->pages_served(), 6u);
}

// A page the reader cannot give must fail CRIU's daemon (a hang-up), never leave it waiting.
TEST_P(PageServerLayoutTest, AReaderFailureHangsUpOnCriu) {
  auto server = LocalPageServer::start(fill, GetParam());
  ASSERT_TRUE(server.ok());
  int fd = (*server)->criu_end();
  send_iov(fd, Iov{kGet, 1, 0x10000, 7});  // no process 7
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);
  Status s = (*server)->wait(seconds(30));
  EXPECT_EQ(s.code(), Status::Code::kNotFound) << s.to_string();
}

TEST_P(PageServerLayoutTest, MalformedRequestsEndTheService) {
  for (Iov bad : {Iov{99, 1, 0, 42}, Iov{kGet, 0, 0x1000, 42}, Iov{kGet, 1, 0x1001, 42},
                  Iov{kGet, 1u << 30, 0x1000, 42}}) {
    auto server = LocalPageServer::start(fill, GetParam());
    ASSERT_TRUE(server.ok());
    int fd = (*server)->criu_end();
    send_iov(fd, bad);
    char c;
    EXPECT_EQ(::recv(fd, &c, 1, 0), 0) << "command " << bad.cmd;
    EXPECT_EQ((*server)->wait(seconds(30)).code(), Status::Code::kCorruption);
  }
}

TEST_P(PageServerLayoutTest, AHangUpWithoutCloseIsAnError) {
  auto server = LocalPageServer::start(fill, GetParam());
  ASSERT_TRUE(server.ok());
  Iov42 half{kGet, 0, 1, 0, 42};
  ASSERT_EQ(::send((*server)->criu_end(), &half, 10, MSG_NOSIGNAL), 10);
  (*server)->close_criu_end();
  EXPECT_FALSE((*server)->wait(seconds(30)).ok());
}

// The source side: what `criu dump --lazy-pages --ps-socket` expects when told to close.
TEST_P(PageServerLayoutTest, ClosingTheDumpsPageServerSendsCloseAndChecksTheAnswer) {
  for (int32_t answer : {0, -1}) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    std::thread criu([&] {
      Iov got = read_iov(sv[1]);
      EXPECT_EQ(got.cmd, kClose);
      ::send(sv[1], &answer, sizeof answer, MSG_NOSIGNAL);
    });
    Status s = close_page_server(sv[0], GetParam());
    criu.join();
    EXPECT_EQ(s.ok(), answer == 0) << s.to_string();
    ::close(sv[0]);
    ::close(sv[1]);
  }
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ::close(sv[1]);  // CRIU died
  EXPECT_FALSE(close_page_server(sv[0], GetParam()).ok());
  ::close(sv[0]);
}

INSTANTIATE_TEST_SUITE_P(Criu, PageServerLayoutTest,
                         ::testing::Values(PageServerLayout::kCriu41, PageServerLayout::kCriu42),
                         [](const auto& info) {
                           return info.param == PageServerLayout::kCriu41 ? "v4_1" : "v4_2";
                         });

}  // namespace
}  // namespace relive::criu
