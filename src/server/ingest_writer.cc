#include "server/ingest_writer.h"

#include <chrono>
#include <iostream>
#include <vector>

#include "base/duration.h"

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

void IngestWriter::Maintain() {
  const int64_t now = NowUnixUs();
  if (now >= next_checkpoint_us_) {
    next_checkpoint_us_ = now + kCheckpointEveryUs;
    if (Status s = store_.Checkpoint(); !s.ok())
      std::cerr << "cpuledger serve: checkpoint failed (retried): " << s.ToString() << "\n";
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
