// src/base/time_text.h — points in time as people write and read them: the
// `--end`/`--at` flags, and the times in detector messages.
//
//   ParseTimeUs("2026-12-04T18:00:00Z", now)  -> that instant
//   ParseTimeUs("18:00", now)                  -> the latest 18:00 UTC at or before now
//   ParseTimeUs("1796401544", now)             -> unix seconds
//   UtcMinute(t_us)                            -> "2026-12-04 18:00 UTC"
//   HumanDelay(90 * 60 * 1'000'000)            -> "1 h 30 min"
// Every time is UTC: a fleet spans time zones, its books do not.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace cpuledger {

// ParseTimeUs() — unix seconds (fractions allowed), an ISO 8601 UTC date and
// time ("2026-12-04T18:00:00Z", "2026-12-04 18:00", seconds optional, "Z"
// optional), or a time of day "HH:MM" meaning its latest occurrence at or
// before `now_us`. RETURNS: unix microseconds, or InvalidArgument quoting
// the text and naming the forms.
Result<int64_t> ParseTimeUs(std::string_view text, int64_t now_us);

// UtcMinute() — unix microseconds as "2026-12-04 18:00 UTC".
std::string UtcMinute(int64_t unix_us);

// HumanDelay() — a span as "45 s", "12 min", "1 h 30 min", "2 d 3 h".
std::string HumanDelay(int64_t us);

}  // namespace cpuledger
