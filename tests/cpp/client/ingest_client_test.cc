// Tests for src/client/ingest_client.h (which answers are retried is
// base/delivery.h, tested in tests/cpp/base).
#include "client/ingest_client.h"

#include <gtest/gtest.h>

namespace cpuledger::client {
namespace {

TEST(ClientIngest, RejectsUrlsItCannotUse) {
  const auto t = std::chrono::milliseconds(100);
  EXPECT_FALSE(IngestClient::Create("", "", t).ok());
  EXPECT_FALSE(IngestClient::Create("127.0.0.1:8750", "", t).ok());
  EXPECT_FALSE(IngestClient::Create("ftp://127.0.0.1:8750", "", t).ok());
  EXPECT_FALSE(IngestClient::Create("http://127.0.0.1:8750/v1", "", t).ok());
  EXPECT_FALSE(IngestClient::Create("http://", "", t).ok());
  EXPECT_TRUE(IngestClient::Create("http://127.0.0.1:8750", "", t).ok());
  EXPECT_TRUE(IngestClient::Create("http://127.0.0.1:8750/", "", t).ok());
}

TEST(ClientIngest, UnreachableServerIsRetryableWithoutStatus) {
  // Port 1 on localhost: nothing listens there, the connection is refused.
  Result<std::unique_ptr<IngestClient>> c =
      IngestClient::Create("http://127.0.0.1:1", "", std::chrono::milliseconds(500));
  ASSERT_TRUE(c.ok());
  PostResult r = (*c)->Post("x");
  EXPECT_EQ(r.outcome, delivery::Verdict::kRetry);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_NE(r.error.find("unreachable"), std::string::npos) << r.error;
  EXPECT_FALSE((*c)->Healthy());
}

}  // namespace
}  // namespace cpuledger::client
