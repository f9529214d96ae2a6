// Writing and reading container archive files (layout: schemas/archive.capnp): packing a CRIU
// images directory, verifying an archive, unpacking it into a directory.
#pragma once

#include <map>
#include <string>

#include "relive/result.h"
#include "wire/archive_types.h"

namespace relive::container {

// Fills manifest->entries from the regular files of `images_dir` (name, size, XXH3-128), sorted
// by name. Anything but a regular file there is Unsupported (CRIU writes none).
Status list_entries(const std::string& images_dir, Manifest* manifest);

// Writes `manifest` and the bytes of its entries (read from `images_dir`) to `path`, through
// `path`.partial and a rename: `path` never exists half-written, and no partial file survives a
// failure. Corruption if an image changed since list_entries() hashed it. Returns the size.
Result<uint64_t> write_archive(const std::string& path, const std::string& images_dir,
                               const Manifest& manifest);

// Reads and checks everything: header, manifest, every frame and entry checksum, trailer.
Result<Manifest> verify_archive(const std::string& path);

// Verifies `path` and writes its entries into the existing, empty directory `dir`. Entries are
// written to "<name>.partial" and renamed once their checksum matched, so `dir` only ever holds
// verified files.
Result<Manifest> unpack_archive(const std::string& path, const std::string& dir);

// Verifies `path`, keeping in memory the entries for which keep(name) is true (each at most
// 64 MiB). The manifest comes back even when the entries do not verify (*have_manifest says
// whether it was readable), so that inspect can describe a damaged archive.
Status read_archive(const std::string& path, bool (*keep)(const std::string&), Manifest* manifest,
                    bool* have_manifest, std::map<std::string, std::string>* kept);

}  // namespace relive::container
