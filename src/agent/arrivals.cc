#include "agent/arrivals.h"

#include <fmt/format.h>

namespace relive::agent {

class Arrivals::Claim : public migrate::ArrivalClaim {
 public:
  Claim(Arrivals* owner, std::string name) : owner_(owner), name_(std::move(name)) {}
  ~Claim() override { owner_->release(name_); }

 private:
  Arrivals* owner_;
  std::string name_;
};

Arrivals::Arrivals(int max_concurrent, int total_limit)
    : max_concurrent_(max_concurrent < 1 ? 1 : max_concurrent), total_limit_(total_limit) {}

Result<std::unique_ptr<migrate::ArrivalClaim>> Arrivals::admit(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (total_limit_ > 0 && admitted_ >= total_limit_) {
    return Status::Aborted(
        fmt::format("destination is not accepting more migrations (it serves {} and then exits)",
                    total_limit_));
  }
  if (!name.empty() && names_.count(name) != 0) {
    return Status::Aborted(fmt::format(
        "workload '{}' is already arriving here (another migration of it is in progress)", name));
  }
  if (in_progress_ >= max_concurrent_) {
    return Status::Aborted(
        fmt::format("destination busy: {} migrations in progress (max_concurrent {})", in_progress_,
                    max_concurrent_));
  }
  ++in_progress_;
  ++admitted_;
  if (!name.empty()) names_.insert(name);
  return std::unique_ptr<migrate::ArrivalClaim>(std::make_unique<Claim>(this, name));
}

void Arrivals::release(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  --in_progress_;
  if (!name.empty()) names_.erase(name);
}

int Arrivals::in_progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_progress_;
}

int Arrivals::admitted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return admitted_;
}

bool Arrivals::exhausted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_limit_ > 0 && admitted_ >= total_limit_;
}

}  // namespace relive::agent
