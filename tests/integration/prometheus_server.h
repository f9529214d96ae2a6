// A real Prometheus server (Debian's /usr/bin/prometheus, not its system service) for the
// metrics tests: it runs in one host of a NetnsHosts test bed with its own config and storage
// under a test directory, listens on that host's loopback, scrapes the given relived targets
// every second as job "relived", and is queried through its HTTP API (/api/v1/query).
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "netns_hosts.h"
#include "test_util.h"

namespace relive::testing {

inline constexpr const char* kPrometheusBin = "/usr/bin/prometheus";

class PrometheusServer {
 public:
  // `targets`: "ADDR:PORT" of each relived metrics endpoint, reachable from `host`.
  PrometheusServer(const NetnsHosts& hosts, char host, const std::string& dir,
                   const std::vector<std::string>& targets)
      : hosts_(hosts), host_(host), dir_(dir) {
    std::string list;
    for (const std::string& t : targets) list += (list.empty() ? "'" : ", '") + t + "'";
    write_all_to(dir_ + "/prometheus.yml", fmt::format(R"(global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: relived
    static_configs:
      - targets: [{}]
)",
                                                       list));
    server_ = std::make_unique<Background>(
        hosts_.in(host_, {kPrometheusBin, "--config.file", dir_ + "/prometheus.yml",
                          "--storage.tsdb.path", dir_ + "/tsdb", "--web.listen-address",
                          "127.0.0.1:9090", "--storage.tsdb.retention.time", "1h"}),
        dir_ + "/prometheus.log", dir_ + "/prometheus.log");
  }
  ~PrometheusServer() { server_.reset(); }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  std::string log() const { return read_all(dir_ + "/prometheus.log"); }

  // The API's answer to an instant query `expr`, or null when it did not answer with success.
  nlohmann::json query(const std::string& expr) const {
    RunResult r =
        run(hosts_.in(host_, {"/usr/bin/curl", "-s", "-G", "--max-time", "5", "--data-urlencode",
                              "query=" + expr, "http://127.0.0.1:9090/api/v1/query"}),
            15);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("status", "") != "success") return nullptr;
    return j["data"];
  }

  // The value of the first sample `expr` yields, if any.
  std::optional<double> value(const std::string& expr) const {
    nlohmann::json d = query(expr);
    if (!d.is_object() || !d.contains("result") || !d["result"].is_array() || d["result"].empty())
      return std::nullopt;
    const nlohmann::json& v = d["result"][0]["value"];
    if (!v.is_array() || v.size() != 2 || !v[1].is_string()) return std::nullopt;
    return std::stod(v[1].get<std::string>());
  }

  // True once `expr`'s first value satisfies `pred`, polled until `limit`.
  template <typename Pred>
  bool wait_for(const std::string& expr, Pred pred, std::chrono::seconds limit) const {
    return eventually(
        [&] {
          std::optional<double> v = value(expr);
          return v.has_value() && pred(*v);
        },
        limit);
  }

 private:
  const NetnsHosts& hosts_;
  char host_;
  std::string dir_;
  std::unique_ptr<Background> server_;
};

}  // namespace relive::testing
