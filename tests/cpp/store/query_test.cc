// tests/cpp/store/query_test.cc — parsing of dimensions and buckets.
#include "store/query.h"

#include <gtest/gtest.h>

namespace cpuledger::store {
namespace {

TEST(StoreParseDimensionTest, EveryPlainNameRoundTrips) {
  for (const char* name :
       {"service", "endpoint", "method", "status", "host", "cluster", "region", "commit", "user"}) {
    Result<DimensionRef> d = ParseDimension(name);
    ASSERT_TRUE(d.ok()) << name;
    EXPECT_EQ(DimensionName(*d), name);
  }
  EXPECT_EQ(ParseDimension("host")->dim, Dimension::kHost);
  EXPECT_EQ(ParseDimension("user")->dim, Dimension::kUser);
}

TEST(StoreParseDimensionTest, FlagsInBothSpellings) {
  Result<DimensionRef> a = ParseDimension("flag:new_checkout");
  Result<DimensionRef> b = ParseDimension("flags.new_checkout");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->dim, Dimension::kFlag);
  EXPECT_EQ(a->flag, "new_checkout");
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(DimensionName(*b), "flag:new_checkout");
}

TEST(StoreParseDimensionTest, UnknownOrEmptyIsInvalidArgumentListingNames) {
  Result<DimensionRef> bad = ParseDimension("hostname; DROP TABLE series");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("endpoint"), std::string::npos);
  EXPECT_NE(bad.status().message().find("flag:NAME"), std::string::npos);
  EXPECT_FALSE(ParseDimension("flag:").ok());
  EXPECT_FALSE(ParseDimension("").ok());
  EXPECT_FALSE(ParseDimension("Service").ok());
}

TEST(StoreParseBucketTest, NamesAndSeconds) {
  EXPECT_EQ(*ParseBucket("none"), Bucket::kNone);
  EXPECT_EQ(*ParseBucket("minute"), Bucket::kMinute);
  EXPECT_EQ(*ParseBucket("hour"), Bucket::kHour);
  EXPECT_EQ(*ParseBucket("day"), Bucket::kDay);
  EXPECT_EQ(ParseBucket("week").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(BucketSeconds(Bucket::kNone), 0);
  EXPECT_EQ(BucketSeconds(Bucket::kMinute), 60);
  EXPECT_EQ(BucketSeconds(Bucket::kHour), 3600);
  EXPECT_EQ(BucketSeconds(Bucket::kDay), 86400);
}

}  // namespace
}  // namespace cpuledger::store
