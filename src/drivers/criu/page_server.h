// CRIU's page-server protocol (criu/page-xfer.c), spoken by relive on a connected socket handed
// to CRIU with --ps-socket, so that no TCP port is ever opened for it.
//
// Each message starts with a header {u32 cmd; nr_pages; u64 vaddr; u64 dst_id} (little-endian;
// the command's flags in cmd's upper 16 bits), where nr_pages is a u32 up to CRIU 4.1 (24 bytes)
// and a u64 after padding from CRIU 4.2 on (32 bytes): see PageServerLayout. A lazy-pages daemon
// asks for pages with PS_IOV_GET {nr_pages, vaddr, dst_id = the pid in the images} and is
// answered with PS_IOV_ADD_F|PE_PRESENT {the same fields} followed by nr_pages raw pages; it
// ends with PS_IOV_CLOSE or PS_IOV_FORCE_CLOSE, answered with an int32 0.
//
// Two uses in CR/TR-Motion:
// - the source's `criu dump --lazy-pages --ps-socket` writes every image but the lazy pages and
//   then waits as a page server: close_page_server() tells it that nobody will fetch from it,
//   so it leaves the tree stopped and exits (the dump never copied the memory);
// - the destination's LocalPageServer feeds `criu lazy-pages --page-server --ps-socket` from the
//   replayed process's memory, so the restore starts without a pages image being written.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "common/scoped_fd.h"
#include "drivers/criu/criu_binary.h"
#include "relive/result.h"

namespace relive::criu {

// The header's layout; the protocol carries no version, so it follows the CRIU at the other end.
enum class PageServerLayout { kCriu41, kCriu42 };
PageServerLayout page_server_layout(const CriuVersion& version);

// Tells the page server on `fd` (a `criu dump --lazy-pages`) that the transfer is over and waits
// for its answer. IoError when it hung up or answered with a failure.
Status close_page_server(int fd, PageServerLayout layout);

// Serves PS_IOV_GET requests on one end of a socket pair with pages from `read` until CRIU
// closes (PS_IOV_CLOSE / PS_IOV_FORCE_CLOSE) or hangs up. A request that cannot be served (the
// reader fails, a malformed header) ends the service with that error: CRIU's daemon then fails
// the restore instead of mapping wrong memory.
class LocalPageServer {
 public:
  // Fills `out` (pages * 4096 bytes) with the pages at `vaddr` of the process the images call
  // `image_pid`.
  using Reader =
      std::function<Status(uint64_t image_pid, uint64_t vaddr, uint64_t pages, char* out)>;

  static Result<std::unique_ptr<LocalPageServer>> start(Reader read, PageServerLayout layout);
  ~LocalPageServer();
  LocalPageServer(const LocalPageServer&) = delete;
  LocalPageServer& operator=(const LocalPageServer&) = delete;

  // CRIU's end of the socket pair: give it to the daemon (SpawnOptions::fds), then drop it here
  // with close_criu_end() so that the service sees CRIU's exit as a hang-up.
  int criu_end() const { return criu_end_.get(); }
  void close_criu_end() { criu_end_.reset(); }

  // Waits for the service to end (it ends when CRIU closes); its outcome. Ok only when CRIU
  // said it was done. Stops the service after `timeout` (the daemon is then cut off).
  Status wait(std::chrono::milliseconds timeout);
  uint64_t pages_served() const { return pages_served_.load(); }

 private:
  LocalPageServer(ScopedFd ours, ScopedFd criu_end, Reader read, PageServerLayout layout);
  void serve();

  ScopedFd ours_;
  ScopedFd criu_end_;
  Reader read_;
  PageServerLayout layout_;
  std::atomic<uint64_t> pages_served_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  Status result_;
  std::thread thread_;
};

}  // namespace relive::criu
