#include "server/ingest_writer.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <vector>

#include "base/duration.h"
#include "base/time_text.h"

namespace cpuledger::server {

IngestWriter::IngestWriter(store::Store& store, Metrics& metrics, size_t max_pending,
                           int64_t retention_every_us, std::unique_ptr<StoreSpool> spool,
                           SpoolPolicy policy)
    : store_(store),
      metrics_(metrics),
      spool_(std::move(spool)),
      policy_(policy),
      max_pending_(max_pending),
      retention_every_us_(retention_every_us),
      thread_([this] { Run(); }) {
  if (spool_) {
    UpdateSpoolMetrics();
    if (const uint64_t n = metrics_.spool_batches.load(); n > 0)
      std::cerr << "cpuledger serve: replaying " << n
                << " spooled batches before new ones reach the store\n";
    replay_thread_ = std::thread([this] { Replay(); });
  }
}

IngestWriter::~IngestWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  replay_wake_.notify_all();
  thread_.join();
  if (replay_thread_.joinable()) replay_thread_.join();
}

Result<store::AppendOutcome> IngestWriter::Submit(record::ArenaBatch batch) {
  auto pending = std::make_unique<Pending>();
  pending->batch = std::move(batch);
  std::future<Result<store::AppendOutcome>> done = pending->done.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Unavailable("the server is shutting down");
    if (queue_.size() >= max_pending_)
      return ResourceExhausted("ingest queue full (" + std::to_string(max_pending_) +
                               " batches waiting); retry later");
    queue_.push_back(std::move(pending));
  }
  wake_.notify_one();
  return done.get();
}

void IngestWriter::Run() {
  std::vector<std::unique_ptr<Pending>> group;
  for (;;) {
    group.clear();
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::seconds(10), [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) {
        if (stopping_) return;
        lock.unlock();
        Maintain();
        continue;
      }
      while (!queue_.empty() && group.size() < kMaxGroup) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Commit(group);
    Maintain();
  }
}

