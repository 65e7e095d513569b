// bench/store/sim_batches.h — the simulator's records (src/sim) as the
// batches a fleet's recorders send, for the benches that feed a store.
//
//   SimBatches batches(config, {.senders = 8});
//   while (std::optional<record::Batch> b = batches.Next()) Append(*b);
//
// Batches hold `batch_records` records each (the last may hold fewer), cut
// across minute boundaries; senders take turns ("<prefix>-0", "<prefix>-1",
// ...), each sender's sequence counting from 1. A minute's worker tallies
// ride with the batch its first record goes to, or are dropped when
// `tallies` is false (plain request records).
// NOTE: the simulator draws every request, sampled or not, so its cost grows
// with requests, not records: a bench that wants many records cheaply keeps
// the config's sample_rate at 1.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "record/record.pb.h"
#include "sim/fleet.h"

namespace cpuledger::bench {

struct SimBatchOptions {
  int senders = 8;
  int batch_records = 1000;
  std::string sender_prefix = "bench";
  bool tallies = true;
};

class SimBatches {
 public:
  SimBatches(sim::FleetConfig config, SimBatchOptions options)
      : sim_(std::move(config)),
        options_(std::move(options)),
        sequences_(static_cast<size_t>(options_.senders), 0) {}

  // SimBatches::Next() — the next batch, or nullopt when the run is over.
  std::optional<record::Batch> Next() {
    record::Batch out;
    while (out.records_size() < options_.batch_records) {
      if (next_ >= minute_.records_size() && !NextMinute(out)) break;
      const int take =
          std::min(options_.batch_records - out.records_size(), minute_.records_size() - next_);
      for (int i = 0; i < take; ++i)
        *out.add_records() = std::move(*minute_.mutable_records(next_++));
    }
    if (out.records_size() == 0) return std::nullopt;
    const size_t sender = static_cast<size_t>(batches_++ % static_cast<uint64_t>(options_.senders));
    out.set_sender(options_.sender_prefix + "-" + std::to_string(sender));
    out.set_sequence(++sequences_[sender]);
    records_ += static_cast<uint64_t>(out.records_size());
    return out;
  }

  uint64_t records() const { return records_; }  // in the batches returned so far

 private:
  // NextMinute() — loads the simulator's next minute; its tallies go to `out`.
  // RETURNS: false when the run is over.
  bool NextMinute(record::Batch& out) {
    std::optional<record::Batch> minute = sim_.NextMinute();
    if (!minute) return false;
    minute_ = std::move(*minute);
    next_ = 0;
    if (options_.tallies)
      for (record::WorkerTally& t : *minute_.mutable_tallies()) *out.add_tallies() = std::move(t);
    return true;
  }

  sim::FleetSimulator sim_;
  const SimBatchOptions options_;
  record::Batch minute_;  // the current minute; records [next_, size) not handed out yet
  int next_ = 0;
  std::vector<uint64_t> sequences_;  // per sender, the last one used
  uint64_t batches_ = 0;
  uint64_t records_ = 0;
};

}  // namespace cpuledger::bench
