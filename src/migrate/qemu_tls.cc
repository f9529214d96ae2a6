#include "migrate/qemu_tls.h"

#include <filesystem>

#include "common/file_util.h"
#include "security/keys.h"

namespace relive::migrate {

namespace fs = std::filesystem;

Status make_qemu_tls_dir(const std::string& key_dir, const std::string& node,
                         const std::string& dir, bool server) {
  std::error_code ec;
  std::string keys = fs::absolute(key_dir, ec).string();
  security::HostKeyFiles f = security::host_key_files(keys, node);
  const char* role = server ? "server" : "client";
  const std::pair<std::string, std::string> links[] = {{"ca-cert.pem", f.ca_cert},
                                                       {std::string(role) + "-cert.pem", f.cert},
                                                       {std::string(role) + "-key.pem", f.key}};
  RELIVE_RETURN_IF_ERROR(make_dirs(dir));
  for (const auto& [name, target] : links) {
    if (!fs::exists(target, ec)) return Status::NotFound("TLS file " + target + " is missing");
    fs::remove(dir + "/" + name, ec);
    fs::create_symlink(target, dir + "/" + name, ec);
    if (ec) return Status::IoError("linking " + dir + "/" + name + ": " + ec.message());
  }
  return Status::Ok();
}

nlohmann::json qemu_tls_object(const std::string& dir, bool server) {
  return {{"qom-type", "tls-creds-x509"},
          {"id", kQemuTlsObjectId},
          {"dir", dir},
          {"endpoint", server ? "server" : "client"},
          {"verify-peer", true}};
}

Status add_qemu_tls(qemu::QmpClient& qmp, const std::string& key_dir, const std::string& node,
                    const std::string& dir, bool server) {
  RELIVE_RETURN_IF_ERROR(make_qemu_tls_dir(key_dir, node, dir, server));
  return qmp.execute("object-add", qemu_tls_object(dir, server)).status();
}

void remove_qemu_tls(qemu::QmpClient& qmp) {
  (void)qmp.execute("migrate-set-parameters", {{"tls-creds", ""}, {"tls-hostname", ""}});
  (void)qmp.execute("object-del", {{"id", kQemuTlsObjectId}});
}

}  // namespace relive::migrate
