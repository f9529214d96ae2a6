// HaMetrics: what an HA node (relived --ha-config) tells Prometheus (docs/metrics.md lists the
// names): its role, the epochs, their frozen time, the backup's lag, the lease and the output
// buffer. Events (an epoch committed, a takeover, a fence) are counted as they happen; state is
// read from the node when Prometheus scrapes, through the snapshot function given to watch().
// Thread-safe. Without a registry every call does nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/metrics.h"

namespace relive::ha {

// The node's state at a scrape.
struct HaSnapshot {
  const char* role = "starting";  // role_name()
  uint64_t committed_epoch = 0;
  bool is_protected = false;  // primary: a backup has every epoch up to committed_epoch
  double lag_s = -1;          // primary, protected: age of the last acknowledged epoch; else -1
  bool lease_held = false;    // primary: the fencing lease is certainly ours
  double lease_remaining_s = 0;
  bool has_output = false;  // primary: the output buffer exists (the values below are its)
  uint64_t output_held = 0, output_released = 0, output_dropped = 0;
};

class HaMetrics {
 public:
  // `registry` may be null (no metrics); otherwise it must outlive this object.
  explicit HaMetrics(metrics::Registry* registry);

  // Registers the state families, read through `snapshot` at each scrape until this object
  // goes. `snapshot` must stay callable that long and must not touch the registry.
  void watch(std::function<HaSnapshot()> snapshot);

  // Primary: an epoch the backup acknowledged; `disk_bytes` of a VM's disk blocks in it
  // (before compression).
  void epoch_committed(double frozen_ms, double epoch_ms, uint64_t bytes, uint64_t disk_bytes = 0);
  // Backup: an epoch applied.
  void epoch_applied();
  void took_over();
  void fenced();

 private:
  metrics::Registry* registry_;
  metrics::Family<metrics::Counter>* epochs_ = nullptr;
  metrics::Family<metrics::Counter>* bytes_ = nullptr;
  metrics::Family<metrics::Counter>* disk_bytes_ = nullptr;
  metrics::Family<metrics::Counter>* takeovers_ = nullptr;
  metrics::Family<metrics::Counter>* fences_ = nullptr;
  metrics::Family<metrics::Histogram>* frozen_ = nullptr;
  metrics::Family<metrics::Histogram>* epoch_time_ = nullptr;
  std::vector<metrics::CallbackHandle> watched_;  // last: removed before anything above goes
};

}  // namespace relive::ha
