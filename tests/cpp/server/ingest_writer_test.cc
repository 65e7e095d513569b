// tests/cpp/server/ingest_writer_test.cc — IngestWriter against a real SQLite
// store: group commit from many threads, the bounded queue, and health.
//
// GatedStore wraps the real store to do what a disk does on a bad day: fail
// writes, or take its time (a gate the test opens). Everything else is the
// real store's.
#include "server/ingest_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "base/duration.h"
#include "record/codec.h"
#include "store/store.h"
#include "temp_dir.h"

namespace cpuledger::server {
namespace {

using store::Store;

class GatedStore final : public Store {
 public:
  explicit GatedStore(std::unique_ptr<Store> real) : real_(std::move(real)) {}

  std::atomic<bool> fail{false};

  // Close() / Open(): appends wait at the gate while it is closed.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  void Open() {
    {
      std::lock_guard lock(mu_);
      closed_ = false;
    }
    cv_.notify_all();
  }
  // WaitForWaiter(): an append is held at the gate.
  void WaitForWaiter() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return waiting_ > 0; });
  }

  Result<std::vector<store::AppendOutcome>> AppendBatches(
      std::span<const record::Batch* const> batches) override {
    {
      std::unique_lock lock(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !closed_; });
      --waiting_;
    }
    if (fail) return IoError("database or disk is full");
    return real_->AppendBatches(batches);
  }
  Status Checkpoint() override {
    return fail ? IoError("database or disk is full") : real_->Checkpoint();
  }
  Result<uint64_t> ApplyRetention(int64_t now_us) override { return real_->ApplyRetention(now_us); }
  Result<store::StoreStats> Stats() override { return real_->Stats(); }
  Result<store::QueryResult> Query(const store::QuerySpec& s) override { return real_->Query(s); }
  Result<std::vector<store::ServiceEfficiency>> Efficiency(
      const store::EfficiencySpec& s) override {
    return real_->Efficiency(s);
  }
  Result<std::vector<store::DeployEntry>> Deploys(const std::string& s) override {
    return real_->Deploys(s);
  }
  Result<store::FunctionReport> Functions(const store::FunctionQuery& q) override {
    return real_->Functions(q);
  }
  Result<profile::CallTree> FunctionTree(const store::FunctionQuery& q) override {
    return real_->FunctionTree(q);
  }
  Result<store::SampleSet> Samples(const store::SampleQuery& q) override {
    return real_->Samples(q);
  }
  Result<std::vector<store::FunctionMoments>> FunctionMomentsOf(
      const store::FunctionMomentsQuery& q) override {
    return real_->FunctionMomentsOf(q);
  }
  Status AppendEffects(std::span<const store::EffectRecord> e) override {
    return real_->AppendEffects(e);
  }
  Result<std::vector<store::EffectRecord>> EffectHistory(
      const store::EffectHistoryQuery& q) override {
    return real_->EffectHistory(q);
  }
  Result<store::UpsertOutcome> UpsertAlert(const store::Alert& a) override {
    return real_->UpsertAlert(a);
  }
  Result<std::vector<store::Alert>> Alerts(const store::AlertQuery& q) override {
    return real_->Alerts(q);
  }
  Result<store::Alert> AlertById(int64_t id) override { return real_->AlertById(id); }
  Result<store::TransitionOutcome> TransitionAlert(const store::AlertTransition& t) override {
    return real_->TransitionAlert(t);
  }
  Result<std::vector<store::AlertEvent>> AlertEvents(int64_t id) override {
    return real_->AlertEvents(id);
  }
  Result<bool> HoldLease(const std::string& name, const std::string& holder, int64_t now_us,
                         int64_t ttl_us) override {
    return real_->HoldLease(name, holder, now_us, ttl_us);
  }

 private:
  std::unique_ptr<Store> real_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  int waiting_ = 0;
};

