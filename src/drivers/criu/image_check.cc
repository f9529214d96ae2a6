#include "drivers/criu/image_check.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include "common/file_util.h"
#include "drivers/criu/pb_reader.h"

namespace relive::criu {
namespace {

// From CRIU's criu/include/magic.h and criu/include/pagemap.h.
constexpr uint32_t kImgCommonMagic = 0x54564319;
constexpr uint32_t kPagemapMagic = 0x56084025;
constexpr uint32_t kPeParent = 1u << 0;
constexpr uint32_t kPePresent = 1u << 2;
// A bound far above any real process, so that sums cannot overflow.
constexpr uint64_t kMaxPages = uint64_t{1} << 40;

// Field numbers from images/pagemap.proto.
enum : uint32_t { kHeadPagesId = 1 };
enum : uint32_t { kEntryNrPages = 2, kEntryInParent = 3, kEntryFlags = 4 };

struct Entry {
  uint64_t nr_pages = 0;
  bool in_parent = false;
  bool has_flags = false;
  uint32_t flags = 0;
  // Images without flags predate them: their pages are in the parent or here (as CRIU reads them).
  bool present() const { return has_flags ? (flags & kPePresent) != 0 : !in_parent; }
};

bool no_nested(uint32_t, std::string_view) { return true; }

bool parse_entry(std::string_view m, Entry* e) {
  return pb::walk(
      m,
      [e](uint32_t f, uint64_t v) {
        if (f == kEntryNrPages) e->nr_pages = v;
        if (f == kEntryInParent) e->in_parent = v != 0;
        if (f == kEntryFlags) {
          e->has_flags = true;
          e->flags = static_cast<uint32_t>(v);
        }
      },
      no_nested);
}

// The offset of the first object after the magic(s); old images carry no IMG_COMMON_MAGIC.
Result<size_t> skip_magic(std::string_view image) {
  if (image.size() >= 8 && pb::le32(image, 0) == kImgCommonMagic &&
      pb::le32(image, 4) == kPagemapMagic) {
    return size_t{8};
  }
  if (image.size() >= 4 && pb::le32(image, 0) == kPagemapMagic) return size_t{4};
  return Status::Corruption("not a CRIU pagemap image (bad magic)");
}

// Splits the rest of the image into its length-prefixed objects.
Status next_object(std::string_view* rest, std::string_view* object) {
  if (rest->size() < 4) return Status::Corruption("pagemap image ends inside an object length");
  uint32_t len = pb::le32(*rest, 0);
  if (len > rest->size() - 4) return Status::Corruption("pagemap object runs past the end");
  *object = rest->substr(4, len);
  rest->remove_prefix(4 + size_t{len});
  return Status::Ok();
}

}  // namespace

Result<PagemapSummary> parse_pagemap_image(std::string_view image) {
  RELIVE_ASSIGN_OR_RETURN(size_t offset, skip_magic(image));
  std::string_view rest = image.substr(offset), object;
  RELIVE_RETURN_IF_ERROR(next_object(&rest, &object));
  PagemapSummary summary;
  bool has_id = false;
  bool ok = pb::walk(
      object,
      [&](uint32_t f, uint64_t v) {
        if (f != kHeadPagesId) return;
        has_id = true;
        summary.pages_id = static_cast<uint32_t>(v);
      },
      no_nested);
  if (!ok || !has_id) return Status::Corruption("pagemap head does not decode");
  while (!rest.empty()) {
    RELIVE_RETURN_IF_ERROR(next_object(&rest, &object));
    Entry e;
    if (!parse_entry(object, &e) || e.nr_pages > kMaxPages) {
      return Status::Corruption("pagemap entry does not decode");
    }
    if (e.present()) summary.present_pages += e.nr_pages;
    if (summary.present_pages > kMaxPages)
      return Status::Corruption("pagemap lists too many pages");
  }
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
