// Wall-clock helpers (records, leases, a run's start time): ISO-8601 UTC text and epoch
// milliseconds. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace dynamorph::dynamo {

std::int64_t now_epoch_ms();
std::string iso_utc(std::int64_t epoch_ms);  // 2026-11-22T10:15:00.123Z
inline std::string now_iso() { return iso_utc(now_epoch_ms()); }
// 20261122101500, the version form `generate` uses.
std::string utc_timestamp_version(std::int64_t epoch_ms);

}  // namespace dynamorph::dynamo
