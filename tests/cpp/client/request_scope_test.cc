// RequestScope on this machine's real counters: steps, spans, custom-span folding.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "client/request_scope.h"

namespace cpuledger::client {
namespace {

double Spin(int n) {
  volatile double x = 1;
  for (int i = 0; i < n; ++i) x = x * 1.0000001 + std::sqrt(static_cast<double>(i));
  return x;
}

TEST(ClientRequestScope, BillsOnlyItsOwnSteps) {
  RequestScope scope = RequestScope::Begin();
  Spin(2'000'000);
  scope.Suspend();
  Spin(20'000'000);  // someone else's work between our steps
  scope.Resume();
  scope.Resume();  // nested: only the outer pair measures
  scope.Suspend();
  record::RequestRecord r;
  ASSERT_TRUE(scope.Finish(r));
  const uint64_t billed = r.cpu().cpu_ns();
  EXPECT_GT(billed, 0u);
  RequestScope other = RequestScope::Begin();
  Spin(20'000'000);
  record::RequestRecord big;
  ASSERT_TRUE(other.Finish(big));
  EXPECT_LT(billed * 3, big.cpu().cpu_ns()) << "the gap between steps must not be billed";
  EXPECT_FALSE(r.cpu().counter_source().empty());
}

TEST(ClientRequestScope, SpansCountCallsAndTime) {
  RequestScope scope = RequestScope::Begin();
  uint64_t returned_ns = 0;  // what SpanEnd() says each span added: the profiler takes it out
  for (int i = 0; i < 3; ++i) {
    SpanToken t = scope.SpanBegin();
    Spin(100'000);
    returned_ns += scope.SpanEnd(SpanKind::kDb, "", t).cpu_ns;
  }
  SpanToken c = scope.SpanBegin();
  scope.SpanEnd(SpanKind::kCache, "", c);
  record::RequestRecord r;
  ASSERT_TRUE(scope.Finish(r));
  EXPECT_EQ(r.db().name(), "db");
  EXPECT_EQ(r.db().calls(), 3u);
  EXPECT_GT(r.db().cpu().cpu_ns(), 0u);
  EXPECT_EQ(r.db().cpu().cpu_ns(), returned_ns);
  EXPECT_EQ(r.cache().calls(), 1u);
}

TEST(ClientRequestScope, CustomSpansPastTheLimitFoldIntoOther) {
  RequestScope scope = RequestScope::Begin();
  for (size_t i = 0; i < RequestScope::kMaxCustomSpans + 8; ++i)
    scope.SpanEnd(SpanKind::kCustom, "s" + std::to_string(i), scope.SpanBegin());
  scope.SpanEnd(SpanKind::kCustom, "s0", scope.SpanBegin());  // a known name keeps its span
  record::RequestRecord r;
  ASSERT_TRUE(scope.Finish(r));
  ASSERT_EQ(static_cast<size_t>(r.custom_size()), RequestScope::kMaxCustomSpans);
  EXPECT_EQ(r.custom(0).name(), "s0");
  EXPECT_EQ(r.custom(0).calls(), 2u);
  const record::Span& other = r.custom(r.custom_size() - 1);
  EXPECT_EQ(other.name(), "other");
  EXPECT_EQ(other.calls(), 9u);  // s31 .. s39
}

}  // namespace
}  // namespace cpuledger::client
