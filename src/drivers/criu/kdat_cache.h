// CRIU's kernel-feature cache. Every CRIU run first probes the kernel (creating namespaces,
// veths, userfaultfds...), which costs ~100 ms here, and keeps the result in /run/criu.kdat only
// when /run is a tmpfs (so a reboot clears it). On machines whose /run is a plain directory, as
// on our test machines, the cache is never kept and every dump pays the probes; an HA epoch loop
// that dumps several times a second cannot afford that. KdatCache makes the cache for as long as
// it lives: `criu check` in a private mount namespace whose /run is a tmpfs, the file copied to
// /run, and removed again by the destructor so that a later kernel never sees a stale one.
// Where /run is a tmpfs it does nothing: CRIU keeps its own cache there.
#pragma once

#include <string>

#include "relive/result.h"

namespace relive::criu {

class KdatCache {
 public:
  // Never fails the caller: without a cache CRIU is only slower. `note` says what happened.
  static KdatCache prime(const std::string& criu);
  KdatCache(KdatCache&& o) noexcept : installed_(o.installed_), note_(std::move(o.note_)) {
    o.installed_ = false;
  }
  KdatCache& operator=(KdatCache&&) = delete;
  ~KdatCache();

  const std::string& note() const { return note_; }

 private:
  KdatCache(bool installed, std::string note) : installed_(installed), note_(std::move(note)) {}
  bool installed_;
  std::string note_;
};

}  // namespace relive::criu
