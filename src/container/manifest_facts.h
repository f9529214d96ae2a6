// Filling a container archive's manifest with what every checkpoint records: the source host,
// the time, relive's version, CRIU's dump statistics. Shared by the PID-tree and runc paths.
#pragma once

#include <sys/utsname.h>

#include <chrono>
#include <string>

#include "common/version.h"
#include "drivers/criu/criu_stats.h"
#include "wire/archive_types.h"

namespace relive::container {

inline int64_t to_us(double ms) { return ms < 0 ? -1 : static_cast<int64_t>(ms * 1000); }

inline void fill_host_facts(Manifest* m, const std::string& fs_note) {
  utsname u{};
  if (::uname(&u) == 0) {
    m->source_host = u.nodename;
    m->kernel = std::string(u.sysname) + " " + u.release + " " + u.version;
  }
  m->created_realtime_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  m->relive_version = kVersion;
  m->fs_note = fs_note;
}

inline void fill_stats(const criu::CriuStats& s, Manifest* m) {
  m->stats = {to_us(s.freezing_ms), to_us(s.frozen_ms), to_us(s.memdump_ms),
              to_us(s.memwrite_ms), s.pages_scanned,    s.pages_written};
}

}  // namespace relive::container
