#include "ha/epoch_shipper.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "common/scoped_fd.h"
#include "transfer/file_transfer.h"
#include "transfer/page_cache.h"

namespace relive::ha {
namespace m = relive::migration;

namespace {

Result<uint64_t> send_pages(transfer::Link* link, const CapturedEpoch& e) {
  RELIVE_RETURN_IF_ERROR(link->send(m::PageRound{0, e.changed_pages}));
  transfer::PageSender out(&link->channel());
  std::string buf;
  ScopedFd fd;
  std::string open_file;
  for (const PageRun& r : e.runs) {
    if (r.file != open_file) {
      fd = ScopedFd(::open(r.file.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd.valid()) return PosixError("open " + r.file, errno);
      open_file = r.file;
    }
    // A run can be all of a large mapping (a full epoch): read and send it a slice at a time,
    // so that the backup hears from us steadily and no run is held in memory whole.
    constexpr uint64_t kSlicePages = 256;
    for (uint64_t done = 0; done < r.pages; done += kSlicePages) {
      uint64_t n = std::min<uint64_t>(kSlicePages, r.pages - done);
      buf.resize(n * 4096);
      off_t at = static_cast<off_t>(r.offset + done * 4096);
      if (::pread(fd.get(), buf.data(), buf.size(), at) != static_cast<ssize_t>(buf.size())) {
        return PosixError("read " + r.file, errno);
      }
      RELIVE_RETURN_IF_ERROR(out.add(r.pid, r.vaddr + done * 4096, buf));
    }
  }
  RELIVE_RETURN_IF_ERROR(out.finish());
  RELIVE_RETURN_IF_ERROR(link->wait_ack().status());
  return out.wire_bytes();
}

}  // namespace

Result<ShippedEpoch> ship_epoch(transfer::Link* link, const CapturedEpoch& e,
                                const std::string& primary) {
  ShippedEpoch out;
  RELIVE_RETURN_IF_ERROR(link->call(m::HaEpoch{e.number, e.full, primary, e.patch}).status());
  RELIVE_ASSIGN_OR_RETURN(uint64_t image_bytes,
                          transfer::send_files(link, "images", e.images_dir, e.image_files));
  RELIVE_ASSIGN_OR_RETURN(uint64_t page_bytes, send_pages(link, e));
  uint64_t content = dir_change_bytes(e.dir);
  RELIVE_RETURN_IF_ERROR(link->send(m::HaDir{static_cast<uint32_t>(e.dir.size()), content}));
  RELIVE_RETURN_IF_ERROR(send_dir_changes(&link->channel(), e.dir));
  RELIVE_RETURN_IF_ERROR(link->wait_ack().status());
  RELIVE_RETURN_IF_ERROR(link->call(m::HaCommit{e.number}).status());
  out.wire_bytes = image_bytes + page_bytes + content;
  return out;
}

}  // namespace relive::ha
