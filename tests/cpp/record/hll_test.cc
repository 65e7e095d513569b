// Tests for src/record/hll.h: accuracy against the advertised standard error,
// merge as union, and the wire form's checks.
#include "record/hll.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace cpuledger::record {
namespace {

std::string Key(int i) { return "user-" + std::to_string(i); }

HyperLogLog Sketch(int first, int last, int precision = HyperLogLog::kDefaultPrecision) {
  HyperLogLog h(precision);
  for (int i = first; i < last; ++i) h.Add(Key(i));
  return h;
}

// Within 3 standard errors of 1.04/sqrt(m): fails about 3 times in 1000 for
// a random hash; the keys are fixed, so the outcome is too.
void ExpectWithin3Sigma(double estimate, double truth, int precision) {
  const double sigma = 1.04 / std::sqrt(static_cast<double>(1 << precision));
  EXPECT_NEAR(estimate, truth, 3 * sigma * truth) << "precision " << precision;
}

TEST(RecordHll, EmptyIsZero) { EXPECT_EQ(HyperLogLog().Estimate(), 0.0); }

TEST(RecordHll, Accuracy) {
  for (int n : {1'000, 10'000, 100'000}) ExpectWithin3Sigma(Sketch(0, n).Estimate(), n, 12);
  ExpectWithin3Sigma(Sketch(0, 50'000, 14).Estimate(), 50'000, 14);
}

TEST(RecordHll, SmallCountsAreNearlyExact) {
  for (int n : {1, 2, 10, 100}) EXPECT_NEAR(Sketch(0, n).Estimate(), n, 0.02 * n + 0.5) << n;
}

TEST(RecordHll, RepeatsCountOnce) {
  HyperLogLog h;
  for (int round = 0; round < 50; ++round)
    for (int i = 0; i < 200; ++i) h.Add(Key(i));
  EXPECT_EQ(h.registers(), Sketch(0, 200).registers());
  EXPECT_NEAR(h.Estimate(), 200, 10);
}

TEST(RecordHll, MergeIsUnion) {
  HyperLogLog a = Sketch(0, 6'000);
  const HyperLogLog b = Sketch(3'000, 9'000);
  ASSERT_TRUE(a.Merge(b).ok());
  // Register-wise max of the parts is exactly the sketch of the union.
  EXPECT_EQ(a.registers(), Sketch(0, 9'000).registers());
  ExpectWithin3Sigma(a.Estimate(), 9'000, 12);
  // Merging is idempotent.
  const std::string before = a.registers();
  ASSERT_TRUE(a.Merge(b).ok());
  EXPECT_EQ(a.registers(), before);
}

TEST(RecordHll, MergeNeedsTheSamePrecision) {
  HyperLogLog a(12);
  Status s = a.Merge(HyperLogLog(10));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "HyperLogLog precision mismatch: 12 vs 10");
}

TEST(RecordHll, PrecisionIsClamped) {
  EXPECT_EQ(HyperLogLog(2).precision(), HyperLogLog::kMinPrecision);
  EXPECT_EQ(HyperLogLog(30).precision(), HyperLogLog::kMaxPrecision);
  EXPECT_EQ(HyperLogLog(12).registers().size(), 4096u);
}

TEST(RecordHll, FromRegistersRoundTrip) {
  const HyperLogLog h = Sketch(0, 5'000);
  Result<HyperLogLog> back = HyperLogLog::FromRegisters(h.registers(), 12);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->registers(), h.registers());
  EXPECT_EQ(back->Estimate(), h.Estimate());
}

TEST(RecordHll, FromRegistersErrors) {
  const std::string registers(4096, '\0');
  Result<HyperLogLog> r = HyperLogLog::FromRegisters(registers, 3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "hll_precision 3 outside [4, 16]");
  r = HyperLogLog::FromRegisters(registers, 17);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "hll_precision 17 outside [4, 16]");
  r = HyperLogLog::FromRegisters(registers.substr(1), 12);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "active_users_hll has 4095 registers; precision 12 needs 4096");

  // The highest rank a register can hold at precision 12 is 64 - 12 + 1.
  std::string top = registers;
  top[100] = 53;
  EXPECT_TRUE(HyperLogLog::FromRegisters(top, 12).ok());
  top[100] = 54;
  r = HyperLogLog::FromRegisters(top, 12);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "active_users_hll register out of range");
  top[100] = static_cast<char>(0xff);
  EXPECT_FALSE(HyperLogLog::FromRegisters(top, 12).ok());
}

}  // namespace
}  // namespace cpuledger::record
