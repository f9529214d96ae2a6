// QEMU's own TLS between the two QEMUs of a VM migration (the migration stream flows QEMU to
// QEMU, not through relive's channel): a tls-creds-x509 object made from the same cluster keys
// (security/keys.h), so the same CA authenticates both ends. QEMU wants a directory with fixed
// file names; this builds one of symbolic links into the key directory.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "drivers/qemu/qmp_client.h"
#include "relive/result.h"

namespace relive::migrate {

inline constexpr const char* kQemuTlsObjectId = "relive-migration-tls";

// Fills `dir` (created if needed) with ca-cert.pem and, for a server (the destination)
// server-cert.pem / server-key.pem, for a client (the source) client-cert.pem / client-key.pem,
// all links to `node`'s files in `key_dir`. NotFound when one of them is missing.
Status make_qemu_tls_dir(const std::string& key_dir, const std::string& node,
                         const std::string& dir, bool server);

// The object-add arguments of the credentials in `dir`. Both ends verify the peer's certificate
// against the CA; the source also checks the destination's name (migration parameter
// tls-hostname).
nlohmann::json qemu_tls_object(const std::string& dir, bool server);

// Both steps for the QEMU behind `qmp`: the directory (make_qemu_tls_dir) and the object.
Status add_qemu_tls(qemu::QmpClient& qmp, const std::string& key_dir, const std::string& node,
                    const std::string& dir, bool server);
// Undoes add_qemu_tls() and the migration parameters that name the object, best effort.
void remove_qemu_tls(qemu::QmpClient& qmp);

}  // namespace relive::migrate
