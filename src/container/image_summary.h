// A summary of a CRIU images directory, decoded from the images themselves (pstree.img,
// core-*.img, pagemap-*.img, files.img): what `relive container inspect` shows and what the
// manifest's process list is built from. Decoding is minimal and bounded (pb_reader.h); an
// image that does not decode is reported, not trusted.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "relive/result.h"
#include "wire/archive_types.h"

namespace relive::container {

struct ImageSummary {
  std::vector<ProcessInfo> processes;  // in pstree order: the root first
  uint64_t memory_pages = 0;           // pages present in the pages images
  std::vector<std::string> files;      // regular files, cwds and roots the tree holds, unique
  uint32_t inet_sockets = 0;
  uint32_t unix_sockets = 0;
  uint32_t pipes = 0;
  uint32_t ghost_files = 0;  // deleted-but-open files whose contents CRIU saved
};

// True for the images summarize_images() reads, so that a caller streaming an archive keeps
// only those in memory.
bool is_summary_image(const std::string& name);

// `images` maps image file names to their bytes; names summarize_images() does not know are
// ignored (but counted, for ghost files). Corruption when pstree.img is missing or any read
// image does not decode.
Result<ImageSummary> summarize_images(const std::map<std::string, std::string>& images);

// Reads the images is_summary_image() selects from `dir` and summarizes them.
Result<ImageSummary> summarize_images_dir(const std::string& dir);

// The regular files the tree holds (ImageSummary::files) from `dir`'s files.img alone: cheap
// enough to run on every HA epoch. Empty when the tree holds no files (no files.img).
Result<std::vector<std::string>> regular_files_in_images_dir(const std::string& dir);

// True for a path into the host's procfs that names a process by number (/proc/123/stat,
// /proc/123/task/124/comm). A workload that sees the host's /proc opens /proc/self/... as
// /proc/<its host PID>/..., and CRIU records that path; where the tree is restored it has
// other host PIDs, so such a file cannot be opened again ("Can't open file proc/123/stat").
bool is_pid_bound_proc_path(std::string_view path);

}  // namespace relive::container