void IngestWriter::Commit(std::vector<std::unique_ptr<Pending>>& group) {
  // Behind the spool while it holds anything: each sender's order is kept.
  if (spool_ && (slow_ || !spool_->empty())) {
    SpoolGroup(group, OkStatus());
    return;
  }
  std::vector<const record::Batch*> batches;
  for (auto& p : group) batches.push_back(p->batch.batch);
  Result<std::vector<store::AppendOutcome>> outcomes = std::vector<store::AppendOutcome>{};
  double seconds = 0;
  {
    std::lock_guard lock(store_mu_);
    const auto t0 = std::chrono::steady_clock::now();
    outcomes = store_.AppendBatches(batches);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  metrics_.store_append_seconds.Observe(seconds);
  NoteWrite(outcomes.ok() ? OkStatus() : outcomes.status(), "append");
  if (!outcomes.ok() && spool_ && outcomes.status().code() == StatusCode::kUnavailable) {
    SpoolGroup(group, outcomes.status());
    return;
  }
  if (outcomes.ok() && spool_ && seconds * 1e6 > static_cast<double>(policy_.slow_after_us)) {
    // Took it, slowly: the next groups are acknowledged from the spool while
    // the replay keeps the store busy at its own pace.
    if (!slow_.exchange(true))
      std::cerr << "cpuledger serve: the store took "
                << HumanDelay(static_cast<int64_t>(seconds * 1e6))
                << " for one write; spooling until it catches up\n";
  }
  for (size_t i = 0; i < group.size(); ++i) {
    if (outcomes.ok()) {
      group[i]->done.set_value((*outcomes)[i]);
    } else {
      group[i]->done.set_value(outcomes.status());
    }
  }
}

void IngestWriter::SpoolGroup(std::vector<std::unique_ptr<Pending>>& group, const Status& why) {
  std::vector<Status> spooled;
  for (auto& p : group) {
    // A batch after a refused one is refused too: spooling it would put it
    // ahead of its sender's refused batch.
    spooled.push_back(spooled.empty() || spooled.back().ok() ? spool_->Append(*p->batch.batch)
                                                             : spooled.back());
  }
  UpdateSpoolMetrics();  // before the acknowledgements: /metrics never lags them
  for (size_t i = 0; i < group.size(); ++i) {
    const record::Batch& b = *group[i]->batch.batch;
    const Status& s = spooled[i];
    if (!s.ok()) {
      group[i]->done.set_value(
          s.code() == StatusCode::kResourceExhausted
              ? s
              : Unavailable("the store is unavailable (" + why.message() +
                            ") and the spool cannot take the batch: " + s.message()));
      continue;
    }
    metrics_.batches_spooled.fetch_add(1, std::memory_order_relaxed);
    store::AppendOutcome outcome;
    outcome.records = static_cast<size_t>(b.records_size());
    outcome.tallies = static_cast<size_t>(b.tallies_size());
    group[i]->done.set_value(outcome);
  }
  { std::lock_guard lock(mu_); }  // the replay thread is waiting or will see the entries
  replay_wake_.notify_one();
}

void IngestWriter::Replay() {
  int64_t backoff_us = policy_.min_backoff_us;
  std::unique_lock lock(mu_);
  for (;;) {
    replay_wake_.wait_for(lock, std::chrono::seconds(1),
                          [&] { return stopping_ || !spool_->empty(); });
    if (stopping_) return;
    if (spool_->empty()) continue;
    lock.unlock();
    const bool progress = ReplayOnce();
    lock.lock();
    if (progress) {
      backoff_us = policy_.min_backoff_us;
      continue;
    }
    replay_wake_.wait_for(lock, std::chrono::microseconds(backoff_us), [&] { return stopping_; });
    backoff_us = std::min(backoff_us * 2, policy_.max_backoff_us);
  }
}

bool IngestWriter::ReplayOnce() {
  Result<std::vector<record::ArenaBatch>> oldest = spool_->Peek(kMaxGroup);
  UpdateSpoolMetrics();
  if (!oldest.ok()) {
    NoteWrite(oldest.status(), "spool read");
    return false;
  }
  if (oldest->empty()) return true;  // only damaged entries, dropped
  std::vector<const record::Batch*> batches;
  for (const record::ArenaBatch& b : *oldest) batches.push_back(b.batch);
  Result<std::vector<store::AppendOutcome>> outcomes = std::vector<store::AppendOutcome>{};
  {
    std::lock_guard lock(store_mu_);
    const auto t0 = std::chrono::steady_clock::now();
    outcomes = store_.AppendBatches(batches);
    metrics_.store_append_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  NoteWrite(outcomes.ok() ? OkStatus() : outcomes.status(), "replay");
  if (!outcomes.ok()) return false;
  for (const store::AppendOutcome& o : *outcomes)
    if (o.duplicate) metrics_.spool_replayed_duplicate.fetch_add(1, std::memory_order_relaxed);
  spool_->Pop(batches.size());
  metrics_.spool_replayed.fetch_add(batches.size(), std::memory_order_relaxed);
  if (spool_->empty() && slow_.exchange(false))
    std::cerr << "cpuledger serve: the spool is replayed; writing to the store directly again\n";
  UpdateSpoolMetrics();
  return true;
}

void IngestWriter::UpdateSpoolMetrics() {
  // One at a time: the last update is of the newest state (the writer and the
  // replay thread both change the spool).
  std::lock_guard lock(spool_metrics_mu_);
  const StoreSpoolStats s = spool_->Stats();
  metrics_.spool_batches.store(s.batches, std::memory_order_relaxed);
  metrics_.spool_bytes.store(s.bytes, std::memory_order_relaxed);
  metrics_.spool_oldest_unix_us.store(s.oldest_unix_us, std::memory_order_relaxed);
  metrics_.spool_dropped_damaged.store(s.dropped_damaged, std::memory_order_relaxed);
}

size_t IngestWriter::Queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

WriteHealth IngestWriter::Health() const {
  WriteHealth h;
  {
    std::lock_guard lock(health_mu_);
    h = health_;
  }
  if (!spool_) return h;
  const StoreSpoolStats s = spool_->Stats();
  if (s.batches == 0) return h;
  const std::string last = h.writable ? "" : " (last error: " + h.reason + ")";
  if (h.writable) h.failing_since_us = s.oldest_unix_us;
  h.writable = false;
  h.reason = std::string(h.reason.empty() && slow_ ? "store slow" : "store unavailable") + ", " +
             std::to_string(s.batches) + " batches spooled" + last;
  return h;
}

void IngestWriter::NoteWrite(const Status& status, const char* what) {
  const int64_t now = NowUnixUs();
  std::lock_guard lock(health_mu_);  // the writer and the replay thread both write
  {
    if (status.ok()) {
      if (!health_.writable)
        std::cerr << "cpuledger serve: the store writes again (after "
                  << HumanDelay(now - health_.failing_since_us) << " of failures)\n";
      health_ = WriteHealth{};
      return;
    }
    if (health_.writable) health_.failing_since_us = now;
    health_.writable = false;
    health_.reason = status.message();
  }
  // One line per kLogEveryUs: a full disk fails every batch, and a log line
  // per batch would fill what is left of it.
  if (now < next_log_us_) {
    ++unlogged_failures_;
    return;
  }
  next_log_us_ = now + kLogEveryUs;
  std::cerr << "cpuledger serve: store " << what << " failed: " << status.ToString();
  if (unlogged_failures_ > 0) std::cerr << " (and " << unlogged_failures_ << " more not logged)";
  std::cerr << "\n";
  unlogged_failures_ = 0;
}

void IngestWriter::Maintain() {
  // Not while spooling: the replay holds the store (perhaps slowly), and the
  // writer thread must stay free to acknowledge from the spool.
  if (spool_ && !spool_->empty()) return;
  const int64_t now = NowUnixUs();
  std::lock_guard lock(store_mu_);
  if (now >= next_checkpoint_us_) {
    next_checkpoint_us_ = now + kCheckpointEveryUs;
    NoteWrite(store_.Checkpoint(), "checkpoint");
  }
  if (now < next_retention_us_) return;
  next_retention_us_ = now + retention_every_us_;
  Result<uint64_t> deleted = store_.ApplyRetention(now);
  if (!deleted.ok()) {
    std::cerr << "cpuledger serve: retention failed: " << deleted.status().ToString() << "\n";
  } else if (*deleted > 0) {
    std::cerr << "cpuledger serve: retention deleted " << *deleted << " raw samples\n";
  }
}

}  // namespace cpuledger::server
