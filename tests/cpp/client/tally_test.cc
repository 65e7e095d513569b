// Tests for src/client/tally.h: per-endpoint counts, bounds, the user sketch.
#include "client/tally.h"

#include <gtest/gtest.h>

#include <map>

#include "record/codec.h"
#include "record/hll.h"

namespace cpuledger::client {
namespace {

TallyIdentity Identity() { return {"shop", "web-1", "eu", "eu-west", "abc123", "w-1"}; }

std::map<std::string, std::pair<uint64_t, uint64_t>> Endpoints(const record::WorkerTally& t) {
  std::map<std::string, std::pair<uint64_t, uint64_t>> out;
  for (const record::EndpointCount& e : t.endpoints())
    out[e.endpoint()] = {e.requests(), e.sampled()};
  return out;
}

TEST(ClientTally, MinuteOfFloorsToMultiplesOfSixty) {
  EXPECT_EQ(MinuteOf(0), 0);
  EXPECT_EQ(MinuteOf(59'999), 0);
  EXPECT_EQ(MinuteOf(60'000), 60);
  EXPECT_EQ(MinuteOf(1'700'000'039'123), 1'699'999'980);
  EXPECT_EQ(MinuteOf(-1), -60);
}

TEST(ClientTally, CountsRequestsAndSampledPerEndpoint) {
  MinuteTally t(1'699'999'980);
  t.Count("/a", "u1", true);
  t.Count("/a", "u2", false);
  t.Count("/b", "", false);
  EXPECT_EQ(t.requests(), 3u);
  const record::WorkerTally w = t.ToProto(Identity());
  EXPECT_TRUE(record::ValidateTally(w).ok()) << record::ValidateTally(w).ToString();
  EXPECT_EQ(w.minute_unix(), 1'699'999'980);
  EXPECT_EQ(w.service(), "shop");
  EXPECT_EQ(w.host(), "web-1");
  EXPECT_EQ(w.cluster(), "eu");
  EXPECT_EQ(w.region(), "eu-west");
  EXPECT_EQ(w.commit(), "abc123");
  EXPECT_EQ(w.sender(), "w-1");
  auto e = Endpoints(w);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e["/a"], std::make_pair(uint64_t{2}, uint64_t{1}));
  EXPECT_EQ(e["/b"], std::make_pair(uint64_t{1}, uint64_t{0}));
  EXPECT_EQ(w.hll_precision(), static_cast<uint32_t>(MinuteTally::kHllPrecision));
  EXPECT_EQ(w.active_users_hll().size(), size_t{1} << MinuteTally::kHllPrecision);
}

TEST(ClientTally, NoUsersMeansNoSketch) {
  MinuteTally t(60);
  t.Count("/a", "", false);
  const record::WorkerTally w = t.ToProto(Identity());
  EXPECT_TRUE(w.active_users_hll().empty());
  EXPECT_EQ(w.hll_precision(), 0u);
  EXPECT_TRUE(record::ValidateTally(w).ok());
}

TEST(ClientTally, ActiveUserEstimateIsClose) {
  MinuteTally t(60);
  constexpr int kUsers = 5000;
  for (int round = 0; round < 3; ++round)  // repeats must not count twice
    for (int u = 0; u < kUsers; ++u) t.Count("/a", "user-" + std::to_string(u), false);
  const record::WorkerTally w = t.ToProto(Identity());
  Result<record::HyperLogLog> hll =
      record::HyperLogLog::FromRegisters(w.active_users_hll(), static_cast<int>(w.hll_precision()));
  ASSERT_TRUE(hll.ok());
  EXPECT_NEAR(hll->Estimate(), kUsers, kUsers * 0.05);  // ~1.6% standard error at p=12
}

TEST(ClientTally, DistinctEndpointsAreCappedIntoOther) {
  MinuteTally t(60);
  const size_t n = MinuteTally::kMaxEndpoints + 500;
  for (size_t i = 0; i < n; ++i) t.Count("/e" + std::to_string(i), "", false);
  t.Count("/e0", "", true);  // an endpoint already kept keeps counting
  EXPECT_EQ(t.endpoints(), MinuteTally::kMaxEndpoints + 1);
  const record::WorkerTally w = t.ToProto(Identity());
  EXPECT_TRUE(record::ValidateTally(w).ok());
  auto e = Endpoints(w);
  EXPECT_EQ(e[std::string(MinuteTally::kOtherEndpoint)].first, 500u);
  EXPECT_EQ(e["/e0"], std::make_pair(uint64_t{2}, uint64_t{1}));
  uint64_t total = 0;
  for (const auto& [name, c] : e) total += c.first;
  EXPECT_EQ(total, n + 1);
}

TEST(ClientTally, NamesTheServerWouldRefuseGoToOther) {
  MinuteTally t(60);
  t.Count("", "", false);
  t.Count(std::string(record::kMaxDimensionBytes + 1, 'x'), "", false);
  t.Count(std::string("\xff\xfe", 2), "", false);
  t.Count(std::string(record::kMaxDimensionBytes, 'y'), "", false);  // at the limit: kept
  const record::WorkerTally w = t.ToProto(Identity());
  EXPECT_TRUE(record::ValidateTally(w).ok()) << record::ValidateTally(w).ToString();
  auto e = Endpoints(w);
  EXPECT_EQ(e.size(), 2u);
  EXPECT_EQ(e[std::string(MinuteTally::kOtherEndpoint)].first, 3u);
}

}  // namespace
}  // namespace cpuledger::client
