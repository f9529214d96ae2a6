// qemu-img, run as a program (argv, never a shell): the images a storage migration's destination
// creates before its QEMU starts on them.
#pragma once

#include <cstdint>
#include <string>

#include "relive/result.h"

namespace relive::qemu {

struct ImageSpec {
  std::string format;  // "raw" or "qcow2"
  uint64_t virtual_size = 0;
  // qcow2 only: an overlay on this base (an absolute path), whose format is backing_format.
  std::string backing_file;
  std::string backing_format;
};

// Creates `path` (which must not exist yet) as `spec` says. InvalidArgument for a format other
// than raw and qcow2, or a backing file on a raw image; IoError with qemu-img's own words when
// it fails.
Status create_image(const std::string& path, const ImageSpec& spec);

}  // namespace relive::qemu
