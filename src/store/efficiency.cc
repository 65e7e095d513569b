#include "store/efficiency.h"

#include <algorithm>

#include "record/hll.h"

namespace cpuledger::store {
namespace {

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kMinuteUs = 60 * kUs;
constexpr int64_t kMaxUs = int64_t{1} << 62;

// UnitSums — some samples' CPU in the efficiency unit (instructions or cpu_ns).
struct UnitSums {
  double wsum = 0;      // sum of value / rate over samples having the unit's measure
  double weight = 0;    // sum of 1 / rate over the same samples
  double requests = 0;  // sum of 1 / rate over all samples
  bool has_unit = false;
  void Add(const UnitSums& o) {
    wsum += o.wsum;
    weight += o.weight;
    requests += o.requests;
    has_unit |= o.has_unit;
  }
};

UnitSums UnitOf(const EfficiencyCell& c, bool instructions) {
  UnitSums u;
  u.requests = c.weight;
  if (instructions) {
    u.wsum = c.instr_wsum;
    u.weight = c.instr_weight;
    u.has_unit = c.instr_n > 0;
  } else {
    u.wsum = c.cpu_ns_wsum;
    u.weight = c.weight;
    u.has_unit = c.samples > 0;
  }
  return u;
}

double MeanPerRequest(const UnitSums& u) {
  return u.has_unit && u.weight > 0 ? u.wsum / u.weight : 0;
}

int64_t CeilMinuteS(int64_t us) {
  const int64_t v = std::clamp<int64_t>(us, 0, kMaxUs);
  return (v + kMinuteUs - 1) / kMinuteUs * 60;
}

}  // namespace

std::pair<int64_t, int64_t> EfficiencyMinutes(const EfficiencySpec& spec) {
  return {CeilMinuteS(spec.from_us), CeilMinuteS(spec.to_us)};
}

ServiceEfficiency PeakMinute(const std::string& service, const ServiceWindow& w) {
  ServiceEfficiency eff;
  eff.service = service;
  uint64_t samples = 0, instr_n = 0;
  for (const auto& [minute, endpoints] : w.samples)
    for (const auto& [endpoint, c] : endpoints) {
      samples += c.samples;
      instr_n += c.instr_n;
    }
  eff.unit = CostUnit(instr_n, samples);
  const bool instructions = eff.unit == "instructions";

  std::map<std::string, double> window_mean;
  {
    std::map<std::string, UnitSums> by_endpoint;
    for (const auto& [minute, endpoints] : w.samples)
      for (const auto& [endpoint, c] : endpoints)
        by_endpoint[endpoint].Add(UnitOf(c, instructions));
    for (const auto& [endpoint, u] : by_endpoint) window_mean[endpoint] = MeanPerRequest(u);
  }
  // Mean CPU per request of an endpoint in a minute: that minute's samples, else the window's.
  auto mean_in = [&](int64_t minute, const std::string& endpoint) {
    if (auto m = w.samples.find(minute); m != w.samples.end())
      if (auto e = m->second.find(endpoint); e != m->second.end()) {
        const UnitSums u = UnitOf(e->second, instructions);
        if (u.has_unit) return MeanPerRequest(u);
      }
    auto wm = window_mean.find(endpoint);
    return wm == window_mean.end() ? 0.0 : wm->second;
  };

  eff.from_tallies = !w.tallies.empty();
  double best = -1;
  if (eff.from_tallies) {
    for (const auto& [minute, endpoints] : w.tallies) {
      double cpu = 0;
      for (const auto& [endpoint, requests] : endpoints)
        cpu += requests * mean_in(minute, endpoint);
      if (cpu > best) {
        best = cpu;
        eff.peak_minute_unix = minute;
      }
    }
    for (const auto& [endpoint, requests] : w.tallies.at(eff.peak_minute_unix)) {
      EndpointEfficiency e;
      e.endpoint = endpoint;
      e.requests = requests;
      e.cpu_total = requests * mean_in(eff.peak_minute_unix, endpoint);
      eff.requests += requests;
      eff.cpu_total += e.cpu_total;
      eff.endpoints.push_back(std::move(e));
    }
    return eff;
  }
  for (const auto& [minute, endpoints] : w.samples) {
    double cpu = 0;
    for (const auto& [endpoint, c] : endpoints) cpu += UnitOf(c, instructions).wsum;
    if (cpu > best) {
      best = cpu;
      eff.peak_minute_unix = minute;
    }
  }
  auto peak = w.samples.find(eff.peak_minute_unix);
  if (peak == w.samples.end()) return eff;  // neither samples nor tallies
  for (const auto& [endpoint, c] : peak->second) {
    const UnitSums u = UnitOf(c, instructions);
    EndpointEfficiency e;
    e.endpoint = endpoint;
    e.requests = u.requests;
    e.cpu_total = u.wsum;
    eff.requests += e.requests;
    eff.cpu_total += e.cpu_total;
    eff.endpoints.push_back(std::move(e));
  }
  return eff;
}

void SetActiveUsers(double users, bool from_tallies, ServiceEfficiency* eff) {
  eff->active_users = users;
  eff->users_from_tallies = from_tallies;
  if (users > 0) {
    eff->per_active_user = eff->cpu_total / users;
    for (EndpointEfficiency& e : eff->endpoints) e.per_active_user = e.cpu_total / users;
  }
  std::sort(eff->endpoints.begin(), eff->endpoints.end(),
            [](const EndpointEfficiency& a, const EndpointEfficiency& b) {
              if (a.cpu_total != b.cpu_total) return a.cpu_total > b.cpu_total;
              return a.endpoint < b.endpoint;
            });
}

Result<double> MergedUsers(const std::vector<HllSketch>& sketches) {
  if (sketches.empty()) return 0.0;
  int precision = record::HyperLogLog::kMaxPrecision;
  for (const HllSketch& s : sketches) precision = std::min(precision, s.precision);
  record::HyperLogLog merged(precision);
  for (const HllSketch& s : sketches) {
    const std::string folded = s.precision == precision
                                   ? s.registers
                                   : FoldHllRegisters(s.registers, s.precision, precision);
    Result<record::HyperLogLog> h = record::HyperLogLog::FromRegisters(folded, precision);
    if (!h.ok()) return IoError("corrupt tally HyperLogLog: " + h.status().message());
    if (Status st = merged.Merge(*h); !st.ok()) return st;
  }
  return merged.Estimate();
}

std::string FoldHllRegisters(std::string_view regs, int from, int to) {
  const int d = from - to;
  std::string out(size_t{1} << to, '\0');
  for (size_t j = 0; j < regs.size(); ++j) {
    const int r = static_cast<unsigned char>(regs[j]);
    if (r == 0) continue;  // nothing was hashed to this register
    const uint64_t dropped = j & ((uint64_t{1} << d) - 1);
    // Leading zeros of the dropped bits (within d bits) + 1, or past them.
    const int rank = dropped != 0 ? d - (64 - __builtin_clzll(dropped)) + 1 : d + r;
    char& o = out[j >> d];
    if (rank > static_cast<unsigned char>(o)) o = static_cast<char>(rank);
  }
  return out;
}

}  // namespace cpuledger::store
