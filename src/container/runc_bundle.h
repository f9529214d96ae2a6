// What a runc container's archive carries besides CRIU's images, and how it becomes a bundle
// again on the destination. Three archive entries of kind fsChange:
//   relive-runc.json    the container: name, bundle, rootfs, creation time, runc version, mode
//   relive-config.json  the bundle's config.json, byte for byte
//   relive-rootfs.tar   the root file system: by default the files whose data or status changed
//                       since the container was created (GNU tar --newer, with a margin for
//                       coarse file timestamps: common/file_time.h), else all of it
// Files the container deleted are not recorded (a changes tar cannot say "gone").
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "container/runc.h"
#include "relive/result.h"

namespace relive::container {

inline constexpr const char* kRuncInfoEntry = "relive-runc.json";
inline constexpr const char* kRuncConfigEntry = "relive-config.json";
inline constexpr const char* kRuncRootfsEntry = "relive-rootfs.tar";

// True for the three entries above.
bool is_runc_entry(const std::string& name);

struct RuncArchiveInfo {
  std::string name;    // the container's name at checkpoint
  std::string bundle;  // its bundle directory on the source
  std::string rootfs;  // its root file system on the source
  std::string created;
  std::string runc_version;
  bool whole_rootfs = false;  // relive-rootfs.tar holds all of it, not only changes
  std::string to_json() const;
  static Result<RuncArchiveInfo> from_json(std::string_view text);
};

// Writes the three entries into `dir` for the container `s`, which must not run meanwhile
// (it is paused): the tar is then consistent with the memory CRIU dumps.
Status capture_bundle(const RuncState& s, const RuncArchiveInfo& info, const std::string& dir);

// Makes `bundle` a bundle for the restore from the entries in `dir`: writes config.json unless
// the bundle has one already (the destination's own configuration wins, e.g. another network
// namespace path), creates the rootfs when the archive holds all of it, and unpacks the tar
// over it. NotFound when only changes were archived and the bundle has no rootfs to apply
// them to.
Status prepare_bundle(const std::string& dir, const RuncArchiveInfo& info,
                      const std::string& bundle);

struct TarMember {
  std::string path;
  char type = '0';  // ustar typeflag: '0' file, '5' directory, '2' symlink, ...
  uint64_t size = 0;
};

// runc's RFC 3339 UTC creation time ("2026-11-22T22:11:18.587116001Z") in ns since the epoch.
Result<int64_t> rfc3339_to_ns(const std::string& rfc3339);
// The `tar --newer` date ("@SECONDS.NANOSECONDS") that archives every file changed since a
// container created at `created_rfc3339`: kTickMargin earlier, or kFileTimeMargin when the
// root file system keeps `whole_seconds` timestamps.
Result<std::string> changed_since_cutoff(const std::string& created_rfc3339, bool whole_seconds);

// The members of an uncompressed (GNU or ustar) tar, including GNU long names. Corruption on a
// malformed header; never reads past `tar`.
Result<std::vector<TarMember>> list_tar(std::string_view tar);

}  // namespace relive::container
