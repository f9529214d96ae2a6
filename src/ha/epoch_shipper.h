// Shipping one captured epoch from the primary to the backup over the replication link: the
// haEpoch command, the images, the changed pages, the directory changes, and the haCommit whose
// Ack means the backup has applied the epoch (schemas/migration.capnp lists the exchange). Only
// after that Ack may the epoch's held output be released.
#pragma once

#include <cstdint>
#include <string>

#include "ha/epoch_capture.h"
#include "relive/result.h"
#include "transfer/link.h"

namespace relive::ha {

struct ShippedEpoch {
  uint64_t wire_bytes = 0;  // after LZ4, what crossed the link
};

Result<ShippedEpoch> ship_epoch(transfer::Link* link, const CapturedEpoch& e,
                                const std::string& primary);

}  // namespace relive::ha
