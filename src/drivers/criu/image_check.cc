#include "drivers/criu/image_check.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include "common/file_util.h"
#include "drivers/criu/page_image.h"

namespace relive::criu {

Result<PagemapSummary> parse_pagemap_image(std::string_view image) {
  RELIVE_ASSIGN_OR_RETURN(PagemapImage decoded, decode_pagemap_image(image));
  PagemapSummary summary;
  summary.pages_id = decoded.pages_id;
  for (const PagemapEntry& e : decoded.entries)
    if (e.present()) summary.present_pages += e.nr_pages;
  return summary;
}

Status check_pages_complete(const std::string& images_dir) {
  namespace fs = std::filesystem;
  std::map<uint32_t, uint64_t> expected;  // pages_id -> pages
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(images_dir, ec)) {
    std::string name = f.path().filename().string();
    if (name.rfind("pagemap-", 0) != 0 || !name.ends_with(".img")) continue;
    RELIVE_ASSIGN_OR_RETURN(std::string image, read_file(f.path().string()));
    auto summary = parse_pagemap_image(image);
    if (!summary.ok()) return summary.status().with_context(f.path().string());
    expected[summary->pages_id] += summary->present_pages;
  }
  if (ec) return Status::IoError("list " + images_dir + ": " + ec.message());
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  for (const auto& [id, pages] : expected) {
    std::string path = images_dir + "/pages-" + std::to_string(id) + ".img";
    uint64_t size = fs::file_size(path, ec);
    if (ec) size = 0;
    if (size < pages * page) {
      return Status::Corruption(path + " holds " + std::to_string(size) + " bytes, but the " +
                                "pagemaps list " + std::to_string(pages * page) +
                                " bytes of pages in it (truncated images?)");
    }
  }
  return Status::Ok();
}

}  // namespace relive::criu
