// Stop-copy: freeze, dump everything, ship it, restore. The baseline every other strategy is
// measured against.
#include <fmt/format.h>

#include <filesystem>

#include "drivers/criu/criu_binary.h"
#include "drivers/criu/criu_compat.h"
#include "migrate/source.h"
#include "transfer/file_transfer.h"

namespace relive::migrate {

Result<criu::DumpOptions> base_dump_options(const Source& s) {
  criu::DumpOptions d;
  d.pid = s.options().pid;
  d.images_dir = s.images_dir();
  d.tcp_established = s.options().tcp_established;
  d.run.timeout = s.options().criu_timeout;
  d.extra_args = {"--network-lock", "skip"};
  RELIVE_ASSIGN_OR_RETURN(std::string criu, criu::find_criu());
  std::string dir = std::filesystem::path(s.images_dir()).parent_path().string();
  RELIVE_ASSIGN_OR_RETURN(d.run.criu, criu::criu_with_compat(dir, criu));
  return d;
}

Result<std::vector<std::string>> image_files(const std::string& images_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(images_dir, ec)) {
    std::string n = e.path().filename().string();
    if (e.is_regular_file() && n.size() > 4 && n.ends_with(".img")) out.push_back(n);
  }
  if (ec) return Status::IoError("list " + images_dir + ": " + ec.message());
  return out;
}

Status ship_images(Source* s, const std::function<bool(const std::string&)>& skip) {
  RELIVE_ASSIGN_OR_RETURN(auto files, image_files(s->images_dir()));
  if (skip) std::erase_if(files, skip);
  s->progress(fmt::format("phase=images files={}", files.size()));
  RELIVE_ASSIGN_OR_RETURN(uint64_t bytes,
                          transfer::send_files(&s->link(), "images", s->images_dir(), files));
  s->add_bytes("images", bytes);
  return Status::Ok();
}

Status run_stop_copy(Source* s) {
  RELIVE_ASSIGN_OR_RETURN(criu::DumpOptions d, base_dump_options(*s));
  d.leave_stopped = true;  // killed only after the destination commits
  RELIVE_RETURN_IF_ERROR(s->freeze_begins());
  s->progress("phase=dump");
  RELIVE_RETURN_IF_ERROR(criu::dump(d).status());
  s->tree_left_stopped();
  RELIVE_RETURN_IF_ERROR(s->release_address());
  RELIVE_RETURN_IF_ERROR(ship_images(s));
  s->report().rounds = 1;
  return s->switch_over(migration::Restore{});
}

}  // namespace relive::migrate
