#include "migrate/vm_disk_targets.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "common/file_util.h"
#include "common/json_field.h"
#include "common/safe_name.h"
#include "common/scoped_fd.h"
#include "drivers/qemu/qemu_img.h"
#include "drivers/qemu/vm_command_line.h"
#include "migrate/vm_disk_spec.h"

namespace relive::migrate {
namespace {

namespace m = relive::migration;

constexpr int kPortAttempts = 5;

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// A TCP port nobody listens on right now (QEMU's NBD server cannot say which one it took).
Result<uint16_t> free_port() {
  ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return PosixError("socket", errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    return PosixError("bind", errno);
  socklen_t len = sizeof(a);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return PosixError("getsockname", errno);
  return ntohs(a.sin_port);
}

// The node behind drive `device` in a query-block answer.
Result<std::string> node_of(const nlohmann::json& blocks, const std::string& device) {
  if (blocks.is_array()) {
    for (const nlohmann::json& b : blocks) {
      if (json_value_or(b, "device", "") != device) continue;
      auto in = b.find("inserted");
      if (in != b.end()) return json_field<std::string>(*in, "node-name", "query-block");
    }
  }
  return Status::NotFound("the destination QEMU has no disk " + device);
}

}  // namespace

VmDiskTargets::VmDiskTargets(VmDiskTargets&& o) noexcept
    : devices_(std::move(o.devices_)),
      files_(std::move(o.files_)),
      handed_over_(std::exchange(o.handed_over_, true)) {}

VmDiskTargets::~VmDiskTargets() {
  if (handed_over_) return;
  for (const std::string& f : files_) ::unlink(f.c_str());
}

Status VmDiskTargets::check(const m::VmDisk& d, bool shared) const {
  RELIVE_RETURN_IF_ERROR(check_name("disk id", d.device));
  if (shared) {
    if (!exists(d.path))
      return Status::NotFound("--shared-storage: disk " + d.device + "'s image " + d.path +
                              " does not exist on this host");
    return Status::Ok();
  }
  if (d.format != "raw" && d.format != "qcow2")
    return Status::InvalidArgument("disk " + d.device + " is " + d.format +
                                   ": storage migration copies raw and qcow2 images");
  if (d.virtual_size == 0) return Status::InvalidArgument("disk " + d.device + " has size 0");
  if (d.backing_file.empty()) return Status::Ok();
  if (d.format != "qcow2" || d.backing_file[0] != '/')
    return Status::InvalidArgument("disk " + d.device +
                                   ": a base needs a qcow2 overlay and "
                                   "an absolute path");
  if (!exists(d.backing_file))
    return Status::NotFound("disk " + d.device + ": its base " + d.backing_file +
                            " does not exist on this host (copy it here first)");
  RELIVE_ASSIGN_OR_RETURN(std::string hash, hash_image_file(d.backing_file));
  if (hash != d.backing_hash)
    return Status::InvalidArgument("disk " + d.device + ": the base " + d.backing_file +
                                   " on this host differs from the source's (hash " + hash +
                                   " here, " + d.backing_hash + " there)");
  return Status::Ok();
}

Status VmDiskTargets::create(const m::VmDisk& d, const std::string& dir) {
  std::string path = dir + "/" + d.device + "." + d.format;
  qemu::ImageSpec spec{d.format, d.virtual_size, d.backing_file, d.backing_format};
  RELIVE_RETURN_IF_ERROR(qemu::create_image(path, spec));
  devices_.push_back(d.device);
  files_.push_back(path);
  return Status::Ok();
}

Result<VmDiskTargets> VmDiskTargets::prepare(const std::vector<m::VmDisk>& disks, bool shared,
                                             const std::string& dir) {
  VmDiskTargets t;
  for (const m::VmDisk& d : disks) RELIVE_RETURN_IF_ERROR(t.check(d, shared));
  if (shared || disks.empty()) return t;
  std::string into = dir + "/disks";
  RELIVE_RETURN_IF_ERROR(make_dirs(into));
  for (const m::VmDisk& d : disks) RELIVE_RETURN_IF_ERROR(t.create(d, into));
  return t;
}

Result<std::vector<std::string>> VmDiskTargets::rewrite(std::vector<std::string> args) const {
  for (size_t i = 0; i < devices_.size(); ++i) {
    RELIVE_ASSIGN_OR_RETURN(args, qemu::with_drive_file(args, devices_[i], files_[i]));
  }
  return args;
}

Result<uint16_t> VmDiskTargets::export_all(qemu::QmpClient& qmp,
                                           const std::string& tls_creds) const {
  uint16_t port = 0;
  for (int attempt = 0;; ++attempt) {
    RELIVE_ASSIGN_OR_RETURN(port, free_port());
    nlohmann::json args = {
        {"addr",
         {{"type", "inet"}, {"data", {{"host", "0.0.0.0"}, {"port", std::to_string(port)}}}}}};
    if (!tls_creds.empty()) args["tls-creds"] = tls_creds;
    Status started = qmp.execute("nbd-server-start", args).status();
    if (started.ok()) break;
    // Someone took the port in between: another one.
    if (attempt + 1 >= kPortAttempts) return started.with_context("starting the NBD server");
  }
  RELIVE_ASSIGN_OR_RETURN(nlohmann::json blocks, qmp.execute("query-block"));
  for (const std::string& device : devices_) {
    RELIVE_ASSIGN_OR_RETURN(std::string node, node_of(blocks, device));
    nlohmann::json exp = {{"type", "nbd"},
                          {"id", "relive-export-" + device},
                          {"node-name", node},
                          {"name", device},
                          {"writable", true}};
    Status added = qmp.execute("block-export-add", exp).status();
    if (!added.ok()) return added.with_context("exporting disk " + device);
  }
  return port;
}

Status VmDiskTargets::stop_exports(qemu::QmpClient& qmp) {
  return qmp.execute("nbd-server-stop").status();
}

}  // namespace relive::migrate
