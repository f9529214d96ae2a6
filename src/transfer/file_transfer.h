// Ships whole files (CRIU images, a trace's files) from one agent to the other: a FileBatch
// command naming each file with its size and XXH3-128, then the contents as bulk segments. The
// receiver writes them under a directory it chose and checks every size and checksum; a name
// that would escape that directory is refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "relive/result.h"
#include "transfer/bulk.h"
#include "transfer/link.h"
#include "wire/migration_types.h"

namespace relive::transfer {

// Sends files `names` (relative to `base`) under the label `dir` and waits for the Ack.
// Returns the bytes that went on the wire for them.
Result<uint64_t> send_files(Link* link, const std::string& dir, const std::string& base,
                            const std::vector<std::string>& names);

// Receives the contents announced by `batch` into `dest` (created if needed).
Status receive_files(security::Channel* channel, const migration::FileBatch& batch,
                     const std::string& dest);

// True when `name` is a relative path with no "." or ".." component.
bool safe_relative_name(const std::string& name);

}  // namespace relive::transfer
