#include "container/image_summary.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "common/file_util.h"
#include "drivers/criu/image_check.h"
#include "drivers/criu/pb_reader.h"

namespace relive::container {
namespace {

namespace pb = criu::pb;

// From CRIU's criu/include/magic.h.
constexpr uint32_t kImgCommonMagic = 0x54564319;
constexpr uint32_t kPstreeMagic = 0x50273030;
constexpr uint32_t kCoreMagic = 0x55053847;
constexpr uint32_t kFilesMagic = 0x56303138;
// images/fdinfo.proto: fd_types, and file_entry's fields.
enum : uint64_t { kFdReg = 1, kFdPipe = 2, kFdInetSk = 4, kFdUnixSk = 5 };
enum : uint32_t { kFileType = 1, kFileReg = 3, kRegName = 6 };
// images/pstree.proto, images/core.proto.
enum : uint32_t { kPsPid = 1, kPsPpid = 2, kPsPgid = 3, kPsSid = 4, kPsThreads = 5 };
enum : uint32_t { kCoreTc = 3, kTcComm = 6 };
constexpr size_t kMaxObjects = 1u << 20;

bool starts_with(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }

// The length-prefixed protobuf objects of an image with the given magic.
Result<std::vector<std::string_view>> objects(std::string_view image, uint32_t magic) {
  if (image.size() < 8 || pb::le32(image, 0) != kImgCommonMagic || pb::le32(image, 4) != magic) {
    return Status::Corruption("bad image magic");
  }
  std::vector<std::string_view> out;
  std::string_view rest = image.substr(8);
  while (!rest.empty()) {
    if (rest.size() < 4 || out.size() >= kMaxObjects) return Status::Corruption("bad object");
    uint32_t len = pb::le32(rest, 0);
    if (len > rest.size() - 4) return Status::Corruption("object runs past the end");
    out.push_back(rest.substr(4, len));
    rest.remove_prefix(4 + size_t{len});
  }
  return out;
}

void ignore_varint(uint32_t, uint64_t) {}

// Counts the varints of a packed repeated field.
bool count_packed(std::string_view b, uint32_t* n) {
  pb::PbReader r(b);
  uint64_t v;
  while (!r.done()) {
    if (!r.varint(&v)) return false;
    ++*n;
  }
  return true;
}

Result<ProcessInfo> parse_pstree_entry(std::string_view m) {
  ProcessInfo p;
  bool ok = pb::walk(
      m,
      [&](uint32_t f, uint64_t v) {
        auto i = static_cast<int32_t>(v);
        if (f == kPsPid) p.pid = i;
        if (f == kPsPpid) p.ppid = i;
        if (f == kPsPgid) p.pgid = i;
        if (f == kPsSid) p.sid = i;
        if (f == kPsThreads) ++p.threads;
      },
      [&](uint32_t f, std::string_view b) {
        return f != kPsThreads || count_packed(b, &p.threads);
      });
  if (!ok || p.pid <= 0) return Status::Corruption("pstree entry does not decode");
  return p;
}

Result<std::string> parse_comm(std::string_view core_image) {
  RELIVE_ASSIGN_OR_RETURN(auto objs, objects(core_image, kCoreMagic));
  if (objs.empty()) return Status::Corruption("empty core image");
  std::string comm;
  auto on_tc = [&](uint32_t f, std::string_view b) {
    if (f == kTcComm) comm = std::string(b.substr(0, 64));
    return true;
  };
  bool ok = pb::walk(objs[0], ignore_varint, [&](uint32_t f, std::string_view b) {
    return f != kCoreTc || pb::walk(b, ignore_varint, on_tc);
  });
  if (!ok) return Status::Corruption("core image does not decode");
  return comm;
}

Status summarize_files(std::string_view image, ImageSummary* s) {
  RELIVE_ASSIGN_OR_RETURN(auto objs, objects(image, kFilesMagic));
  for (std::string_view o : objs) {
    uint64_t type = 0;
    std::string name;
    auto on_reg = [&](uint32_t f, std::string_view b) {
      if (f == kRegName) name = std::string(b.substr(0, 4096));
      return true;
    };
    bool ok = pb::walk(
        o, [&](uint32_t f, uint64_t v) { type = f == kFileType ? v : type; },
        [&](uint32_t f, std::string_view b) {
          return f != kFileReg || pb::walk(b, ignore_varint, on_reg);
        });
    if (!ok) return Status::Corruption("files.img entry does not decode");
    // files.img also lists every process's cwd and root, often the same paths.
    if (type == kFdReg && std::find(s->files.begin(), s->files.end(), name) == s->files.end()) {
      s->files.push_back(name);
    }
    if (type == kFdInetSk) ++s->inet_sockets;
    if (type == kFdUnixSk) ++s->unix_sockets;
    if (type == kFdPipe) ++s->pipes;
  }
  return Status::Ok();
}

Status summarize_pstree(const std::map<std::string, std::string>& images, ImageSummary* s) {
  auto it = images.find("pstree.img");
  if (it == images.end()) return Status::Corruption("no pstree.img among the images");
  RELIVE_ASSIGN_OR_RETURN(auto objs, objects(it->second, kPstreeMagic));
  for (std::string_view o : objs) {
    auto p = parse_pstree_entry(o);
    if (!p.ok()) return p.status().with_context("pstree.img");
    auto core = images.find(fmt::format("core-{}.img", p->pid));
    if (core != images.end()) {
      auto comm = parse_comm(core->second);
      if (!comm.ok()) return comm.status().with_context(core->first);
      p->comm = *comm;
    }
    s->processes.push_back(std::move(p).value());
  }
  return Status::Ok();
}

}  // namespace

bool is_summary_image(const std::string& name) {
  return name == "pstree.img" || name == "files.img" || starts_with(name, "core-") ||
         starts_with(name, "pagemap-");
}

Result<ImageSummary> summarize_images(const std::map<std::string, std::string>& images) {
  ImageSummary s;
  RELIVE_RETURN_IF_ERROR(summarize_pstree(images, &s));
  for (const auto& [name, bytes] : images) {
    if (starts_with(name, "ghost-file-")) ++s.ghost_files;
    if (starts_with(name, "pagemap-") && !starts_with(name, "pagemap-shmem")) {
      auto pm = criu::parse_pagemap_image(bytes);
      if (!pm.ok()) return pm.status().with_context(name);
      s.memory_pages += pm->present_pages;
    }
  }
  if (auto files = images.find("files.img"); files != images.end()) {
    RELIVE_RETURN_IF_ERROR(summarize_files(files->second, &s).with_context("files.img"));
  }
  return s;
}

Result<ImageSummary> summarize_images_dir(const std::string& dir) {
  std::map<std::string, std::string> images;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = f.path().filename().string();
    if (!is_summary_image(name) && !starts_with(name, "ghost-file-")) continue;
    if (starts_with(name, "ghost-file-")) {
      images[name] = {};  // counted, not read
      continue;
    }
    RELIVE_ASSIGN_OR_RETURN(images[name], read_file(f.path().string()));
  }
  if (ec) return Status::IoError("list " + dir + ": " + ec.message());
  return summarize_images(images);
}

Result<std::vector<std::string>> regular_files_in_images_dir(const std::string& dir) {
  std::string path = dir + "/files.img";
  if (::access(path.c_str(), F_OK) != 0) return std::vector<std::string>{};
  RELIVE_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  ImageSummary s;
  RELIVE_RETURN_IF_ERROR(summarize_files(bytes, &s).with_context(path));
  return std::move(s.files);
}

bool is_pid_bound_proc_path(std::string_view path) {
  while (path.starts_with("/")) path.remove_prefix(1);
  if (!path.starts_with("proc/")) return false;
  path.remove_prefix(5);
  size_t digits = 0;
  while (digits < path.size() && path[digits] >= '0' && path[digits] <= '9') ++digits;
  return digits > 0 && (digits == path.size() || path[digits] == '/');
}

}  // namespace relive::container
