#include "base/delivery.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <string>

namespace cpuledger::delivery {

using std::chrono::milliseconds;

Verdict Classify(int http_status) {
  if (http_status >= 200 && http_status < 300) return Verdict::kDelivered;
  if (http_status == 408 || http_status == 429) return Verdict::kRetry;
  if (http_status >= 400 && http_status < 500) return Verdict::kRefused;
  return Verdict::kRetry;
}

milliseconds ParseRetryAfter(std::string_view value, std::chrono::system_clock::time_point now) {
  constexpr int64_t kDaySeconds = 86'400;
  if (value.empty()) return milliseconds(0);
  int64_t seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size())
    return milliseconds(std::clamp<int64_t>(seconds, 0, kDaySeconds) * 1000);
  // IMF-fixdate, the HTTP-date form senders must accept (RFC 9110 5.6.7).
  std::tm tm{};
  const std::string text(value);
  const char* rest = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (rest == nullptr || *rest != '\0') return milliseconds(0);
  const auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  const auto wait = std::chrono::duration_cast<milliseconds>(at - now);
  return std::clamp(wait, milliseconds(0), milliseconds(kDaySeconds * 1000));
}

milliseconds Backoff::Delay(int failures, milliseconds retry_after) const {
  milliseconds wait = std::min(initial, max);
  for (int i = 1; i < failures && wait < max; ++i) wait = std::min(wait * 2, max);
  return std::max(wait, std::min(retry_after, max));
}

}  // namespace cpuledger::delivery
