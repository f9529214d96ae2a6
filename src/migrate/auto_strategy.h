// `--strategy auto`: measures the workload and the link and picks the strategy that will
// converge soonest with the least downtime; the report carries the reason.
#pragma once

#include <string>

#include "relive/migrate.h"
#include "relive/result.h"
#include "wire/migration_types.h"

namespace relive::migrate {

struct StrategyChoice {
  migration::Strategy strategy = migration::Strategy::kStopCopy;
  std::string reason;
};

Result<StrategyChoice> choose_strategy(const MigrateOptions& options);

}  // namespace relive::migrate
