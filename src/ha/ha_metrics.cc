#include "ha/ha_metrics.h"

#include <memory>

namespace relive::ha {
namespace {

// Frozen times and epoch durations: well under a second when things go well.
std::vector<double> epoch_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
          0.2,   0.3,    0.5,   0.75, 1,     2.5,  5,     10};
}

}  // namespace

HaMetrics::HaMetrics(metrics::Registry* r) : registry_(r) {
  if (r == nullptr) return;
  epochs_ = r->counter("relive_ha_epochs_total",
                       "HA epochs: as primary, epochs the backup acknowledged; as backup, epochs "
                       "applied.",
                       {"side"});
  bytes_ = r->counter("relive_ha_epoch_bytes_shipped_total",
                      "Bytes the primary shipped to the backup in acknowledged epochs (on the "
                      "wire, compressed).");
  disk_bytes_ = r->counter("relive_ha_epoch_disk_bytes_total",
                           "VM disk blocks the primary shipped in acknowledged epochs (bytes, "
                           "before compression).");
  takeovers_ = r->counter("relive_ha_takeovers_total",
                          "Times this node took over as primary from the last committed epoch "
                          "(failover or planned switchover).");
  fences_ = r->counter("relive_ha_fences_total",
                       "Times this node fenced itself (lost the lease, the workload exited, a "
                       "takeover failed).");
  frozen_ = r->histogram("relive_ha_epoch_frozen_seconds",
                         "Primary: how long the workload was frozen for each epoch's checkpoint.",
                         epoch_buckets());
  epoch_time_ = r->histogram("relive_ha_epoch_duration_seconds",
                             "Primary: each acknowledged epoch from its checkpoint to the "
                             "backup's acknowledgement (capture + ship + commit).",
                             epoch_buckets());
}

void HaMetrics::watch(std::function<HaSnapshot()> snapshot) {
  if (registry_ == nullptr) return;
  using metrics::Sample;
  using metrics::Type;
  auto snap = std::make_shared<std::function<HaSnapshot()>>(std::move(snapshot));
  auto one = [&](const char* name, const char* help, Type type,
                 std::function<std::vector<Sample>(const HaSnapshot&)> pick) {
    watched_.push_back(
        registry_->callback(name, help, type, {}, [snap, pick] { return pick((*snap)()); }));
  };
  watched_.push_back(registry_->callback(
      "relive_ha_role", "1 for this node's current HA role (starting, primary, backup, fenced).",
      Type::kGauge, {"role"}, [snap] {
        std::string now = (*snap)().role;
        std::vector<Sample> out;
        for (const char* r : {"starting", "primary", "backup", "fenced"})
          out.push_back({{r}, now == r ? 1.0 : 0.0});
        return out;
      }));
  one("relive_ha_committed_epoch",
      "The last epoch the backup acknowledged (primary) or applied (backup); 0 before any.",
      Type::kGauge, [](const HaSnapshot& s) {
        return std::vector<Sample>{{{}, double(s.committed_epoch)}};
      });
  one("relive_ha_protected",
      "Primary: 1 while a backup holds every epoch (output waits for it), 0 when serving "
      "unprotected.",
      Type::kGauge, [](const HaSnapshot& s) {
        return std::vector<Sample>{{{}, s.is_protected ? 1.0 : 0.0}};
      });
  one("relive_ha_backup_lag_seconds",
      "Primary, protected: age of the newest epoch the backup acknowledged (what a failover "
      "now would roll back; output younger than it is held). Absent otherwise.",
      Type::kGauge, [](const HaSnapshot& s) {
        return s.lag_s < 0 ? std::vector<Sample>{} : std::vector<Sample>{{{}, s.lag_s}};
      });
  one("relive_ha_lease_held",
      "1 while this node holds the etcd fencing lease and may serve (primary), else 0.",
      Type::kGauge, [](const HaSnapshot& s) {
        return std::vector<Sample>{{{}, s.lease_held ? 1.0 : 0.0}};
      });
  one("relive_ha_lease_remaining_seconds",
      "Primary: time left on the fencing lease by the conservative local clock (negative: "
      "expired). Absent when this node has no lease.",
      Type::kGauge, [](const HaSnapshot& s) {
        return s.role == std::string("primary") ? std::vector<Sample>{{{}, s.lease_remaining_s}}
                                                : std::vector<Sample>{};
      });
  one("relive_ha_output_held_packets",
      "Primary: packets the workload sent that the NFQUEUE output buffer holds now, waiting "
      "for their epoch's acknowledgement.",
      Type::kGauge, [](const HaSnapshot& s) {
        return s.has_output ? std::vector<Sample>{{{}, double(s.output_held)}}
                            : std::vector<Sample>{};
      });
  one("relive_ha_output_released_packets",
      "Primary: packets the output buffer let out since it was created (it is created anew at "
      "each start or takeover).",
      Type::kGauge, [](const HaSnapshot& s) {
        return s.has_output ? std::vector<Sample>{{{}, double(s.output_released)}}
                            : std::vector<Sample>{};
      });
  one("relive_ha_output_dropped_packets",
      "Primary: held packets the output buffer dropped (fence, switchover) since it was "
      "created.",
      Type::kGauge, [](const HaSnapshot& s) {
        return s.has_output ? std::vector<Sample>{{{}, double(s.output_dropped)}}
                            : std::vector<Sample>{};
      });
}

void HaMetrics::epoch_committed(double frozen_ms, double epoch_ms, uint64_t bytes,
                                uint64_t disk_bytes) {
  if (registry_ == nullptr) return;
  epochs_->with({"primary"}).inc();
  bytes_->get().inc(static_cast<double>(bytes));
  disk_bytes_->get().inc(static_cast<double>(disk_bytes));
  frozen_->get().observe(frozen_ms / 1000);
  epoch_time_->get().observe(epoch_ms / 1000);
}

void HaMetrics::epoch_applied() {
  if (registry_ != nullptr) epochs_->with({"backup"}).inc();
}

void HaMetrics::took_over() {
  if (registry_ != nullptr) takeovers_->get().inc();
}

void HaMetrics::fenced() {
  if (registry_ != nullptr) fences_->get().inc();
}

}  // namespace relive::ha
