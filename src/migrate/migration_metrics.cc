#include "migrate/migration_metrics.h"

#include <utility>

namespace relive::migrate {

MigrationMetrics::MigrationMetrics(metrics::Registry* r)
    : started_(r->counter("relive_migrations_started_total",
                          "Incoming migrations that sent migrate.begin, by strategy.",
                          {"strategy"})),
      succeeded_(r->counter("relive_migrations_succeeded_total",
                            "Incoming migrations committed here (the workload runs on this host), "
                            "by strategy.",
                            {"strategy"})),
      failed_(r->counter("relive_migrations_failed_total",
                         "Incoming connections that did not end in a committed migration (refused, "
                         "aborted by the source, lost, or failed here), by strategy (\"unknown\" "
                         "before migrate.begin).",
                         {"strategy"})),
      bytes_(r->counter("relive_migration_bytes_received_total",
                        "Workload bytes received by incoming migrations (image files, pre-copy "
                        "and CR/TR pages, CR/TR logs; uncompressed sizes). Not included: post-copy "
                        "pages CRIU pulls itself and a VM's QEMU stream.",
                        {"strategy"})),
      downtime_(r->histogram(
          "relive_migration_downtime_seconds",
          "Downtime of committed incoming migrations: the time the source says the workload had "
          "been frozen when it sent migrate.restore, plus the time from receiving migrate.restore "
          "here to resuming the workload (the source's reported downtime, up to one network "
          "latency). Process, process-tree and runc migrations; not VMs.",
          metrics::duration_buckets(), {"strategy"})),
      duration_(r->histogram("relive_migration_duration_seconds",
                             "Total time of committed incoming migrations, from the connection "
                             "arriving here to the commit.",
                             metrics::duration_buckets(), {"strategy"})),
      in_progress_(&r->gauge("relive_migrations_in_progress",
                             "Incoming migration connections being served now.")
                        ->get()) {}

MigrationMetrics::Record::Record(MigrationMetrics* m)
    : m_(m), start_(std::chrono::steady_clock::now()) {
  m_->in_progress_->add(1);
}

MigrationMetrics::Record::Record(Record&& o) noexcept
    : m_(std::exchange(o.m_, nullptr)),
      strategy_(std::move(o.strategy_)),
      began_(o.began_),
      start_(o.start_),
      downtime_ms_(o.downtime_ms_) {}

MigrationMetrics::Record& MigrationMetrics::Record::operator=(Record&& o) noexcept {
  if (this != &o) {
    finish(false);
    m_ = std::exchange(o.m_, nullptr);
    strategy_ = std::move(o.strategy_);
    began_ = o.began_;
    start_ = o.start_;
    downtime_ms_ = o.downtime_ms_;
  }
  return *this;
}

MigrationMetrics::Record::~Record() { finish(false); }

void MigrationMetrics::Record::begin(const std::string& strategy) {
  if (m_ == nullptr || began_) return;
  began_ = true;
  strategy_ = strategy;
  m_->started_->with({strategy_}).inc();
}

void MigrationMetrics::Record::add_bytes(uint64_t n) {
  if (m_ != nullptr) m_->bytes_->with({strategy_}).inc(static_cast<double>(n));
}

void MigrationMetrics::Record::succeeded() { finish(true); }

void MigrationMetrics::Record::finish(bool ok) {
  if (m_ == nullptr) return;
  MigrationMetrics* m = std::exchange(m_, nullptr);
  m->in_progress_->add(-1);
  if (!ok) {
    m->failed_->with({strategy_}).inc();
    return;
  }
  m->succeeded_->with({strategy_}).inc();
  if (downtime_ms_ >= 0) m->downtime_->with({strategy_}).observe(downtime_ms_ / 1000);
  std::chrono::duration<double> total = std::chrono::steady_clock::now() - start_;
  m->duration_->with({strategy_}).observe(total.count());
}

}  // namespace relive::migrate
