// The fast-path blob: fast_path.c built freestanding and linked to run at kFastPathBlobAddr, as
// flat bytes (generated at build time by embed_blob.cmake). Recorders and replayers map it there,
// read+exec, in every traced process; patched syscall sites reach it through their stubs
// (syscall_sites.h) and the seccomp filter lets its own system calls through without a stop.
#pragma once

#include <cstdint>
#include <string_view>

namespace relive::tracee {

inline constexpr uint64_t kFastPathBlobAddr = 0x70000200000ull;  // fast_path_blob.ld
inline constexpr uint64_t kFastPathBlobSize = 64 * 1024;         // the mapping; the code is less

// The blob's bytes; its entry point, relive_fast_path (fast_path_abi.h), is at its first byte.
std::string_view fast_path_blob_bytes();

}  // namespace relive::tracee
