#include "server/ingest_writer.h"

#include <chrono>
#include <iostream>
#include <vector>

#include "base/duration.h"
#include "base/time_text.h"

namespace cpuledger::server {

IngestWriter::IngestWriter(store::Store& store, Metrics& metrics, size_t max_pending,
                           int64_t retention_every_us)
    : store_(store),
      metrics_(metrics),
      max_pending_(max_pending),
      retention_every_us_(retention_every_us),
      thread_([this] { Run(); }) {}

IngestWriter::~IngestWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
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
  std::vector<const record::Batch*> batches;
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
    batches.clear();
    for (auto& p : group) batches.push_back(p->batch.batch);
    const auto t0 = std::chrono::steady_clock::now();
    Result<std::vector<store::AppendOutcome>> outcomes = store_.AppendBatches(batches);
    metrics_.store_append_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    NoteWrite(outcomes.ok() ? OkStatus() : outcomes.status(), "append");
    for (size_t i = 0; i < group.size(); ++i) {
      if (outcomes.ok()) {
        group[i]->done.set_value((*outcomes)[i]);
      } else {
        group[i]->done.set_value(outcomes.status());
      }
    }
    Maintain();
  }
}

size_t IngestWriter::Queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

WriteHealth IngestWriter::Health() const {
  std::lock_guard lock(health_mu_);
  return health_;
}

void IngestWriter::NoteWrite(const Status& status, const char* what) {
  const int64_t now = NowUnixUs();
  {
    std::lock_guard lock(health_mu_);
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
  const int64_t now = NowUnixUs();
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
