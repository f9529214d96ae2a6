// Post-copy: dump everything but the memory, restore at the destination at once, and let
// CRIU's lazy-pages daemon there pull the memory from the source's page server (on fault, and
// in the background). The downtime no longer grows with the memory size; the price is that
// once the destination runs, the source's memory is the only copy until the last page arrives.
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>

#include "common/file_util.h"
#include "common/scoped_fd.h"
#include "drivers/criu/criu_process.h"
#include "drivers/criu/page_image.h"
#include "migrate/criu_tls.h"
#include "migrate/page_server_relay.h"
#include "migrate/source.h"
#include "transfer/file_transfer.h"

namespace relive::migrate {

// A free TCP port for CRIU's page server (bound and released: CRIU binds it right after).
Result<uint16_t> free_port() {
  ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return PosixError("socket", errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    return PosixError("bind", errno);
  socklen_t len = sizeof a;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return PosixError("getsockname", errno);
  return ntohs(a.sin_port);
}

namespace {

// The memory CRIU's page server sent after the switch-over: every lazy page of the dump, raw
// (CRIU's page-server protocol does not compress), so the report's bytes are complete.
uint64_t lazy_bytes(const std::string& images_dir) {
  uint64_t pages = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(images_dir, ec)) {
    std::string n = e.path().filename().string();
    if (!n.starts_with("pagemap-") || n.starts_with("pagemap-shmem")) continue;
    auto bytes = read_file(e.path().string());
    if (!bytes.ok()) continue;
    auto image = criu::decode_pagemap_image(*bytes);
    if (!image.ok()) continue;
    for (const auto& entry : image->entries)
      if ((entry.flags & criu::kPeLazy) && !entry.present()) pages += entry.nr_pages;
  }
  return pages * criu::kImagePageSize;
}

}  // namespace

Status run_postcopy(Source* s) {
  criu::LazyDumpOptions lo;
  RELIVE_ASSIGN_OR_RETURN(lo.dump, base_dump_options(*s));
  // --max-bandwidth: the page server behind a metering relay (migrate/page_server_relay.h).
  RELIVE_ASSIGN_OR_RETURN(PageServerEndpoint pages, page_server_endpoint(s));
  lo.address = pages.criu_address;
  lo.port = pages.criu_port;
  lo.tls_args = criu_tls_args(s->options().tls_dir, s->options().node_name, s->options().insecure);
  RELIVE_RETURN_IF_ERROR(s->freeze_begins());
  s->progress("phase=dump (lazy)");
  RELIVE_ASSIGN_OR_RETURN(criu::CriuProcess dump, criu::start_lazy_dump(lo));
  s->tree_owned_by_criu();
  RELIVE_RETURN_IF_ERROR(dump.wait_ready(s->options().criu_timeout));
  RELIVE_RETURN_IF_ERROR(s->release_address());
  RELIVE_RETURN_IF_ERROR(ship_images(s));
  s->report().rounds = 1;
  migration::Restore r;
  r.lazy_pages_port = pages.announced_port;
  RELIVE_RETURN_IF_ERROR(s->switch_over(r));
  // The destination runs; CRIU here serves the rest of the memory and then ends the tree.
  s->progress("phase=pages (post-copy)");
  Status served = dump.wait(std::chrono::minutes(30));
  s->add_bytes("lazy_pages", lazy_bytes(s->images_dir()));
  Status ended = s->end_source();
  if (!served.ok()) return served.with_context("post-copy page transfer after the switch-over");
  return ended;
}

}  // namespace relive::migrate
