// src/store/efficiency.h — the peak-minute metric (ServiceEfficiency, query.h)
// computed the same way by every store from the sums it reads.
//
//   auto [lo_s, hi_s] = EfficiencyMinutes(spec);          // whole minutes
//   ServiceWindow w;                                       // the store's sums
//   w.samples[minute][endpoint] = {.samples = 3, ...};
//   w.tallies[minute][endpoint] = 120;                     // unsampled requests
//   ServiceEfficiency eff = PeakMinute("shop", w);
//   Result<double> users = MergedUsers(sketches_of(eff.peak_minute_unix));
//   SetActiveUsers(*users, /*from_tallies=*/true, &eff);
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "store/query.h"

namespace cpuledger::store {

// EfficiencyMinutes() — [lo, hi) in unix s of the whole minutes the metric
// reads: the spec's range with both ends rounded up to a minute. Empty
// (lo >= hi) when it holds no whole minute.
std::pair<int64_t, int64_t> EfficiencyMinutes(const EfficiencySpec& spec);

// EfficiencyCell — one (minute, endpoint)'s samples, summed as the metric needs.
struct EfficiencyCell {
  uint64_t samples = 0, instr_n = 0;  // all, and those with instructions
  double weight = 0;                  // sum of 1 / sample_rate over all
  double instr_weight = 0;            // the same over the samples with instructions
  double instr_wsum = 0;              // sum of instructions / sample_rate
  double cpu_ns_wsum = 0;             // sum of cpu_ns / sample_rate
};

// ServiceWindow — one service's sums over the window, minutes in unix s.
struct ServiceWindow {
  std::map<int64_t, std::map<std::string, EfficiencyCell>> samples;  // minute -> endpoint
  std::map<int64_t, std::map<std::string, double>> tallies;  // minute -> endpoint -> requests
};

// PeakMinute() — `service`'s ServiceEfficiency but its active users: the
// unit, the peak minute (the earliest of equal ones), its requests and CPU,
// per endpoint. from_tallies when `window` has tallies.
ServiceEfficiency PeakMinute(const std::string& service, const ServiceWindow& window);

// SetActiveUsers() — completes `eff` with the active users of its peak
// minute (`from_tallies`: merged tally sketches; else distinct user keys of
// the samples): per_active_user and the endpoints heaviest first.
void SetActiveUsers(double users, bool from_tallies, ServiceEfficiency* eff);

// HllSketch — one tally's active-user registers (record::HyperLogLog).
struct HllSketch {
  std::string registers;
  int precision = 0;
};

// MergedUsers() — the distinct users of the union of `sketches`, all folded
// to the lowest precision among them. RETURNS: 0 for none; IoError for
// registers that do not make a sketch.
Result<double> MergedUsers(const std::vector<HllSketch>& sketches);

// FoldHllRegisters() — HyperLogLog registers at precision `from` as registers
// at the lower precision `to` (REQUIRES: to <= from): the dropped index bits
// become the first bits of the rank stream, the standard exact HLL fold.
std::string FoldHllRegisters(std::string_view registers, int from, int to);

}  // namespace cpuledger::store