// OneBatch() — `records` records from `sender`, sequence `seq`, decoded as the server does.
record::ArenaBatch OneBatch(const std::string& sender, uint64_t seq, int records) {
  std::string ndjson = "{\"type\":\"batch\",\"sender\":\"" + sender +
                       "\",\"sequence\":" + std::to_string(seq) + "}\n";
  const int64_t now = NowUnixUs();
  for (int i = 0; i < records; ++i)
    ndjson +=
        "{\"service\":\"shop\",\"endpoint\":\"/a/\",\"method\":\"GET\",\"status\":200,"
        "\"host\":\"h1\",\"start_time_unix_us\":" +
        std::to_string(now - 60'000'000 + i) +
        ",\"wall_us\":100,\"cpu_ns\":1000,\"counter_source\":\"task_clock\","
        "\"sample_rate\":1.0}\n";
  Result<record::ArenaBatch> b = record::DecodeBatchOnArena(record::Encoding::kNdjson, ndjson);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(*b);
}

class IngestWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Store>> real = store::OpenSqliteStore({.path = dir_.File("w.sqlite")});
    ASSERT_TRUE(real.ok()) << real.status().ToString();
    store_ = std::make_unique<GatedStore>(std::move(*real));
  }

  test_support::TempDir dir_;
  std::unique_ptr<GatedStore> store_;
  Metrics metrics_;
};

TEST_F(IngestWriterTest, ConcurrentSubmitsAreAllStoredOnceAndAcknowledged) {
  IngestWriter writer(*store_, metrics_, 256, 3'600'000'000);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (uint64_t seq = 1; seq <= 10; ++seq) {
        Result<store::AppendOutcome> out =
            writer.Submit(OneBatch("sender-" + std::to_string(t), seq, 5));
        if (out.ok() && !out->duplicate && out->records == 5) ++ok;
      }
    });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
  // A replay of one of them is a duplicate, not a second copy.
  Result<store::AppendOutcome> again = writer.Submit(OneBatch("sender-3", 7, 5));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  Result<store::StoreStats> stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->raw_samples, 400u);
  EXPECT_TRUE(writer.Health().writable);
}

TEST_F(IngestWriterTest, AFullQueueRefusesAtOnce) {
  IngestWriter writer(*store_, metrics_, /*max_pending=*/2, 3'600'000'000);
  store_->Close();
  std::vector<std::thread> held;
  held.emplace_back([&] { EXPECT_TRUE(writer.Submit(OneBatch("s", 1, 1)).ok()); });
  store_->WaitForWaiter();  // the writer holds batch 1 at the gate; the queue is empty
  for (uint64_t seq = 2; seq <= 3; ++seq)
    held.emplace_back([&, seq] { EXPECT_TRUE(writer.Submit(OneBatch("s", seq, 1)).ok()); });
  while (writer.Queued() < 2) std::this_thread::yield();  // both wait in the queue
  Result<store::AppendOutcome> refused = writer.Submit(OneBatch("s", 4, 1));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  store_->Open();
  for (std::thread& t : held) t.join();
  EXPECT_TRUE(writer.Submit(OneBatch("s", 4, 1)).ok());  // room again
}

TEST_F(IngestWriterTest, FailingWritesMakeItUnhealthyUntilOneSucceeds) {
  IngestWriter writer(*store_, metrics_, 16, 3'600'000'000);
  ASSERT_TRUE(writer.Submit(OneBatch("s", 1, 1)).ok());
  EXPECT_TRUE(writer.Health().writable);
  store_->fail = true;
  const int64_t before = NowUnixUs();
  for (uint64_t seq = 2; seq <= 4; ++seq) {
    Result<store::AppendOutcome> out = writer.Submit(OneBatch("s", seq, 1));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().message(), "database or disk is full");
  }
  WriteHealth health = writer.Health();
  EXPECT_FALSE(health.writable);
  EXPECT_EQ(health.reason, "database or disk is full");
  EXPECT_GE(health.failing_since_us, before);  // the first failure, not the last
  EXPECT_LE(health.failing_since_us, NowUnixUs());
  store_->fail = false;
  ASSERT_TRUE(writer.Submit(OneBatch("s", 2, 1)).ok());  // the retry of a refused batch
  health = writer.Health();
  EXPECT_TRUE(health.writable);
  EXPECT_TRUE(health.reason.empty());
}

}  // namespace
}  // namespace cpuledger::server
