// src/server/ingest_writer.h — gets decoded batches into the store off the
// HTTP threads, with group commit.
//
// An HTTP thread hands its batch to Submit() and waits; the one writer thread
// takes every batch waiting (up to kMaxGroup), commits them in one store
// transaction, and wakes each submitter with its outcome. So an ingest
// request is acknowledged only after its batch is committed (store.h,
// invariant 2): a crash loses nothing that was acknowledged, and many small
// concurrent POSTs share one fsync-free WAL commit.
//
// The queue is bounded: a full queue refuses at once (ResourceExhausted ->
// 503 + Retry-After) instead of letting HTTP threads pile up.
//
// Health: while the store's writes fail (disk full, I/O errors), Health()
// says so with the reason and since when (/healthz answers 503 "degraded"),
// and the failures are logged at most once per kLogEveryUs with a count of
// those not logged; the first write that succeeds makes it healthy again.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "record/codec.h"
#include "server/metrics.h"
#include "store/store.h"

namespace cpuledger::server {

// WriteHealth — whether the store's writes succeed, as of the last one.
struct WriteHealth {
  bool writable = true;
  std::string reason;            // the last failure's message, when not writable
  int64_t failing_since_us = 0;  // when the failures began (unix us)
};

class IngestWriter {
 public:
  static constexpr size_t kMaxGroup = 64;  // batches per transaction
  static constexpr int64_t kCheckpointEveryUs = 30'000'000;
  static constexpr int64_t kLogEveryUs = 10'000'000;

  // REQUIRES: `store` and `metrics` outlive the writer.
  IngestWriter(store::Store& store, Metrics& metrics, size_t max_pending,
               int64_t retention_every_us);
  // Drains what is queued, commits it, then joins the writer thread.
  ~IngestWriter();
  IngestWriter(const IngestWriter&) = delete;
  IngestWriter& operator=(const IngestWriter&) = delete;

  // IngestWriter::Submit() — queue `batch` and wait for its commit.
  // RETURNS: the outcome; ResourceExhausted when the queue is full; the
  // store's error (nothing of the group stored) when the commit failed.
  // Thread-safe; blocks the caller until the commit.
  Result<store::AppendOutcome> Submit(record::ArenaBatch batch);

  // IngestWriter::Health() — as of the last store write. Thread-safe.
  WriteHealth Health() const;
  // IngestWriter::Queued() — batches waiting for the writer. Thread-safe.
  size_t Queued() const;

 private:
  struct Pending {
    record::ArenaBatch batch;
    std::promise<Result<store::AppendOutcome>> done;
  };
  void Run();
  // Between groups: retention every retention_every_us, a store checkpoint
  // every kCheckpointEveryUs (it keeps the store's pending profile sums small).
  void Maintain();
  // NoteWrite() — a store write's outcome into health_, logged rate-limited.
  void NoteWrite(const Status& status, const char* what);

  store::Store& store_;
  Metrics& metrics_;
  const size_t max_pending_;
  const int64_t retention_every_us_;
  int64_t next_retention_us_ = 0;
  int64_t next_checkpoint_us_ = 0;
  int64_t next_log_us_ = 0;         // writer thread only
  uint64_t unlogged_failures_ = 0;  // writer thread only

  mutable std::mutex health_mu_;
  WriteHealth health_;  // guarded by health_mu_

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Pending>> queue_;  // guarded by mu_
  bool stopping_ = false;                       // guarded by mu_
  std::thread thread_;                          // last: started after the fields above
};

}  // namespace cpuledger::server
