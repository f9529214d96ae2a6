#include "common/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace relive::metrics {
namespace {

bool valid_name(const std::string& n, bool metric) {
  if (n.empty()) return false;
  auto ok_first = [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':');
  };
  if (!ok_first(n[0])) return false;
  for (char c : n)
    if (!ok_first(c) && !(c >= '0' && c <= '9')) return false;
  return metric || !n.starts_with("__");
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// {a="x",b="y"}, with `extra` (already formatted, e.g. le="0.5") last; "" without labels.
std::string label_set(const std::vector<std::string>& names, const LabelValues& values,
                      const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i)
    out +=
        fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i], escape_label_value(values[i]));
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? out : "{" + out + "}";
}

void render_histogram(std::string* out, const std::string& name,
                      const std::vector<std::string>& labels, const LabelValues& values,
                      const Histogram::Snapshot& s) {
  for (size_t i = 0; i <= s.bounds.size(); ++i) {
    std::string le = i < s.bounds.size() ? format_value(s.bounds[i]) : "+Inf";
    *out += fmt::format("{}_bucket{} {}\n", name, label_set(labels, values, "le=\"" + le + "\""),
                        s.counts[i]);
  }
  *out += fmt::format("{}_sum{} {}\n", name, label_set(labels, values), format_value(s.sum));
  *out += fmt::format("{}_count{} {}\n", name, label_set(labels, values), s.count);
}

}  // namespace

void Counter::inc(double v) {
  if (!(v >= 0)) return;  // also NaN
  double cur = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

void Gauge::add(double v) {
  double cur = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  if (!std::isfinite(v)) return;  // one +Inf would poison the sum for good
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  std::lock_guard<std::mutex> l(mu_);
  ++buckets_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard<std::mutex> l(mu_);
  uint64_t run = 0;
  for (uint64_t b : buckets_) s.counts.push_back(run += b);
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> duration_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

template <typename T>
T& Family<T>::with(const LabelValues& values) {
  RELIVE_CHECK(values.size() == labels_.size(), "metric {}: {} label values for {} labels", name_,
               values.size(), labels_.size());
  std::lock_guard<std::mutex> l(mu_);
  std::unique_ptr<T>& child = children_[values];
  if (!child) {
    if constexpr (std::is_same_v<T, Histogram>)
      child = std::make_unique<T>(buckets_);
    else
      child = std::make_unique<T>();
  }
  return *child;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

CallbackHandle& CallbackHandle::operator=(CallbackHandle&& o) noexcept {
  if (this != &o) {
    reset();
    registry_ = o.registry_;
    id_ = o.id_;
    o.registry_ = nullptr;
  }
  return *this;
}

void CallbackHandle::reset() {
  if (registry_ != nullptr) registry_->remove_callback(id_);
  registry_ = nullptr;
}

Registry::Entry* Registry::find_locked(const std::string& name, Type type,
                                       const std::vector<std::string>& labels) {
  RELIVE_CHECK(valid_name(name, true), "invalid metric name '{}'", name);
  for (const std::string& l : labels)
    RELIVE_CHECK(valid_name(l, false) && l != "le", "metric {}: invalid label name '{}'", name, l);
  for (Entry& e : entries_) {
    if (e.name != name) continue;
    RELIVE_CHECK(e.type == type && e.labels == labels && e.callback_id == 0,
                 "metric {} registered twice, differently", name);
    return &e;
  }
  return nullptr;
}

Family<Counter>* Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> labels) {
  std::lock_guard<std::mutex> l(mu_);
  if (Entry* e = find_locked(name, Type::kCounter, labels))
    return static_cast<Family<Counter>*>(e->family.get());
  std::shared_ptr<Family<Counter>> f(new Family<Counter>(name, help, labels, {}));
  entries_.push_back({name, help, Type::kCounter, std::move(labels), f, 0, {}});
  return f.get();
}

Family<Gauge>* Registry::gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> labels) {
  std::lock_guard<std::mutex> l(mu_);
  if (Entry* e = find_locked(name, Type::kGauge, labels))
    return static_cast<Family<Gauge>*>(e->family.get());
  std::shared_ptr<Family<Gauge>> f(new Family<Gauge>(name, help, labels, {}));
  entries_.push_back({name, help, Type::kGauge, std::move(labels), f, 0, {}});
  return f.get();
}

Family<Histogram>* Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<double> buckets,
                                       std::vector<std::string> labels) {
  RELIVE_CHECK(!buckets.empty() && std::is_sorted(buckets.begin(), buckets.end()) &&
                   std::adjacent_find(buckets.begin(), buckets.end()) == buckets.end(),
               "histogram {}: bucket bounds must ascend", name);
  std::lock_guard<std::mutex> l(mu_);
  if (Entry* e = find_locked(name, Type::kHistogram, labels))
    return static_cast<Family<Histogram>*>(e->family.get());
  std::shared_ptr<Family<Histogram>> f(
      new Family<Histogram>(name, help, labels, std::move(buckets)));
  entries_.push_back({name, help, Type::kHistogram, std::move(labels), f, 0, {}});
  return f.get();
}

CallbackHandle Registry::callback(const std::string& name, const std::string& help, Type type,
                                  std::vector<std::string> labels, Collect collect) {
  RELIVE_CHECK(type != Type::kHistogram, "callback metric {} cannot be a histogram", name);
  std::lock_guard<std::mutex> l(mu_);
  for (const Entry& e : entries_) RELIVE_CHECK(e.name != name, "metric {} registered twice", name);
  (void)find_locked(name, type, labels);  // validates the names
  uint64_t id = next_callback_id_++;
  entries_.push_back({name, help, type, std::move(labels), nullptr, id, std::move(collect)});
  return CallbackHandle(this, id);
}

void Registry::remove_callback(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  std::erase_if(entries_, [id](const Entry& e) { return e.callback_id == id; });
}

std::string Registry::render() const {
  std::lock_guard<std::mutex> l(mu_);
  std::string out;
  for (const Entry& e : entries_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", e.name, escape_help(e.help), e.name,
                       type_name(e.type));
    if (e.collect) {
      for (const Sample& s : e.collect()) {
        if (s.labels.size() != e.labels.size()) continue;  // a bug in the callback: skip it
        out +=
            fmt::format("{}{} {}\n", e.name, label_set(e.labels, s.labels), format_value(s.value));
      }
      continue;
    }
    auto each = [&](const auto* family, auto emit) {
      std::lock_guard<std::mutex> fl(family->mu_);
      for (const auto& [values, child] : family->children_) emit(values, *child);
    };
    switch (e.type) {
      case Type::kCounter:
        each(static_cast<const Family<Counter>*>(e.family.get()), [&](const LabelValues& v,
                                                                      const Counter& c) {
          out += fmt::format("{}{} {}\n", e.name, label_set(e.labels, v), format_value(c.value()));
        });
        break;
      case Type::kGauge:
        each(static_cast<const Family<Gauge>*>(e.family.get()), [&](const LabelValues& v,
                                                                    const Gauge& g) {
          out += fmt::format("{}{} {}\n", e.name, label_set(e.labels, v), format_value(g.value()));
        });
        break;
      case Type::kHistogram:
        each(static_cast<const Family<Histogram>*>(e.family.get()),
             [&](const LabelValues& v, const Histogram& h) {
               render_histogram(&out, e.name, e.labels, v, h.snapshot());
             });
        break;
    }
  }
  return out;
}

std::string escape_label_value(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);  // shortest round-trip form
}

}  // namespace relive::metrics
