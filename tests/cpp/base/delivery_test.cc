#include "base/delivery.h"

#include <gtest/gtest.h>

namespace cpuledger::delivery {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

TEST(Classify, OneRuleForEverySender) {
  for (int s : {200, 202, 204}) EXPECT_EQ(Classify(s), Verdict::kDelivered) << s;
  for (int s : {0, 408, 429, 500, 502, 503, 504, 101, 301, 302, 307})
    EXPECT_EQ(Classify(s), Verdict::kRetry) << s;
  for (int s : {400, 401, 403, 404, 405, 413, 415, 422})
    EXPECT_EQ(Classify(s), Verdict::kRefused) << s;
}

TEST(ParseRetryAfter, DeltaSecondsAndHttpDate) {
  // 2015-10-21 07:28:00 UTC.
  const auto now = std::chrono::system_clock::from_time_t(1445412480);
  EXPECT_EQ(ParseRetryAfter("120", now), 120s);
  EXPECT_EQ(ParseRetryAfter("0", now), 0ms);
  EXPECT_EQ(ParseRetryAfter("9999999", now), 86'400s);  // capped at a day
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now), 30s);
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:00:00 GMT", now), 0ms);  // past
  for (const char* bad : {"", "-5", "soon", "12s", "Wed, 21 Oct 2015 07:28:30", "1.5"})
    EXPECT_EQ(ParseRetryAfter(bad, now), 0ms) << bad;
}

TEST(Backoff, DoublesUpToMaxAndHonoursRetryAfter) {
  const Backoff b{.initial = 100ms, .max = 1000ms};
  EXPECT_EQ(b.Delay(1, 0ms), 100ms);
  EXPECT_EQ(b.Delay(2, 0ms), 200ms);
  EXPECT_EQ(b.Delay(4, 0ms), 800ms);
  EXPECT_EQ(b.Delay(5, 0ms), 1000ms);
  EXPECT_EQ(b.Delay(1000, 0ms), 1000ms);
  EXPECT_EQ(b.Delay(1, 500ms), 500ms);  // the server asked for longer
  EXPECT_EQ(b.Delay(1, 60s), 1000ms);   // but never past max
}

}  // namespace
}  // namespace cpuledger::delivery
