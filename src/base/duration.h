// src/base/duration.h — "90s", "15m", "1h", "7d" as used by every --since flag
// and the query API's `since` parameter.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/status.h"

namespace cpuledger {

// ParseDurationUs() — a positive integer followed by one unit: us, ms, s, m,
// h, d, w. RETURNS: microseconds, or InvalidArgument quoting the text.
Result<int64_t> ParseDurationUs(std::string_view text);

// NowUnixUs() — the wall clock in unix microseconds.
int64_t NowUnixUs();

}  // namespace cpuledger
