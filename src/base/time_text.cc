#include "base/time_text.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <ctime>

namespace cpuledger {
namespace {

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kDayUs = 86'400 * kUs;

// Digits() — exactly `n` decimal digits at text[at], or -1.
int Digits(std::string_view text, size_t at, size_t n) {
  if (at + n > text.size()) return -1;
  int v = 0;
  auto [end, ec] = std::from_chars(text.data() + at, text.data() + at + n, v);
  return ec == std::errc() && end == text.data() + at + n ? v : -1;
}

// ParseClock() — "HH:MM" or "HH:MM:SS" at text[at..]: seconds into the day, or -1.
int64_t ParseClock(std::string_view text, size_t at) {
  const std::string_view rest = text.substr(at);
  if (rest.size() != 5 && rest.size() != 8) return -1;
  const int h = Digits(text, at, 2), m = Digits(text, at + 3, 2);
  const int s = rest.size() == 8 ? Digits(text, at + 6, 2) : 0;
  if (rest[2] != ':' || (rest.size() == 8 && rest[5] != ':')) return -1;
  if (h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 59) return -1;
  return h * 3600 + m * 60 + s;
}

}  // namespace

Result<int64_t> ParseTimeUs(std::string_view text, int64_t now_us) {
  auto bad = [&] {
    return InvalidArgument("bad time '" + std::string(text) +
                           "' (expected unix seconds, an ISO 8601 UTC time such as "
                           "2026-12-04T18:00:00Z, or a time of day such as 18:00)");
  };
  if (text.empty()) return bad();
  // Unix seconds.
  if (text.find_first_not_of("0123456789.") == std::string_view::npos) {
    const std::string s(text);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !std::isfinite(v) || v > 1e11) return bad();
    return static_cast<int64_t>(std::llround(v * 1e6));
  }
  // A time of day: its latest occurrence at or before now.
  if (text.size() <= 8) {
    const int64_t clock = ParseClock(text, 0);
    if (clock < 0) return bad();
    const int64_t midnight = now_us - (now_us % kDayUs + kDayUs) % kDayUs;
    const int64_t at = midnight + clock * kUs;
    return at <= now_us ? at : at - kDayUs;
  }
  // ISO 8601: YYYY-MM-DD, then 'T' or ' ', then HH:MM[:SS], then an optional 'Z'.
  std::string_view t = text;
  if (t.back() == 'Z') t.remove_suffix(1);
  const int year = Digits(t, 0, 4), month = Digits(t, 5, 2), day = Digits(t, 8, 2);
  if (t.size() < 16 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != ' ')) return bad();
  const int64_t clock = ParseClock(t, 11);
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31 || clock < 0) return bad();
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  const std::time_t midnight = timegm(&tm);
  std::tm check{};
  gmtime_r(&midnight, &check);
  if (check.tm_mday != day) return bad();  // 2026-02-30
  return (static_cast<int64_t>(midnight) + clock) * kUs;
}

std::string UtcMinute(int64_t unix_us) {
  const std::time_t t = static_cast<std::time_t>(unix_us / kUs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string HumanDelay(int64_t us) {
  const int64_t s = std::max<int64_t>(0, (us + kUs / 2) / kUs);
  if (s < 60) return std::to_string(s) + " s";
  const int64_t min = (s + 30) / 60;
  if (min < 60) return std::to_string(min) + " min";
  if (min < 24 * 60)
    return std::to_string(min / 60) + " h" +
           (min % 60 ? " " + std::to_string(min % 60) + " min" : "");
  const int64_t h = (min + 30) / 60;
  return std::to_string(h / 24) + " d" + (h % 24 ? " " + std::to_string(h % 24) + " h" : "");
}

}  // namespace cpuledger
