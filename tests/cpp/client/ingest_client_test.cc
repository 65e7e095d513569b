// Tests for src/client/ingest_client.h: which answers are retried.
#include "client/ingest_client.h"

#include <gtest/gtest.h>

namespace cpuledger::client {
namespace {

TEST(ClientIngest, ClassifiesHttpStatuses) {
  EXPECT_EQ(ClassifyHttpStatus(200), PostOutcome::kAcknowledged);
  EXPECT_EQ(ClassifyHttpStatus(204), PostOutcome::kAcknowledged);
  EXPECT_EQ(ClassifyHttpStatus(0), PostOutcome::kRetryable);  // no answer at all
  EXPECT_EQ(ClassifyHttpStatus(503), PostOutcome::kRetryable);
  EXPECT_EQ(ClassifyHttpStatus(500), PostOutcome::kRetryable);
  EXPECT_EQ(ClassifyHttpStatus(408), PostOutcome::kRetryable);
  EXPECT_EQ(ClassifyHttpStatus(429), PostOutcome::kRetryable);
  EXPECT_EQ(ClassifyHttpStatus(302), PostOutcome::kRetryable);
  EXPECT_EQ(ClassifyHttpStatus(400), PostOutcome::kRejected);
  EXPECT_EQ(ClassifyHttpStatus(401), PostOutcome::kRejected);
  EXPECT_EQ(ClassifyHttpStatus(413), PostOutcome::kRejected);
  EXPECT_EQ(ClassifyHttpStatus(404), PostOutcome::kRejected);
}

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
  EXPECT_EQ(r.outcome, PostOutcome::kRetryable);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_NE(r.error.find("unreachable"), std::string::npos) << r.error;
  EXPECT_FALSE((*c)->Healthy());
}

}  // namespace
}  // namespace cpuledger::client
