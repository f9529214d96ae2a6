#include "migrate/vm_disk_spec.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/hash.h"
#include "common/json_field.h"
#include "common/scoped_fd.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;

constexpr const char* kWhat = "query-block";

bool copyable_format(const std::string& f) { return f == "raw" || f == "qcow2"; }

// One inserted medium's description.
Result<m::VmDisk> disk_from(const std::string& device, const nlohmann::json& inserted,
                            bool for_copy) {
  m::VmDisk d;
  d.device = device;
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json image,
                          json_field<nlohmann::json>(inserted, "image", kWhat));
  RELIVE_ASSIGN_OR_RETURN(d.path, json_field<std::string>(image, "filename", kWhat));
  RELIVE_ASSIGN_OR_RETURN(d.format, json_field<std::string>(image, "format", kWhat));
  RELIVE_ASSIGN_OR_RETURN(d.virtual_size, json_field<uint64_t>(image, "virtual-size", kWhat));
  if (!for_copy) return d;
  if (!copyable_format(d.format))
    return Status::InvalidArgument("disk " + device + " is " + d.format +
                                   ": storage migration copies raw and qcow2 images");
  RELIVE_ASSIGN_OR_RETURN(d.backing_file,
                          json_field_or<std::string>(image, "full-backing-filename", "", kWhat));
  if (d.backing_file.empty()) return d;
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json base,
                          json_field_or<nlohmann::json>(image, "backing-image", nullptr, kWhat));
  if (!base.is_object())
    return Status::InvalidArgument("disk " + device + ": QEMU does not describe its base " +
                                   d.backing_file);
  RELIVE_ASSIGN_OR_RETURN(d.backing_format, json_field<std::string>(base, "format", kWhat));
  if (!copyable_format(d.backing_format))
    return Status::InvalidArgument("disk " + device + ": its base is " + d.backing_format);
  if (!json_value_or(base, "backing-filename", "").empty())
    return Status::InvalidArgument("disk " + device + ": its base " + d.backing_file +
                                   " has a base of its own (one level of backing file only)");
  return d;
}

}  // namespace

Result<std::vector<m::VmDisk>> vm_disks_from_query_block(const nlohmann::json& blocks,
                                                         bool for_copy) {
  if (!blocks.is_array()) return Status::Corruption("query-block did not answer a list");
  std::vector<m::VmDisk> out;
  for (size_t i = 0; i < blocks.size(); ++i) {
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json b, json_element<nlohmann::json>(blocks, i, kWhat));
    RELIVE_ASSIGN_OR_RETURN(nlohmann::json inserted,
                            json_field_or<nlohmann::json>(b, "inserted", nullptr, kWhat));
    if (inserted.is_null()) continue;  // an empty drive (a CD-ROM without a disc)
    RELIVE_ASSIGN_OR_RETURN(std::string device, json_field_or<std::string>(b, "device", "", kWhat));
    if (device.empty() && !for_copy) continue;
    if (device.empty())
      return Status::InvalidArgument(
          "a disk without a drive id (-blockdev): storage migration copies -drive id=ID,file=... "
          "disks (or use --shared-storage)");
    RELIVE_ASSIGN_OR_RETURN(m::VmDisk d, disk_from(device, inserted, for_copy));
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::string> hash_image_file(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return PosixError("open " + path, errno);
  StreamHash128 h;
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("read " + path, errno);
    if (n == 0) break;
    h.update(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  return h.hex();
}

Result<std::vector<m::VmDisk>> describe_vm_disks(qemu::QmpClient& qmp, bool for_copy) {
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json blocks, qmp.execute("query-block"));
  RELIVE_ASSIGN_OR_RETURN(std::vector<m::VmDisk> disks,
                          vm_disks_from_query_block(blocks, for_copy));
  for (m::VmDisk& d : disks) {
    if (d.backing_file.empty() || !for_copy) continue;
    RELIVE_ASSIGN_OR_RETURN(d.backing_hash, hash_image_file(d.backing_file));
  }
  return disks;
}

}  // namespace relive::migrate
