#include "drivers/criu/page_server.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/file_util.h"
#include "common/logging.h"
#include "drivers/criu/page_image.h"

namespace relive::criu {
namespace {

// criu/page-xfer.c
constexpr uint32_t kPsIovAddF = 6;
constexpr uint32_t kPsIovGet = 7;
constexpr uint32_t kPsIovClose = 0x1023;
constexpr uint32_t kPsIovForceClose = 0x1024;
constexpr uint32_t kPsCmdBits = 16;
constexpr uint32_t kPsCmdMask = (1u << kPsCmdBits) - 1;
// CRIU's daemon asks for at most a few MiB at a time; anything larger is not CRIU.
constexpr uint64_t kMaxRequestPages = 1u << 18;

struct Iov {
  uint32_t cmd = 0;
  uint64_t nr_pages = 0;
  uint64_t vaddr = 0;
  uint64_t dst_id = 0;
};

size_t iov_size(PageServerLayout layout) { return layout == PageServerLayout::kCriu41 ? 24 : 32; }

// CRIU's struct page_server_iov, as the layout lays it out.
std::string encode(const Iov& iov, PageServerLayout layout) {
  std::string out(iov_size(layout), '\0');
  std::memcpy(out.data(), &iov.cmd, 4);
  size_t at = 4;
  if (layout == PageServerLayout::kCriu41) {
    uint32_t n = static_cast<uint32_t>(iov.nr_pages);
    std::memcpy(out.data() + at, &n, 4);
    at += 4;
  } else {
    std::memcpy(out.data() + 8, &iov.nr_pages, 8);
    at = 16;
  }
  std::memcpy(out.data() + at, &iov.vaddr, 8);
  std::memcpy(out.data() + at + 8, &iov.dst_id, 8);
  return out;
}

Iov decode(const char* in, PageServerLayout layout) {
  Iov iov;
  std::memcpy(&iov.cmd, in, 4);
  size_t at = 4;
  if (layout == PageServerLayout::kCriu41) {
    uint32_t n;
    std::memcpy(&n, in + at, 4);
    iov.nr_pages = n;
    at += 4;
  } else {
    std::memcpy(&iov.nr_pages, in + 8, 8);
    at = 16;
  }
  std::memcpy(&iov.vaddr, in + at, 8);
  std::memcpy(&iov.dst_id, in + at + 8, 8);
  return iov;
}

// recv() of exactly `len` bytes; false on a clean hang-up before the first byte.
Result<bool> recv_exact(int fd, void* buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::recv(fd, static_cast<char*>(buf) + got, len - got, MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("page server: receive", errno);
    if (n == 0) {
      if (got == 0) return false;
      return Status::Corruption("page server: the peer hung up mid-message");
    }
    got += static_cast<size_t>(n);
  }
  return true;
}

Status send_exact(int fd, const void* buf, size_t len) {
  size_t sent = 0;
  while (sent < len) {
    ssize_t n = ::send(fd, static_cast<const char*>(buf) + sent, len - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("page server: send", errno);
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

PageServerLayout page_server_layout(const CriuVersion& version) {
  // CRIU 4.2 widened nr_pages to 64 bits (commit "pagemap: use unsigned long for page counts").
  return version.at_least(4, 2) ? PageServerLayout::kCriu42 : PageServerLayout::kCriu41;
}

Status close_page_server(int fd, PageServerLayout layout) {
  Iov close;
  close.cmd = kPsIovClose;
  std::string msg = encode(close, layout);
  RELIVE_RETURN_IF_ERROR(send_exact(fd, msg.data(), msg.size()));
  int32_t status = -1;
  RELIVE_ASSIGN_OR_RETURN(bool got, recv_exact(fd, &status, sizeof status));
  if (!got) return Status::IoError("CRIU's page server hung up instead of closing");
  if (status != 0)
    return Status::IoError(fmt::format("CRIU's page server closed with status {}", status));
  return Status::Ok();
}

Result<std::unique_ptr<LocalPageServer>> LocalPageServer::start(Reader read,
                                                                PageServerLayout layout) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return PosixError("socketpair", errno);
  ScopedFd ours(sv[0]), theirs(sv[1]);
  std::unique_ptr<LocalPageServer> s(
      new LocalPageServer(std::move(ours), std::move(theirs), std::move(read), layout));
  s->thread_ = std::thread(&LocalPageServer::serve, s.get());
  return s;
}

LocalPageServer::LocalPageServer(ScopedFd ours, ScopedFd criu_end, Reader read,
                                 PageServerLayout layout)
    : ours_(std::move(ours)),
      criu_end_(std::move(criu_end)),
      read_(std::move(read)),
      layout_(layout) {}

LocalPageServer::~LocalPageServer() {
  if (thread_.joinable()) {
    ::shutdown(ours_.get(), SHUT_RDWR);  // wakes a service still waiting for CRIU
    thread_.join();
  }
}

void LocalPageServer::serve() {
  auto run = [&]() -> Status {
    std::string buf;
    char header[32];
    for (;;) {
      RELIVE_ASSIGN_OR_RETURN(bool got, recv_exact(ours_.get(), header, iov_size(layout_)));
      if (!got) return Status::IoError("CRIU's lazy-pages daemon hung up without closing");
      Iov req = decode(header, layout_);
      uint32_t cmd = req.cmd & kPsCmdMask;
      if (cmd == kPsIovClose || cmd == kPsIovForceClose) {
        int32_t ok = 0;
        return send_exact(ours_.get(), &ok, sizeof ok);
      }
      if (cmd != kPsIovGet)
        return Status::Corruption(fmt::format("page server: unexpected command {:#x}", req.cmd));
      if (req.nr_pages == 0 || req.nr_pages > kMaxRequestPages || req.vaddr % kImagePageSize != 0)
        return Status::Corruption(
            fmt::format("page server: bad request for {} pages at {:#x}", req.nr_pages, req.vaddr));
      buf.resize(req.nr_pages * kImagePageSize);
      RELIVE_RETURN_IF_ERROR(read_(req.dst_id, req.vaddr, req.nr_pages, buf.data())
                                 .with_context(fmt::format("page server: {} pages at {:#x}",
                                                           req.nr_pages, req.vaddr)));
      Iov reply = req;
      reply.cmd = (kPePresent << kPsCmdBits) | kPsIovAddF;
      std::string head = encode(reply, layout_);
      RELIVE_RETURN_IF_ERROR(send_exact(ours_.get(), head.data(), head.size()));
      RELIVE_RETURN_IF_ERROR(send_exact(ours_.get(), buf.data(), buf.size()));
      pages_served_ += req.nr_pages;
    }
  };
  Status st = run();
  if (!st.ok()) {
    RELIVE_LOG_WARN("{}", st.to_string());
    ::shutdown(ours_.get(), SHUT_RDWR);  // CRIU sees the hang-up and fails, never waits on
  }
  std::lock_guard<std::mutex> lock(mu_);
  result_ = st;
  done_ = true;
  cv_.notify_all();
}

Status LocalPageServer::wait(std::chrono::milliseconds timeout) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return done_; })) {
      lock.unlock();
      ::shutdown(ours_.get(), SHUT_RDWR);
      if (thread_.joinable()) thread_.join();
      return Status::IoError(
          fmt::format("page server: CRIU still fetching after {} ms", timeout.count()));
    }
  }
  if (thread_.joinable()) thread_.join();
  return result_;
}

}  // namespace relive::criu
