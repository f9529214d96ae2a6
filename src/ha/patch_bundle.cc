#include "ha/patch_bundle.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstring>

#include "common/file_util.h"
#include "drivers/criu/page_image.h"
#include "drivers/criu/tcp_stream_image.h"
#include "ha/thread_state.h"

namespace relive::ha {
namespace {

constexpr std::string_view kMagic = "RLVPTCH1";
constexpr uint32_t kMaxFiles = 1 << 20;
constexpr size_t kMaxName = 255;

bool plain_name(std::string_view n) {
  if (n.empty() || n.size() > kMaxName || n == "." || n == "..") return false;
  for (char c : n) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return n != kPatchBundle;
}

void put_u32(std::string* out, uint32_t v) { out->append(reinterpret_cast<char*>(&v), 4); }
void put_u64(std::string* out, uint64_t v) { out->append(reinterpret_cast<char*>(&v), 8); }

}  // namespace

std::string encode_patch_bundle(const BundleFiles& files) {
  std::string out(kMagic);
  put_u32(&out, static_cast<uint32_t>(files.size()));
  for (const auto& [name, bytes] : files) {
    put_u32(&out, static_cast<uint32_t>(name.size()));
    out += name;
    put_u64(&out, bytes.size());
    out += bytes;
  }
  return out;
}

Result<BundleFiles> decode_patch_bundle(std::string_view in) {
  auto bad = [](const std::string& what) { return Status::Corruption("patch bundle: " + what); };
  if (in.substr(0, kMagic.size()) != kMagic) return bad("bad magic");
  in.remove_prefix(kMagic.size());
  auto take = [&](void* out, size_t n) {
    if (in.size() < n) return false;
    std::memcpy(out, in.data(), n);
    in.remove_prefix(n);
    return true;
  };
  uint32_t n = 0;
  if (!take(&n, 4)) return bad("truncated header");
  if (n > kMaxFiles) return bad("implausible file count");
  BundleFiles out;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t name_len = 0;
    uint64_t len = 0;
    if (!take(&name_len, 4) || name_len > in.size()) return bad("truncated name");
    std::string name(in.substr(0, name_len));
    in.remove_prefix(name_len);
    if (!plain_name(name)) return bad(fmt::format("file {} has no plain name", i));
    if (!take(&len, 8) || len > in.size()) return bad("truncated file " + name);
    out.emplace_back(std::move(name), std::string(in.substr(0, len)));
    in.remove_prefix(len);
  }
  if (!in.empty()) return bad("trailing bytes");
  return out;
}

Status check_patch_bundle(const BundleFiles& files) {
  bool threads = false;
  for (const auto& [name, bytes] : files) {
    Status s = Status::Ok();
    if (name == kThreadsImage) {
      threads = true;
      s = decode_fast_state(bytes).status();
    } else if (name.starts_with("pagemap-")) {
      s = criu::decode_pagemap_image(bytes).status();
    } else if (name.starts_with("tcp-stream-")) {
      s = criu::decode_tcp_stream_image(bytes).status();
    } else {
      s = Status::Corruption("a fast epoch does not carry " + name);
    }
    if (!s.ok()) return s.with_context("patch bundle: " + name);
  }
  if (!threads) return Status::Corruption(std::string("patch bundle without ") + kThreadsImage);
  return Status::Ok();
}

Status unpack_patch_bundle(const std::string& images_dir) {
  std::string path = images_dir + "/" + kPatchBundle;
  if (::access(path.c_str(), F_OK) != 0) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(std::string raw, read_file(path));
  RELIVE_ASSIGN_OR_RETURN(BundleFiles files, decode_patch_bundle(raw));
  for (const auto& [name, bytes] : files) {
    RELIVE_RETURN_IF_ERROR(write_file_atomic(images_dir + "/" + name, bytes));
  }
  if (::unlink(path.c_str()) != 0) return PosixError("remove " + path, errno);
  return Status::Ok();
}

}  // namespace relive::ha
