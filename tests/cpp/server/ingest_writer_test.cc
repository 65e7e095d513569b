// tests/cpp/server/ingest_writer_test.cc — IngestWriter against a real SQLite
// store: group commit from many threads, the bounded queue, and health; with
// a real StoreSpool directory: spooling while the store is unavailable or
// slow, replay in order, restarts, the cap.
//
// GatedStore wraps the real store to do what a disk (or a remote store) does
// on a bad day: fail writes, answer Unavailable, or take its time (a gate the
// test opens). Everything else is the real store's, de-duplication included.
#include "server/ingest_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "base/duration.h"
#include "record/codec.h"
#include "server/store_spool.h"
#include "store/store.h"
#include "temp_dir.h"

namespace cpuledger::server {
namespace {

using store::Store;

class GatedStore final : public Store {
 public:
  explicit GatedStore(std::unique_ptr<Store> real) : real_(std::move(real)) {}

  std::atomic<bool> fail{false};
  std::atomic<bool> unavailable{false};  // as ClickHouse down: Unavailable, nothing stored

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
    if (unavailable) return Unavailable("ClickHouse at http://127.0.0.1:1 cannot be reached");
    Result<std::vector<store::AppendOutcome>> out = real_->AppendBatches(batches);
    if (out.ok()) {
      std::lock_guard lock(mu_);
      for (size_t i = 0; i < batches.size(); ++i)
        if (!(*out)[i].duplicate)
          stored_.emplace_back(batches[i]->sender(), batches[i]->sequence());
    }
    return out;
  }
  // Stored(): (sender, sequence) of every batch stored (not duplicate), in order.
  std::vector<std::pair<std::string, uint64_t>> Stored() {
    std::lock_guard lock(mu_);
    return stored_;
  }
  Status Checkpoint() override {
    if (unavailable) return Unavailable("ClickHouse at http://127.0.0.1:1 cannot be reached");
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
  Result<std::vector<store::FunctionCode>> FunctionCodesOf(
      const store::FunctionCodesQuery& q) override {
    return real_->FunctionCodesOf(q);
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
  std::vector<std::pair<std::string, uint64_t>> stored_;  // guarded by mu_
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

// --- with the server's spool ---

// WaitFor() — polls `done` until it holds or the deadline passes.
template <typename F>
bool WaitFor(F done, std::chrono::seconds deadline = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class SpoolingWriterTest : public IngestWriterTest {
 protected:
  std::unique_ptr<StoreSpool> OpenSpool(uint64_t max_bytes = 64 << 20) {
    Result<std::unique_ptr<StoreSpool>> s =
        StoreSpool::Open(dir_.File("spool"), max_bytes, nullptr);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::unique_ptr<IngestWriter> Writer(uint64_t max_bytes = 64 << 20, SpoolPolicy policy = {}) {
    policy.min_backoff_us = 1'000;  // the test's store recovers at once
    policy.max_backoff_us = 20'000;
    return std::make_unique<IngestWriter>(*store_, metrics_, 256, 3'600'000'000,
                                          OpenSpool(max_bytes), policy);
  }
  uint64_t RawSamples() {
    Result<store::StoreStats> stats = store_->Stats();
    EXPECT_TRUE(stats.ok());
    return stats.ok() ? stats->raw_samples : 0;
  }
  // ExpectEachOnceInOrder() — every sender's sequences 1..n stored once, ascending.
  void ExpectEachOnceInOrder(int senders, uint64_t n) {
    std::map<std::string, std::vector<uint64_t>> by_sender;
    for (const auto& [sender, seq] : store_->Stored()) by_sender[sender].push_back(seq);
    ASSERT_EQ(by_sender.size(), static_cast<size_t>(senders));
    std::vector<uint64_t> want;
    for (uint64_t seq = 1; seq <= n; ++seq) want.push_back(seq);
    for (const auto& [sender, seqs] : by_sender) EXPECT_EQ(seqs, want) << sender;
  }
};

TEST_F(SpoolingWriterTest, AnUnavailableStoreIsSpooledAndReplayedInOrderOnce) {
  std::unique_ptr<IngestWriter> writer = Writer();
  ASSERT_TRUE(writer->Submit(OneBatch("sender-0", 1, 5)).ok());  // direct
  store_->unavailable = true;
  std::vector<std::thread> threads;
  std::atomic<int> acknowledged{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (uint64_t seq = t == 0 ? 2 : 1; seq <= 10; ++seq) {
        Result<store::AppendOutcome> out =
            writer->Submit(OneBatch("sender-" + std::to_string(t), seq, 5));
        if (out.ok() && out->records == 5 && !out->duplicate) ++acknowledged;
      }
    });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(acknowledged.load(), 39);  // every batch acknowledged while the store is down
  EXPECT_EQ(RawSamples(), 5u);
  EXPECT_EQ(metrics_.batches_spooled.load(), 39u);
  EXPECT_EQ(metrics_.spool_batches.load(), 39u);
  EXPECT_GT(metrics_.spool_bytes.load(), 0u);
  EXPECT_GT(metrics_.spool_oldest_unix_us.load(), 0);
  const WriteHealth down = writer->Health();
  EXPECT_FALSE(down.writable);
  EXPECT_EQ(down.reason.rfind("store unavailable, 39 batches spooled (last error: ClickHouse", 0),
            0u)
      << down.reason;

  store_->unavailable = false;
  ASSERT_TRUE(WaitFor([&] { return metrics_.spool_batches.load() == 0; }));
  EXPECT_EQ(RawSamples(), 200u);
  EXPECT_EQ(metrics_.spool_replayed.load(), 39u);
  EXPECT_EQ(metrics_.spool_replayed_duplicate.load(), 0u);
  EXPECT_EQ(metrics_.spool_oldest_unix_us.load(), 0);
  EXPECT_TRUE(writer->Health().writable);
  ExpectEachOnceInOrder(4, 10);
  // Back to direct writes: a resent batch is a duplicate again.
  Result<store::AppendOutcome> again = writer->Submit(OneBatch("sender-2", 7, 5));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
}

TEST_F(SpoolingWriterTest, NewBatchesGoBehindTheSpoolUntilItIsReplayed) {
  std::unique_ptr<IngestWriter> writer = Writer();
  store_->unavailable = true;
  ASSERT_TRUE(writer->Submit(OneBatch("s", 1, 1)).ok());
  store_->Close();  // the replay's next attempt waits at the gate...
  store_->WaitForWaiter();
  store_->unavailable = false;  // ...and will find the store back
  // ...while batch 2 arrives: it must not overtake batch 1.
  ASSERT_TRUE(writer->Submit(OneBatch("s", 2, 1)).ok());
  EXPECT_EQ(metrics_.batches_spooled.load(), 2u);
  store_->Open();
  ASSERT_TRUE(WaitFor([&] { return metrics_.spool_batches.load() == 0; }));
  ExpectEachOnceInOrder(1, 2);
}

TEST_F(SpoolingWriterTest, ARestartReplaysTheSpoolFirstAndSkipsWhatTheStoreHas) {
  store_->unavailable = true;
  {
    std::unique_ptr<IngestWriter> writer = Writer();
    for (uint64_t seq = 1; seq <= 5; ++seq) ASSERT_TRUE(writer->Submit(OneBatch("s", seq, 2)).ok());
  }  // a stop with the store down: the spool stays on disk
  EXPECT_EQ(RawSamples(), 0u);
  // As if a crash came between the store's OK for batch 1 and its Pop().
  store_->unavailable = false;
  record::ArenaBatch first = OneBatch("s", 1, 2);
  const record::Batch* one[] = {first.batch};
  ASSERT_TRUE(store_->AppendBatches(one).ok());

  std::unique_ptr<IngestWriter> writer = Writer();
  ASSERT_TRUE(writer->Submit(OneBatch("s", 6, 2)).ok());  // behind the 5 spooled
  ASSERT_TRUE(WaitFor([&] { return metrics_.spool_batches.load() == 0; }));
  EXPECT_EQ(RawSamples(), 12u);
  EXPECT_EQ(metrics_.spool_replayed_duplicate.load(), 1u);
  ExpectEachOnceInOrder(1, 6);
}

TEST_F(SpoolingWriterTest, AFullSpoolRefusesSoTheClientKeepsTheBatch) {
  const uint64_t one = OneBatch("s", 1, 3).batch->SerializeAsString().size();
  std::unique_ptr<IngestWriter> writer = Writer(one + one / 2);
  store_->unavailable = true;
  ASSERT_TRUE(writer->Submit(OneBatch("s", 1, 3)).ok());
  Result<store::AppendOutcome> refused = writer->Submit(OneBatch("s", 2, 3));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  store_->unavailable = false;
  ASSERT_TRUE(WaitFor([&] { return metrics_.spool_batches.load() == 0; }));
  ASSERT_TRUE(writer->Submit(OneBatch("s", 2, 3)).ok());  // the client's retry
  ExpectEachOnceInOrder(1, 2);
}

TEST_F(SpoolingWriterTest, ASlowStoreWriteSpoolsTheNextGroups) {
  // Every write is slower than 1 us: each direct write sends the next group to the spool.
  std::unique_ptr<IngestWriter> writer = Writer(64 << 20, SpoolPolicy{.slow_after_us = 1});
  for (uint64_t seq = 1; seq <= 6; ++seq) ASSERT_TRUE(writer->Submit(OneBatch("s", seq, 1)).ok());
  EXPECT_GE(metrics_.batches_spooled.load(), 1u);
  ASSERT_TRUE(WaitFor([&] { return metrics_.spool_batches.load() == 0; }));
  ExpectEachOnceInOrder(1, 6);
}

TEST_F(SpoolingWriterTest, OtherStoreErrorsAreNotSpooled) {
  std::unique_ptr<IngestWriter> writer = Writer();
  store_->fail = true;  // a full disk: the spool is on it too
  Result<store::AppendOutcome> out = writer->Submit(OneBatch("s", 1, 1));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kIo);
  EXPECT_EQ(metrics_.batches_spooled.load(), 0u);
}

}  // namespace
}  // namespace cpuledger::server
