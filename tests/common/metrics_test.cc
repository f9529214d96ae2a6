#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace relive::metrics {
namespace {

TEST(Metrics, RendersCounterWithHelpTypeAndLabels) {
  Registry r;
  Family<Counter>* c = r.counter("relive_things_total", "Things done.", {"kind"});
  c->with({"a"}).inc();
  c->with({"a"}).inc(2);
  c->with({"b"}).inc();
  EXPECT_EQ(r.render(),
            "# HELP relive_things_total Things done.\n"
            "# TYPE relive_things_total counter\n"
            "relive_things_total{kind=\"a\"} 3\n"
            "relive_things_total{kind=\"b\"} 1\n");
}

TEST(Metrics, CounterIgnoresNegativeAndNaN) {
  Registry r;
  Counter& c = r.counter("c_total", "c")->get();
  c.inc(1.5);
  c.inc(-4);
  c.inc(std::nan(""));
  EXPECT_DOUBLE_EQ(c.value(), 1.5);
}

TEST(Metrics, GaugeWithoutLabels) {
  Registry r;
  Gauge& g = r.gauge("relive_level", "Level.")->get();
  g.set(2.5);
  g.add(-1);
  EXPECT_EQ(r.render(),
            "# HELP relive_level Level.\n"
            "# TYPE relive_level gauge\n"
            "relive_level 1.5\n");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  Histogram& h = r.histogram("relive_wait_seconds", "Wait.", {0.1, 1}, {"s"})->with({"x"});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counts in that bucket (le)
  h.observe(0.5);
  h.observe(7);
  EXPECT_EQ(r.render(),
            "# HELP relive_wait_seconds Wait.\n"
            "# TYPE relive_wait_seconds histogram\n"
            "relive_wait_seconds_bucket{s=\"x\",le=\"0.1\"} 2\n"
            "relive_wait_seconds_bucket{s=\"x\",le=\"1\"} 3\n"
            "relive_wait_seconds_bucket{s=\"x\",le=\"+Inf\"} 4\n"
            "relive_wait_seconds_sum{s=\"x\"} 7.65\n"
            "relive_wait_seconds_count{s=\"x\"} 4\n");
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
  Registry r;
  r.gauge("g", "line one\nback\\slash \"quoted\"", {"l"})->with({"a\"b\\c\nd"}).set(1);
  EXPECT_EQ(r.render(),
            "# HELP g line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE g gauge\n"
            "g{l=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Metrics, FormatsSpecialValues) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1e300), "1e+300");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
}

TEST(Metrics, SameRegistrationReturnsSameFamily) {
  Registry r;
  EXPECT_EQ(r.counter("x_total", "x", {"a"}), r.counter("x_total", "x", {"a"}));
}

TEST(MetricsDeathTest, RejectsInvalidNamesAndMismatches) {
  Registry r;
  EXPECT_DEATH(r.counter("1bad", "x"), "invalid metric name");
  EXPECT_DEATH(r.counter("ok_total", "x", {"__reserved"}), "invalid label name");
  EXPECT_DEATH(r.counter("ok_total", "x", {"le"}), "invalid label name");
  r.counter("dup_total", "x");
  EXPECT_DEATH(r.gauge("dup_total", "x"), "registered twice");
  Family<Counter>* f = r.counter("two_total", "x", {"a", "b"});
  EXPECT_DEATH(f->with({"only one"}), "label values");
}

TEST(Metrics, CallbackFamilyIsCollectedAtRenderAndRemovedWithItsHandle) {
  Registry r;
  int calls = 0;
  {
    CallbackHandle h = r.callback("relive_role", "Role.", Type::kGauge, {"role"}, [&] {
      ++calls;
      return std::vector<Sample>{{{"primary"}, 1}, {{"backup"}, 0}, {{"wrong", "arity"}, 5}};
    });
    EXPECT_EQ(r.render(),
              "# HELP relive_role Role.\n"
              "# TYPE relive_role gauge\n"
              "relive_role{role=\"primary\"} 1\n"
              "relive_role{role=\"backup\"} 0\n");
    EXPECT_EQ(calls, 1);
    CallbackHandle moved = std::move(h);
    (void)r.render();
    EXPECT_EQ(calls, 2);
  }
  EXPECT_EQ(r.render(), "");
  EXPECT_EQ(calls, 2);
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
  Registry r;
  Family<Counter>* c = r.counter("n_total", "n", {"t"});
  Family<Histogram>* h = r.histogram("h_seconds", "h", duration_buckets());
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        c->with({std::to_string(t % 2)}).inc();
        h->get().observe(0.002);
        if (i % 1000 == 0) (void)r.render();
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_DOUBLE_EQ(c->with({"0"}).value() + c->with({"1"}).value(), 40000);
  EXPECT_EQ(h->get().snapshot().count, 40000u);
}

}  // namespace
}  // namespace relive::metrics
