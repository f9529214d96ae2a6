#include "agent/migrated_line.h"

#include <nlohmann/json.hpp>

namespace relive::agent {

std::string migrated_line(const migrate::DestinationOutcome& r, const std::string& id) {
  nlohmann::json j = {{"event", "migrated"},       {"migration", id},   {"name", r.name},
                      {"strategy", r.strategy},    {"pid", r.root_pid}, {"init_pid", r.init_pid},
                      {"restore_ms", r.restore_ms}};
  if (!r.bundle.empty()) j["bundle"] = r.bundle;
  if (!r.vm_dir.empty()) j["vm_dir"] = r.vm_dir, j["qmp"] = r.vm_qmp;
  // The name is the peer's bytes: invalid UTF-8 is replaced, never thrown on.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void LineWriter::write(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

}  // namespace relive::agent
