#include "base/time_text.h"

#include <gtest/gtest.h>

#include "base/duration.h"

namespace cpuledger {
namespace {

constexpr int64_t kUs = 1'000'000;
// 2026-12-04 16:46:44 UTC.
constexpr int64_t kNow = 1'796'402'804LL * kUs;
constexpr int64_t kMidnight = 1'796'342'400LL * kUs;  // 2026-12-04 00:00 UTC

TEST(ParseTimeUs, UnixSeconds) {
  EXPECT_EQ(*ParseTimeUs("1796401544", kNow), 1'796'401'544LL * kUs);
  EXPECT_EQ(*ParseTimeUs("1.5", kNow), 1'500'000);
}

TEST(ParseTimeUs, IsoUtc) {
  EXPECT_EQ(*ParseTimeUs("2026-12-04T00:00:00Z", kNow), kMidnight);
  EXPECT_EQ(*ParseTimeUs("2026-12-04 18:30", kNow), kMidnight + (18 * 3600 + 1800) * kUs);
  EXPECT_EQ(*ParseTimeUs("1970-01-01T00:00Z", kNow), 0);
}

TEST(ParseTimeUs, TimeOfDayIsItsLatestOccurrenceAtOrBeforeNow) {
  EXPECT_EQ(*ParseTimeUs("12:00", kNow), kMidnight + 12 * 3600 * kUs);
  EXPECT_EQ(*ParseTimeUs("00:00", kNow), kMidnight);
  // 18:00 has not come yet today: yesterday's.
  EXPECT_EQ(*ParseTimeUs("18:00", kNow), kMidnight - 6 * 3600 * kUs);
  EXPECT_EQ(*ParseTimeUs("16:46:44", kNow), kNow);
}

TEST(ParseTimeUs, RejectsWhatIsNotATime) {
  for (const char* bad : {"", "yesterday", "24:00", "12:60", "2026-02-30T00:00Z", "2026-12-04",
                          "2026-12-04X10:00", "1e5", "-5", "12:0"}) {
    Result<int64_t> r = ParseTimeUs(bad, kNow);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("ISO 8601"), std::string::npos);
  }
}

TEST(UtcMinute, FormatsUtc) { EXPECT_EQ(UtcMinute(kNow), "2026-12-04 16:46 UTC"); }

TEST(HumanDelay, RoundsToTwoUnits) {
  EXPECT_EQ(HumanDelay(0), "0 s");
  EXPECT_EQ(HumanDelay(45 * kUs), "45 s");
  EXPECT_EQ(HumanDelay(12 * 60 * kUs), "12 min");
  EXPECT_EQ(HumanDelay(90 * 60 * kUs), "1 h 30 min");
  EXPECT_EQ(HumanDelay(3 * 3600 * kUs), "3 h");
  EXPECT_EQ(HumanDelay(51 * 3600 * kUs), "2 d 3 h");
}

TEST(ParseDurationUs, UnitsAndErrors) {
  EXPECT_EQ(*ParseDurationUs("90s"), 90 * kUs);
  EXPECT_EQ(*ParseDurationUs("7d"), 7 * 86'400 * kUs);
  EXPECT_FALSE(ParseDurationUs("0h").ok());
  EXPECT_FALSE(ParseDurationUs("5 parsecs").ok());
}

}  // namespace
}  // namespace cpuledger
