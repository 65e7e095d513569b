// src/server/ingest_writer.h — gets decoded batches into the store off the
// HTTP threads, with group commit.
//
// An HTTP thread hands its batch to Submit() and waits; the one writer thread
// takes every batch waiting (up to kMaxGroup), commits them in one store
// transaction, and wakes each submitter with its outcome. So an ingest
// request is acknowledged only after its batch is committed (store.h,
// invariant 2) or spooled (below): a crash loses nothing that was
// acknowledged, and many small concurrent POSTs share one fsync-free WAL
// commit.
//
// The queue is bounded: a full queue refuses at once (ResourceExhausted ->
// 503 + Retry-After) instead of letting HTTP threads pile up.
//
// Health: while the store's writes fail (disk full, I/O errors), Health()
// says so with the reason and since when (/healthz answers 503 "degraded"),
// and the failures are logged at most once per kLogEveryUs with a count of
// those not logged; the first write that succeeds makes it healthy again.
//
// With a StoreSpool (store_spool.h; ClickHouse by default), a group the store
// answers Unavailable is spooled and acknowledged instead of failed; so is
// every group after a store write slower than SpoolPolicy::slow_after_us.
// While the spool holds anything, new groups go behind it (so each sender's
// batches reach the store in the order they were acknowledged), and a replay
// thread appends the oldest spooled batches to the store, backing off while
// it fails. The store's (sender, sequence) de-duplication makes a replay
// after a crash between the store's OK and the spool's Pop() harmless. A
// full spool refuses with ResourceExhausted (503: the client's spool keeps
// the batch). Health() is degraded while the spool is not empty.
// NOTE: the replay retries any store error (with back-off, logged): a spooled
// batch was acknowledged, so it is never given up on; one the store refuses
// for good holds the spool up, and /healthz says so.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "record/codec.h"
#include "server/metrics.h"
#include "server/store_spool.h"
#include "store/store.h"

namespace cpuledger::server {

// WriteHealth — whether the store's writes succeed, as of the last one.
struct WriteHealth {
  bool writable = true;
  std::string reason;            // the last failure's message, when not writable
  int64_t failing_since_us = 0;  // when the failures began (unix us)
};

// SpoolPolicy — when groups go to the spool, and the replay's back-off.
struct SpoolPolicy {
  int64_t slow_after_us = 2'000'000;   // a store write slower than this: spool the next groups
  int64_t min_backoff_us = 50'000;     // replay retries after a failure, doubling...
  int64_t max_backoff_us = 2'000'000;  // ...up to this
};

class IngestWriter {
 public:
  static constexpr size_t kMaxGroup = 64;  // batches per transaction
  static constexpr int64_t kCheckpointEveryUs = 30'000'000;
  static constexpr int64_t kLogEveryUs = 10'000'000;

  // REQUIRES: `store` and `metrics` outlive the writer. `spool`: nullptr
  // for none; else the writer owns it and starts replaying what it holds.
  IngestWriter(store::Store& store, Metrics& metrics, size_t max_pending,
               int64_t retention_every_us, std::unique_ptr<StoreSpool> spool = nullptr,
               SpoolPolicy policy = {});
  // Drains what is queued (committing or spooling it), then joins the
  // threads; what the spool still holds stays on disk for the next start.
  ~IngestWriter();
  IngestWriter(const IngestWriter&) = delete;
  IngestWriter& operator=(const IngestWriter&) = delete;

  // IngestWriter::Submit() — queue `batch` and wait for its commit.
  // RETURNS: the outcome (a spooled batch: its counts, not a duplicate);
  // ResourceExhausted when the queue or the spool is full; the store's error
  // (nothing of the group stored) when the commit failed and was not spooled.
  // Thread-safe; blocks the caller until the commit.
  Result<store::AppendOutcome> Submit(record::ArenaBatch batch);

  // IngestWriter::Health() — as of the last store write; not writable while
  // the spool holds batches ("store unavailable, N batches spooled").
  // Thread-safe.
  WriteHealth Health() const;
  // IngestWriter::Queued() — batches waiting for the writer. Thread-safe.
  size_t Queued() const;

 private:
  struct Pending {
    record::ArenaBatch batch;
    std::promise<Result<store::AppendOutcome>> done;
  };
  void Run();
  // Commit() — one group into the store, or into the spool; answers each.
  void Commit(std::vector<std::unique_ptr<Pending>>& group);
  // SpoolGroup() — appends the group to the spool and acknowledges it; a
  // batch the spool refuses (and every one after it) gets the refusal.
  void SpoolGroup(std::vector<std::unique_ptr<Pending>>& group, const Status& why);
  // Replay() — the replay thread: spooled batches into the store, in order.
  void Replay();
  // ReplayOnce() — one AppendBatches of the oldest spooled batches.
  // RETURNS: whether it made progress (false: back off).
  bool ReplayOnce();
  // UpdateSpoolMetrics() — the spool's gauges in metrics_, from its state now.
  void UpdateSpoolMetrics();
  // Between groups: retention every retention_every_us, a store checkpoint
  // every kCheckpointEveryUs (it keeps the store's pending profile sums small).
  void Maintain();
  // NoteWrite() — a store write's outcome into health_, logged rate-limited.
  void NoteWrite(const Status& status, const char* what);

  store::Store& store_;
  Metrics& metrics_;
  const std::unique_ptr<StoreSpool> spool_;
  const SpoolPolicy policy_;
  // Serializes the store's write calls between the writer and replay threads.
  std::mutex store_mu_;
  // The last direct write was slower than policy_.slow_after_us: groups go to
  // the spool until the replay empties it.
  std::atomic<bool> slow_{false};
  std::mutex spool_metrics_mu_;  // UpdateSpoolMetrics()
  const size_t max_pending_;
  const int64_t retention_every_us_;
  int64_t next_retention_us_ = 0;
  int64_t next_checkpoint_us_ = 0;

  mutable std::mutex health_mu_;
  WriteHealth health_;              // guarded by health_mu_
  int64_t next_log_us_ = 0;         // guarded by health_mu_
  uint64_t unlogged_failures_ = 0;  // guarded by health_mu_

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Pending>> queue_;  // guarded by mu_
  bool stopping_ = false;                       // guarded by mu_
  std::condition_variable replay_wake_;         // an append to the spool, or stopping_
  std::thread thread_;                          // started after the fields above
  std::thread replay_thread_;                   // last: only with a spool
};

}  // namespace cpuledger::server
