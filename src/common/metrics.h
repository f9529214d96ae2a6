// Metrics: the numbers relived exposes to Prometheus (text exposition format 0.0.4). A Registry
// holds metric families (counters, gauges, histograms with fixed buckets), each with a fixed
// list of label names; `family->with({values})` gives the child for one set of label values.
// Callback families compute their samples when scraped (state such as an HA node's role).
//
// Threading: everything here may be used from any thread. Counters and gauges are lock-free;
// a histogram observation takes the histogram's own mutex. Families and children live as long
// as the Registry: the references handed out stay valid while it does. render() holds the
// registry's lock while it runs the callbacks, so a callback must not register metrics, and
// destroying a CallbackHandle waits for a render that is running its callback.
//
// Names are the program's own (never a peer's): a name or label name that Prometheus would not
// accept, a duplicate registration with another type, or a wrong number of label values is a bug
// (RELIVE_CHECK). Label *values* may be anything; render() escapes them.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace relive::metrics {

using LabelValues = std::vector<std::string>;

class Counter {
 public:
  // `v` must be >= 0 (a counter only goes up); a negative one is ignored.
  void inc(double v = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  struct Snapshot {
    std::vector<double> bounds;    // upper bounds, ascending (+Inf implied)
    std::vector<uint64_t> counts;  // cumulative, one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  Snapshot snapshot() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> buckets_;  // per bucket (not cumulative), last = above every bound
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Bucket bounds for durations in seconds, 1 ms to 5 min.
std::vector<double> duration_buckets();

enum class Type { kCounter, kGauge, kHistogram };

// One family of metrics of type T sharing a name, help text and label names.
template <typename T>
class Family {
 public:
  // The child for these label values (as many as the family has label names), made on first
  // use. The reference stays valid as long as the registry.
  T& with(const LabelValues& values);
  // The family without labels: its only child.
  T& get() { return with({}); }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> buckets)
      : name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(labels)),
        buckets_(std::move(buckets)) {}
  const std::string name_, help_;
  const std::vector<std::string> labels_;
  const std::vector<double> buckets_;  // histograms only
  mutable std::mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> children_;
};

// A sample a callback family reports: label values (one per label name) and the value.
struct Sample {
  LabelValues labels;
  double value = 0;
};
using Collect = std::function<std::vector<Sample>()>;

class Registry;
// Owns a callback family's registration: while it lives the family is rendered; its destructor
// removes it (waiting for a render that is running the callback). Move-only.
class CallbackHandle {
 public:
  CallbackHandle() = default;
  CallbackHandle(CallbackHandle&& o) noexcept : registry_(o.registry_), id_(o.id_) {
    o.registry_ = nullptr;
  }
  CallbackHandle& operator=(CallbackHandle&& o) noexcept;
  ~CallbackHandle() { reset(); }
  void reset();

 private:
  friend class Registry;
  CallbackHandle(Registry* r, uint64_t id) : registry_(r), id_(id) {}
  Registry* registry_ = nullptr;
  uint64_t id_ = 0;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registering a name again with the same type and labels returns the existing family.
  Family<Counter>* counter(const std::string& name, const std::string& help,
                           std::vector<std::string> labels = {});
  Family<Gauge>* gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> labels = {});
  Family<Histogram>* histogram(const std::string& name, const std::string& help,
                               std::vector<double> buckets, std::vector<std::string> labels = {});
  // A family whose samples `collect` returns at each render (type counter or gauge).
  [[nodiscard]] CallbackHandle callback(const std::string& name, const std::string& help, Type type,
                                        std::vector<std::string> labels, Collect collect);

  // Every family in the text exposition format, version 0.0.4, in registration order.
  std::string render() const;

 private:
  friend class CallbackHandle;
  struct Entry {
    std::string name, help;
    Type type;
    std::vector<std::string> labels;
    std::shared_ptr<void> family;  // Family<T>, or null for a callback family
    uint64_t callback_id = 0;
    Collect collect;
  };
  Entry* find_locked(const std::string& name, Type type, const std::vector<std::string>& labels);
  void remove_callback(uint64_t id);

  mutable std::mutex mu_;
  std::vector<Entry> entries_;
  uint64_t next_callback_id_ = 1;
};

// The MIME type of render()'s output.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Text-format helpers (exposed for the tests).
std::string escape_label_value(const std::string& v);
std::string escape_help(const std::string& v);
std::string format_value(double v);

}  // namespace relive::metrics
