// libnbd, loaded the first time a VM disk is read through QEMU's NBD export.
//
// Only the HA pair's disk tracker (disk_tracker.h) talks NBD, yet linking libnbd pulled it and
// its dependencies (GnuTLS, libxml2, ICU: fifteen libraries) into every `relive` and `relived`
// start, which made up ~4 ms of a ~11 ms `relive --version`. The library is opened with dlopen
// instead, and the calls go through this table; libnbd.h still gives their types, so a libnbd
// whose signatures changed fails the build, not a run.
#pragma once

#include <libnbd.h>

#include "relive/result.h"

namespace relive::ha {

struct NbdLibrary {
  decltype(&::nbd_create) create = nullptr;
  decltype(&::nbd_close) close = nullptr;
  decltype(&::nbd_get_error) get_error = nullptr;
  decltype(&::nbd_set_export_name) set_export_name = nullptr;
  decltype(&::nbd_add_meta_context) add_meta_context = nullptr;
  decltype(&::nbd_connect_unix) connect_unix = nullptr;
  decltype(&::nbd_block_status) block_status = nullptr;
  decltype(&::nbd_pread) pread = nullptr;
};

// The loaded library (opened once, kept for the life of the process), or why it cannot be:
// libnbd.so.0 missing, or a symbol absent from it.
Result<const NbdLibrary*> nbd_library();

}  // namespace relive::ha
