// MigrationMetrics: what relived tells Prometheus about the migrations it receives (the
// destination side; docs/metrics.md lists the names). One Record per incoming migration counts
// it as started, and as failed unless succeeded() is called before it goes; its downtime, total
// time and received bytes go into per-strategy histograms and counters. Thread-safe: several
// migrations may run at once, each with its own Record.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/metrics.h"

namespace relive::migrate {

class MigrationMetrics {
 public:
  // Registers the families in `registry`, which must outlive this object.
  explicit MigrationMetrics(metrics::Registry* registry);

  // One incoming migration. A default-constructed Record (no metrics) does nothing.
  class Record {
   public:
    Record() = default;
    Record(Record&& o) noexcept;
    Record& operator=(Record&& o) noexcept;
    ~Record();  // counts a failure unless succeeded() was called
    // The strategy is known once migrate.begin arrived; until then the label is "unknown".
    void begin(const std::string& strategy);
    // Workload bytes received (files, pages, log), before compression.
    void add_bytes(uint64_t n);
    // The workload's downtime, known at the resume (counted only if the migration succeeds).
    void downtime(double ms) { downtime_ms_ = ms; }
    // The migration committed: counts the success, the downtime and the total time.
    void succeeded();

   private:
    friend class MigrationMetrics;
    explicit Record(MigrationMetrics* m);
    void finish(bool ok);
    MigrationMetrics* m_ = nullptr;
    std::string strategy_ = "unknown";
    bool began_ = false;
    std::chrono::steady_clock::time_point start_;
    double downtime_ms_ = -1;
  };
  // Starts a record: call when a connection arrives (the in-progress gauge counts it from here).
  Record record() { return Record(this); }

 private:
  metrics::Family<metrics::Counter>* started_;
  metrics::Family<metrics::Counter>* succeeded_;
  metrics::Family<metrics::Counter>* failed_;
  metrics::Family<metrics::Counter>* bytes_;
  metrics::Family<metrics::Histogram>* downtime_;
  metrics::Family<metrics::Histogram>* duration_;
  metrics::Gauge* in_progress_;
};

}  // namespace relive::migrate
