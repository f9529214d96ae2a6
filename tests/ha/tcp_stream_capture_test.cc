// read_tcp_stream() on a real connection, and patching a real CRIU tcp-stream image with it: a
// child holds a loopback connection whose peer (this process) reads slowly, so both of the
// child's queues hold data; CRIU dumps it (--leave-running --tcp-established); more data moves;
// the child is stopped and captured; the patched base image must describe the connection as it
// is now, and CRIU restores it so that the stream carries on. Needs root; skipped without CRIU.
#include "ha/tcp_stream_capture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "common/file_util.h"
#include "common/scoped_fd.h"
#include "drivers/criu/criu.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"

namespace relive::ha {
namespace {

using criu::TcpStreamImage;
using criu::TcpStreamState;
using std::chrono::milliseconds;

constexpr int kChildFd = 10;
constexpr size_t kChunk[] = {200000, 50000};  // what the child writes in each round

// The child's outgoing stream: byte i of it.
char stream_byte(uint64_t i) { return static_cast<char>(i * 131 + i / 251); }
std::string stream_bytes(uint64_t from, uint64_t to) {
  std::string s;
  for (uint64_t i = from; i < to; ++i) s.push_back(stream_byte(i));
  return s;
}
std::string inbound(size_t n, char seed) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(seed + i % 61));
  return s;
}

// The subject: connects to `port`, then for each round writes the round's chunk (into a send
// buffer large enough to take it at once), stops itself, and waits for SIGUSR1. It never reads.
[[noreturn]] void child_main(uint16_t port) {
  ::setsid();
  int null = ::open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  int big = 8 << 20;
  ::setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ::_exit(2);
  ::dup2(s, kChildFd);
  ::close_range(3, kChildFd - 1, 0);
  ::close_range(kChildFd + 1, ~0u, 0);
  ::fcntl(kChildFd, F_SETFL, O_NONBLOCK);
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, nullptr);
  uint64_t offset = 0;
  for (size_t round = 0;; ++round) {
    std::string chunk = stream_bytes(offset, offset + kChunk[round % 2]);
    if (::write(kChildFd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size()))
      ::_exit(3);
    offset += chunk.size();
    ::raise(SIGSTOP);
    int sig;
    sigwait(&usr1, &sig);
  }
}

int inq(int fd) {
  int n = -1;
  ::ioctl(fd, SIOCINQ, &n);
  return n;
}

// Waits until the loopback transfer has stopped: the peer's receive queue unchanged for 300 ms.
void settle(int peer) {
  int last = -1, same = 0;
  while (same < 6) {
    std::this_thread::sleep_for(milliseconds(50));
    int now = inq(peer);
    same = now == last ? same + 1 : 0;
    last = now;
  }
}

Result<std::string> only_tcp_stream_image(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return PosixError("open " + dir, errno);
  std::string found;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("tcp-stream-", 0) == 0) found = dir + "/" + name, ++n;
  }
  ::closedir(d);
  if (n != 1) return Status::NotFound(dir + " does not hold exactly one tcp-stream image");
  return found;
}

class TcpStreamCaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto criu = criu::find_criu();
    if (!criu.ok() && criu.status().code() == Status::Code::kNotFound)
      GTEST_SKIP() << criu.status().to_string();
    ASSERT_TRUE(criu.ok()) << criu.status().to_string();
    ASSERT_EQ(::geteuid(), 0u) << "CRIU and TCP_REPAIR need root";
    char tmpl[] = "/tmp/relive-tcp-stream-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto wrapped = criu::criu_with_compat(dir_, *criu);
    ASSERT_TRUE(wrapped.ok()) << wrapped.status().to_string();
    criu_ = *wrapped;
  }
  void TearDown() override {
    for (pid_t pid : {child_, restored_})
      if (pid > 0 && ::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
    if (!dir_.empty()) (void)remove_tree(dir_);
  }

  // Starts the child and accepts its connection into peer_, with a small receive buffer so that
  // most of what the child writes stays in its send queue.
  void connect_child() {
    ScopedFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int small = 4096;
    ASSERT_EQ(::setsockopt(listener.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
    child_ = ::fork();
    if (child_ == 0) child_main(ntohs(a.sin_port));
    peer_.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(peer_.valid());
    written_ = kChunk[0];
    wait_stopped();
  }
  void wait_stopped(pid_t pid = -1) {
    pid = pid > 0 ? pid : child_;
    int ws = 0;
    ASSERT_EQ(::waitpid(pid, &ws, WUNTRACED), pid);
    ASSERT_TRUE(WIFSTOPPED(ws)) << "child status " << ws;
  }
  void resume() {
    ASSERT_EQ(::kill(child_, SIGCONT), 0);
    int ws = 0;
    ASSERT_EQ(::waitpid(child_, &ws, WCONTINUED), child_);
  }
  void send_to_child(const std::string& bytes) {
    ASSERT_EQ(::write(peer_.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // Reads `n` bytes of the child's stream and checks them.
  void peer_read(size_t n) {
    std::string buf(n, '\0');
    for (size_t got = 0; got < n;) {
      pollfd p{peer_.get(), POLLIN, 0};
      ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the stream stalled after " << got << " bytes";
      ssize_t r = ::read(peer_.get(), buf.data() + got, n - got);
      ASSERT_GT(r, 0);
      got += static_cast<size_t>(r);
    }
    ASSERT_EQ(buf, stream_bytes(read_, read_ + n)) << "at stream offset " << read_;
    read_ += n;
  }
  uint64_t peer_received() { return read_ + static_cast<uint64_t>(inq(peer_.get())); }

  void dump_base(const std::string& images) {
    criu::DumpOptions d;
    d.pid = child_;
    d.images_dir = images;
    d.leave_running = true;
    d.tcp_established = true;
    d.extra_args = {"--network-lock", "skip"};
    d.run.criu = criu_;
    auto st = criu::dump(d);
    ASSERT_TRUE(st.ok()) << st.status().to_string();
  }

  // Ends the child as CRIU ends a dumped tree: its socket closes in repair mode, so the peer
  // sees neither FIN nor RST.
  void kill_silently() {
    ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child_, 0)));
    ScopedFd sock(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), kChildFd, 0)));
    ASSERT_TRUE(sock.valid());
    int one = 1;
    ASSERT_EQ(::setsockopt(sock.get(), SOL_TCP, TCP_REPAIR, &one, sizeof one), 0);
    ASSERT_EQ(::kill(child_, SIGKILL), 0);
    ASSERT_EQ(::waitpid(child_, nullptr, 0), child_);
    child_ = -1;
  }
  void restore(const std::string& images) {
    criu::RestoreOptions r;
    r.images_dir = images;
    r.as_child = true;
    r.tcp_established = true;
    r.extra_args = {"--network-lock", "skip"};
    r.run.criu = criu_;
    auto pid = criu::restore(r);
    ASSERT_TRUE(pid.ok()) << pid.status().to_string();
    restored_ = *pid;
  }

  std::string dir_, criu_;
  pid_t child_ = -1, restored_ = -1;
  ScopedFd peer_;
  uint64_t written_ = 0, read_ = 0;
};

