// tests/cpp/store/histogram_test.cc — LogHistogram: the error bound, merging,
// the blob format and its validation.
#include "store/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace cpuledger::store {
namespace {

double ExactNearestRank(std::vector<uint64_t> v, double q) {
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]);
}

std::vector<uint64_t> LogNormalValues(uint64_t seed, size_t n, double mu, double sigma) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(mu, sigma);
  std::vector<uint64_t> v(n);
  for (uint64_t& x : v) x = static_cast<uint64_t>(dist(rng));
  return v;
}

TEST(StoreHistogramTest, EveryValueIsReportedWithinTheRelativeErrorBound) {
  EXPECT_NEAR(LogHistogram::kRelativeError, 0.0099, 0.0001);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    // Uniform in log space over the whole uint64 range.
    const int bits = static_cast<int>(rng() % 64);
    const uint64_t v = (rng() >> (63 - bits)) | 1;
    const double reported = LogHistogram::ValueOf(LogHistogram::BucketOf(v));
    ASSERT_LE(std::abs(reported - static_cast<double>(v)) / static_cast<double>(v),
              LogHistogram::kRelativeError + 1e-12)
        << v;
  }
  EXPECT_EQ(LogHistogram::BucketOf(0), -1);
  EXPECT_EQ(LogHistogram::ValueOf(-1), 0.0);
  EXPECT_EQ(LogHistogram::BucketOf(1), 0);
  EXPECT_EQ(LogHistogram::BucketOf(std::numeric_limits<uint64_t>::max()), LogHistogram::kMaxIndex);
}

TEST(StoreHistogramTest, QuantilesAreWithinOnePercentOfExactNearestRank) {
  const std::vector<uint64_t> values = LogNormalValues(1, 5000, std::log(2e6), 1.2);
  LogHistogram h;
  for (uint64_t v : values) h.Add(v);
  EXPECT_EQ(h.count(), values.size());
  for (double q : {0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    const double exact = ExactNearestRank(values, q);
    EXPECT_LE(std::abs(h.Quantile(q) - exact) / exact, LogHistogram::kRelativeError + 1e-12)
        << "q=" << q;
  }
}

TEST(StoreHistogramTest, ZeroValuesHaveTheirOwnBucket) {
  LogHistogram h;
  h.Add(0, 6);
  h.Add(1000, 4);
  EXPECT_EQ(h.Quantile(0.5), 0.0);              // rank 5 of 10 is a zero
  EXPECT_EQ(h.Quantile(0.6), 0.0);              // rank 6
  EXPECT_NEAR(h.Quantile(0.61), 1000.0, 10.0);  // rank 7
}

TEST(StoreHistogramTest, EmptyHistogramHasNaNQuantilesAndEmptyBlob) {
  LogHistogram h;
  EXPECT_TRUE(std::isnan(h.Quantile(0.5)));
  EXPECT_EQ(h.Encode(), "");
  Result<LogHistogram> d = LogHistogram::Decode("");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->empty());
}

TEST(StoreHistogramTest, MergeEqualsAddingEverythingToOne) {
  const std::vector<uint64_t> a = LogNormalValues(2, 3000, std::log(5e4), 0.8);
  const std::vector<uint64_t> b = LogNormalValues(3, 2000, std::log(5e7), 0.5);  // disjoint range
  LogHistogram ha, hb, all;
  for (uint64_t v : a) ha.Add(v), all.Add(v);
  for (uint64_t v : b) hb.Add(v), all.Add(v);
  LogHistogram merged = hb;  // merge a lower window into a higher one
  merged.Merge(ha);
  EXPECT_EQ(merged, all);
  LogHistogram merged2 = ha;
  merged2.Merge(hb);
  EXPECT_EQ(merged2, all);

  LogHistogram from_blobs;
  ASSERT_TRUE(from_blobs.MergeEncoded(ha.Encode()).ok());
  ASSERT_TRUE(from_blobs.MergeEncoded(hb.Encode()).ok());
  EXPECT_EQ(from_blobs, all);
  EXPECT_EQ(from_blobs.Quantile(0.5), all.Quantile(0.5));
}

TEST(StoreHistogramTest, EncodeDecodeRoundTripsAndIsCompact) {
  std::vector<uint64_t> values = LogNormalValues(4, 1000, std::log(1e6), 1.0);
  values.push_back(0);
  values.push_back(std::numeric_limits<uint64_t>::max());
  LogHistogram h;
  for (uint64_t v : values) h.Add(v);
  const std::string blob = h.Encode();
  Result<LogHistogram> d = LogHistogram::Decode(blob);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, h);
  EXPECT_EQ(d->Encode(), blob);
  // ~1000 values over ~3 decades occupy a few hundred buckets at 2-3 bytes each.
  EXPECT_LT(blob.size(), 1000u);
}

TEST(StoreHistogramTest, MalformedBlobsAreRejectedAndMergeNothing) {
  LogHistogram h;
  h.Add(100);
  const LogHistogram before = h;
  std::string truncated = "\x01\x05";  // zero count 1, then a delta without a count
  EXPECT_FALSE(h.MergeEncoded(truncated).ok());
  const std::string zero_count("\x00\x05\x00", 3);  // bucket 4 with count 0
  EXPECT_FALSE(h.MergeEncoded(zero_count).ok());
  std::string out_of_range;
  AppendVarint(&out_of_range, 0);
  AppendVarint(&out_of_range, LogHistogram::kMaxIndex + 2);  // index kMaxIndex + 1
  AppendVarint(&out_of_range, 1);
  EXPECT_FALSE(h.MergeEncoded(out_of_range).ok());
  std::string bad_varint(11, '\xff');
  EXPECT_FALSE(h.MergeEncoded(bad_varint).ok());
  EXPECT_EQ(h, before);
}

TEST(StoreVarintTest, RoundTripsEdgeValues) {
  for (uint64_t v : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{1} << 35,
                     std::numeric_limits<uint64_t>::max()}) {
    std::string s;
    AppendVarint(&s, v);
    const char* p = s.data();
    uint64_t out = 0;
    ASSERT_TRUE(ReadVarint(&p, s.data() + s.size(), &out));
    EXPECT_EQ(out, v);
    EXPECT_EQ(p, s.data() + s.size());
    p = s.data();
    EXPECT_FALSE(ReadVarint(&p, s.data() + s.size() - 1, &out));  // truncated
  }
}

}  // namespace
}  // namespace cpuledger::store
