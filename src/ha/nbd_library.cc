#include "ha/nbd_library.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <mutex>

namespace relive::ha {
namespace {

constexpr const char* kSoname = "libnbd.so.0";

template <typename Fn>
Status resolve(void* handle, const char* symbol, Fn* out) {
  void* p = ::dlsym(handle, symbol);
  if (p == nullptr)
    return Status::Unsupported(fmt::format("{} has no {} (libnbd too old?)", kSoname, symbol));
  *out = reinterpret_cast<Fn>(p);
  return Status::Ok();
}

Result<NbdLibrary> load() {
  // Never closed: the handles and callbacks libnbd hands out may outlive any one caller.
  void* h = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* why = ::dlerror();
    return Status::Unsupported(fmt::format("cannot load {} (install libnbd0): {}", kSoname,
                                           why != nullptr ? why : "unknown error"));
  }
  NbdLibrary lib;
  RELIVE_RETURN_IF_ERROR(resolve(h, "nbd_create", &lib.create));
  RELIVE_RETURN_IF_ERROR(resolve(h, "nbd_close", &lib.close));
  RELIVE_RETURN_IF_ERROR(resolve(h, "nbd_get_error", &lib.get_error));
  RELIVE_RETURN_IF_ERROR(resolve(h, "nbd_set_export_name", &lib.set_export_name));
  RELIVE_RETURN_IF_ERROR(resolve(h, "nbd_add_meta_context", &lib.add_meta_context));
  RELIVE_RETURN_IF_ERROR(resolve(h, "nbd_connect_unix", &lib.connect_unix));
  RELIVE_RETURN_IF_ERROR(resolve(h, "nbd_block_status", &lib.block_status));
  RELIVE_RETURN_IF_ERROR(resolve(h, "nbd_pread", &lib.pread));
  return lib;
}

}  // namespace

Result<const NbdLibrary*> nbd_library() {
  static std::once_flag once;
  static Result<NbdLibrary> loaded = Status::Unsupported("libnbd not loaded");
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.ok()) return loaded.status();
  return &loaded.value();
}

}  // namespace relive::ha