TEST_F(TcpStreamCaptureTest, PatchedBaseImageRestoresTheConnectionAsItIsNow) {
  ASSERT_NO_FATAL_FAILURE(connect_child());
  std::string a = inbound(3000, 'A'), b = inbound(5000, 'b');
  ASSERT_NO_FATAL_FAILURE(send_to_child(a));
  ASSERT_NO_FATAL_FAILURE(resume());
  settle(peer_.get());
  std::string images = dir_ + "/base";
  ASSERT_NO_FATAL_FAILURE(dump_base(images));
  auto path = only_tcp_stream_image(images);
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  auto raw = read_file(*path);
  ASSERT_TRUE(raw.ok());
  auto base = criu::decode_tcp_stream_image(*raw);
  ASSERT_TRUE(base.ok()) << base.status().to_string();
  ASSERT_EQ(base->stream.inq, a);
  uint64_t base_received = peer_received();
  ASSERT_EQ(base->stream.outq, stream_bytes(base_received, written_));

  // More data moves both ways; then the child writes its next chunk and stops.
  ASSERT_NO_FATAL_FAILURE(send_to_child(b));
  ASSERT_NO_FATAL_FAILURE(peer_read(20000));
  ASSERT_EQ(::kill(child_, SIGUSR1), 0);
  ASSERT_NO_FATAL_FAILURE(wait_stopped());
  written_ += kChunk[1];
  settle(peer_.get());

  auto t0 = std::chrono::steady_clock::now();
  auto now = read_tcp_stream(child_, kChildFd);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(now.ok()) << now.status().to_string();
  std::printf("[ timing ] read_tcp_stream: %.1f us for %zu+%zu queued bytes\n",
              std::chrono::duration<double, std::micro>(took).count(), now->inq.size(),
              now->outq.size());
  // Reading left the socket as it was: a second read sees the same (the clock aside).
  auto again = read_tcp_stream(child_, kChildFd);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->inq_seq, now->inq_seq);
  EXPECT_EQ(again->outq_seq, now->outq_seq);
  EXPECT_EQ(again->window, now->window);
  EXPECT_EQ(again->outq, now->outq);
  EXPECT_EQ(now->tcp_state, TCP_ESTABLISHED);

  auto patched = criu::patch_tcp_stream_image(*raw, *now);
  ASSERT_TRUE(patched.ok()) << patched.status().to_string();
  auto img = criu::decode_tcp_stream_image(*patched);
  ASSERT_TRUE(img.ok()) << img.status().to_string();
  EXPECT_EQ(img->stream.inq_seq, base->stream.inq_seq + b.size());
  EXPECT_EQ(img->stream.inq, a + b);
  EXPECT_EQ(img->stream.outq_seq, base->stream.outq_seq + kChunk[1]);
  uint64_t received = peer_received();
  EXPECT_EQ(img->stream.outq, stream_bytes(received, written_));
  // snd_una moved by what the peer has received since the base.
  uint32_t una = img->stream.outq_seq - static_cast<uint32_t>(img->stream.outq.size());
  uint32_t base_una = base->stream.outq_seq - static_cast<uint32_t>(base->stream.outq.size());
  EXPECT_EQ(una, base_una + static_cast<uint32_t>(received - base_received));
  EXPECT_LE(img->stream.unsq_len, img->stream.outq.size());
  EXPECT_EQ(img->mss_clamp, base->mss_clamp);
  EXPECT_EQ(img->snd_wscale, base->snd_wscale);
  EXPECT_EQ(img->rcv_wscale, base->rcv_wscale);
  ASSERT_TRUE(write_file_atomic(*path, *patched).ok());

  // CRIU restores the base dump with the patched image: the peer gets the rest of the stream,
  // and what it sends now lands after what the child had not read.
  ASSERT_NO_FATAL_FAILURE(kill_silently());
  ASSERT_NO_FATAL_FAILURE(restore(images));
  ASSERT_NO_FATAL_FAILURE(peer_read(written_ - read_));
  std::string c = inbound(1000, 'c');
  ASSERT_NO_FATAL_FAILURE(send_to_child(c));
  ASSERT_EQ(::kill(restored_, SIGSTOP), 0);
  ASSERT_NO_FATAL_FAILURE(wait_stopped(restored_));
  settle(peer_.get());
  auto after = read_tcp_stream(restored_, kChildFd);
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_EQ(after->inq, a + b + c);
  EXPECT_EQ(after->inq_seq, now->inq_seq + c.size());
  EXPECT_EQ(after->outq_seq, now->outq_seq);
  EXPECT_TRUE(after->outq.empty());
}

TEST_F(TcpStreamCaptureTest, NotATcpSocket) {
  ASSERT_NO_FATAL_FAILURE(connect_child());
  auto st = read_tcp_stream(child_, 0);  // /dev/null
  EXPECT_EQ(st.status().code(), Status::Code::kInvalidArgument) << st.status().to_string();
  st = read_tcp_stream(child_, 99);
  EXPECT_FALSE(st.ok());
}

}  // namespace
}  // namespace relive::ha
