#include "container/runc_bundle.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/file_time.h"
#include "common/file_util.h"
#include "common/subprocess.h"

namespace relive::container {
namespace {

namespace fs = std::filesystem;

Result<std::string> find_tar() {
  for (const char* p : {"/usr/bin/tar", "/bin/tar"}) {
    if (::access(p, X_OK) == 0) return std::string(p);
  }
  return Status::NotFound("GNU tar is not installed");
}

Status run_tar(const std::vector<std::string>& args, const std::string& what) {
  RELIVE_ASSIGN_OR_RETURN(std::string tar, find_tar());
  std::vector<std::string> argv = {tar};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions co;
  co.timeout = std::chrono::minutes(10);
  RELIVE_ASSIGN_OR_RETURN(RunResult r, relive::run(argv, co));
  if (r.ok()) return Status::Ok();
  return Status::IoError(what + ": tar " + r.describe() + ": " + r.output);
}

}  // namespace

// "2026-11-22T22:11:18.587116001Z" -> nanoseconds since the epoch.
Result<int64_t> rfc3339_to_ns(const std::string& rfc3339) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(rfc3339.c_str(), "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
      rfc3339.back() != 'Z') {
    return Status::Corruption("runc's creation time '" + rfc3339 + "' is not RFC 3339 UTC");
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  int64_t ns = int64_t{::timegm(&tm)} * 1000000000;
  if (rfc3339[static_cast<size_t>(consumed)] == '.') {
    int64_t scale = 100000000;
    for (size_t i = static_cast<size_t>(consumed) + 1; i + 1 < rfc3339.size(); ++i, scale /= 10) {
      char c = rfc3339[i];
      if (c < '0' || c > '9')
        return Status::Corruption("runc's creation time '" + rfc3339 + "' has a bad fraction");
      ns += (c - '0') * scale;
    }
  }
  return ns;
}

// The oldest change time a file changed since the container's creation can carry: runc's
// creation time is read from a fine-grained clock, file timestamps from the kernel's coarse one
// (common/file_time.h), so the cut-off lies a margin earlier: a tick's worth, or two seconds on
// a file system that keeps whole seconds only. A few files written just before the creation
// are archived as well; none written after it is missed.
Result<std::string> changed_since_cutoff(const std::string& created_rfc3339, bool whole_seconds) {
  RELIVE_ASSIGN_OR_RETURN(int64_t ns, rfc3339_to_ns(created_rfc3339));
  ns -= (whole_seconds ? kFileTimeMargin : kTickMargin).count();
  return fmt::format("@{}.{:09d}", ns / 1000000000, ns % 1000000000);
}

namespace {

// ustar numeric fields are octal text, or base-256 when the top bit of the first byte is set.
Result<uint64_t> tar_number(std::string_view f) {
  if (!f.empty() && (static_cast<unsigned char>(f[0]) & 0x80) != 0) {
    uint64_t v = 0;
    for (size_t i = 1; i < f.size(); ++i) v = (v << 8) | static_cast<unsigned char>(f[i]);
    return v;
  }
  uint64_t v = 0;
  for (char c : f) {
    if (c == '\0' || c == ' ') continue;
    if (c < '0' || c > '7') return Status::Corruption("tar header: bad number");
    v = v * 8 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::string cstr(std::string_view f) { return std::string(f.substr(0, f.find('\0'))); }

}  // namespace

bool is_runc_entry(const std::string& name) {
  return name == kRuncInfoEntry || name == kRuncConfigEntry || name == kRuncRootfsEntry;
}

std::string RuncArchiveInfo::to_json() const {
  nlohmann::json j = {{"name", name},
                      {"bundle", bundle},
                      {"rootfs", rootfs},
                      {"created", created},
                      {"runc_version", runc_version},
                      {"whole_rootfs", whole_rootfs}};
  return j.dump(2) + "\n";
}

Result<RuncArchiveInfo> RuncArchiveInfo::from_json(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("bundle") ||
      !j["bundle"].is_string()) {
    return Status::Corruption(std::string(kRuncInfoEntry) + " is not a container description");
  }
  RuncArchiveInfo i;
  i.name = j["name"].get<std::string>();
  i.bundle = j["bundle"].get<std::string>();
  auto str = [&](const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : "";
  };
  i.rootfs = str("rootfs");
  i.created = str("created");
  i.runc_version = str("runc_version");
  i.whole_rootfs =
      j.contains("whole_rootfs") && j["whole_rootfs"].is_boolean() && j["whole_rootfs"].get<bool>();
  return i;
}

Status capture_bundle(const RuncState& s, const RuncArchiveInfo& info, const std::string& dir) {
  RELIVE_RETURN_IF_ERROR(write_file_atomic(dir + "/" + kRuncInfoEntry, info.to_json()));
  RELIVE_ASSIGN_OR_RETURN(std::string config, read_file(s.bundle + "/config.json"));
  RELIVE_RETURN_IF_ERROR(write_file_atomic(dir + "/" + kRuncConfigEntry, config));
  std::vector<std::string> args = {
      "--create", "--file", dir + "/" + kRuncRootfsEntry, "--numeric-owner", "--xattrs", "--sparse",
      "-C",       s.rootfs};
  if (!info.whole_rootfs) {
    struct stat root {};
    if (::stat(s.rootfs.c_str(), &root) != 0) return PosixError("stat " + s.rootfs, errno);
    RELIVE_ASSIGN_OR_RETURN(std::string since,
                            changed_since_cutoff(s.created, whole_second_timestamps(root)));
    args.push_back("--newer=" + since);  // data or status changed since the container's creation
  }
  args.push_back(".");
  return run_tar(args, "archiving the rootfs " + s.rootfs);
}

Status prepare_bundle(const std::string& dir, const RuncArchiveInfo& info,
                      const std::string& bundle) {
  RELIVE_RETURN_IF_ERROR(make_dirs(bundle));
  std::string config_path = bundle + "/config.json";
  std::error_code ec;
  if (!fs::exists(config_path, ec)) {
    RELIVE_ASSIGN_OR_RETURN(std::string config, read_file(dir + "/" + kRuncConfigEntry));
    RELIVE_RETURN_IF_ERROR(write_file_atomic(config_path, config));
  }
  RELIVE_ASSIGN_OR_RETURN(std::string config, read_file(config_path));
  auto j = nlohmann::json::parse(config, nullptr, /*allow_exceptions=*/false);
  std::string root = j.is_object() && j.contains("root") && j["root"].contains("path") &&
                             j["root"]["path"].is_string()
                         ? j["root"]["path"].get<std::string>()
                         : "";
  if (root.empty()) return Status::InvalidArgument(config_path + " names no root.path");
  std::string rootfs = root[0] == '/' ? root : bundle + "/" + root;
  if (info.whole_rootfs) {
    RELIVE_RETURN_IF_ERROR(make_dirs(rootfs));
  } else if (!fs::is_directory(rootfs, ec)) {
    return Status::NotFound("the bundle " + bundle + " has no root file system " + rootfs +
                            ", and the archive holds only the files changed since the "
                            "container's creation: put the base root file system there, or "
                            "checkpoint with --whole-rootfs");
  }
  return run_tar({"--extract", "--file", dir + "/" + kRuncRootfsEntry, "--numeric-owner",
                  "--xattrs", "--same-permissions", "-C", rootfs},
                 "unpacking the rootfs changes into " + rootfs);
}

Result<std::vector<TarMember>> list_tar(std::string_view tar) {
  std::vector<TarMember> out;
  std::string long_name;
  size_t off = 0;
  while (off + 512 <= tar.size()) {
    std::string_view h = tar.substr(off, 512);
    if (h.find_first_not_of('\0') == std::string_view::npos) return out;  // end blocks
    RELIVE_ASSIGN_OR_RETURN(uint64_t size, tar_number(h.substr(124, 12)));
    uint64_t padded = (size + 511) / 512 * 512;
    if (padded > tar.size() - off - 512) return Status::Corruption("tar member runs past the end");
    char type = h[156] == '\0' ? '0' : h[156];
    std::string_view body = tar.substr(off + 512, static_cast<size_t>(size));
    off += 512 + static_cast<size_t>(padded);
    if (type == 'L') {  // GNU long name: the next member's path
      long_name = cstr(body);
      continue;
    }
    if (type == 'K' || type == 'x' || type == 'g') continue;  // long link target, pax headers
    std::string path = cstr(h.substr(0, 100));
    std::string prefix = cstr(h.substr(345, 155));
    if (h.substr(257, 5) == "ustar" && !prefix.empty() && h.substr(257, 6) != "ustar ") {
      path = prefix + "/" + path;
    }
    if (!long_name.empty()) path = std::exchange(long_name, {});
    out.push_back({path, type, size});
  }
  if (off == tar.size()) return out;
  return Status::Corruption("tar ends inside a header");
}

}  // namespace relive::container
