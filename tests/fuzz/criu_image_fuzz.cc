// libFuzzer target for the CRIU image decoders relive runs on images that may come over the
// network (a backup receives the primary's dumps): no input may crash, hang or read out of
// bounds. The first input byte selects the decoder:
//   0 decode_task_core(rest)
//   1 decode_pagemap_image(rest); what decodes must survive encode_pagemap_image unchanged, and
//     with_present_pages must give sorted, non-overlapping entries
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "drivers/criu/core_image.h"
#include "drivers/criu/page_image.h"

namespace relive::criu {
namespace {

void check_pagemap(std::string_view bytes) {
  Result<PagemapImage> image = decode_pagemap_image(bytes);
  if (!image.ok()) return;
  Result<PagemapImage> again = decode_pagemap_image(encode_pagemap_image(*image));
  if (!again.ok() || !(*again == *image)) std::abort();
  Result<PagemapImage> grown = with_present_pages(*image, {{0x10000, 16}});
  if (!grown.ok()) return;
  for (size_t i = 1; i < grown->entries.size(); ++i)
    if (grown->entries[i].vaddr < grown->entries[i - 1].end()) std::abort();
}

}  // namespace
}  // namespace relive::criu

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0)
    (void)relive::criu::decode_task_core(rest);
  else
    relive::criu::check_pagemap(rest);
  return 0;
}
