#include "base/duration.h"

#include <charconv>
#include <chrono>
#include <string>

namespace cpuledger {

Result<int64_t> ParseDurationUs(std::string_view text) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  const std::string_view unit(end, text.data() + text.size() - end);
  auto bad = [&] {
    return InvalidArgument("bad duration '" + std::string(text) +
                           "' (expected a positive number and a unit: us, ms, s, m, h, d, w; "
                           "e.g. 15m, 24h, 7d)");
  };
  if (ec != std::errc() || n <= 0) return bad();
  int64_t scale = 0;
  if (unit == "us")
    scale = 1;
  else if (unit == "ms")
    scale = 1'000;
  else if (unit == "s")
    scale = 1'000'000;
  else if (unit == "m")
    scale = 60'000'000;
  else if (unit == "h")
    scale = 3'600'000'000;
  else if (unit == "d")
    scale = 86'400'000'000;
  else if (unit == "w")
    scale = 7 * 86'400'000'000;
  else
    return bad();
  if (n > INT64_MAX / scale) return bad();
  return n * scale;
}

int64_t NowUnixUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace cpuledger
