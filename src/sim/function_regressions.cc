#include "sim/function_regressions.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "sim/detection_fleet.h"

namespace cpuledger::sim {
namespace {

constexpr int64_t kHour = 3600;

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed * 0x9e3779b97f4a7c15ull + 0xf00d) {}
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  double Uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }
  template <typename T>
  void Shuffle(std::vector<T>& v) {
    std::shuffle(v.begin(), v.end(), rng_);
  }

 private:
  std::mt19937_64 rng_;
};

std::string Commit(uint64_t seed, size_t service, int k) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "f%06llx",
                static_cast<unsigned long long>((seed * 7919 + service * 131 + k) * 2654435761ull) &
                    0xffffff);
  return buf;
}

// ByTraffic() — a service's endpoint indices, busiest first.
std::vector<size_t> ByTraffic(const ServiceSpec& s) {
  std::vector<size_t> order(s.endpoints.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return s.endpoints[a].traffic_share > s.endpoints[b].traffic_share;
  });
  return order;
}

// Helpers() — the endpoint's own helper frames (not view, db, cache, serializer).
std::vector<size_t> Helpers(const EndpointSpec& ep) {
  std::vector<size_t> out;
  for (size_t i = 0; i < ep.calls.size(); ++i)
    if (ep.calls[i].file.find("/logic.py") != std::string::npos && ep.calls[i].parent >= 0 &&
        ep.calls[ep.calls[i].parent].file.find("/logic.py") != std::string::npos)
      out.push_back(i);
  return out;
}

// HelperFitting() — a helper whose share is 3-20% (a 0.5% change is then a
// 2.5-17% change of it), else the largest.
size_t HelperFitting(Gen& g, const EndpointSpec& ep) {
  std::vector<size_t> fit, all = Helpers(ep);
  for (size_t i : all) {
    const double s = ExpectedFunctionShare(ep, FunctionKey(ep.calls[i]));
    if (s >= 0.03 && s <= 0.2) fit.push_back(i);
  }
  if (!fit.empty()) return fit[static_cast<size_t>(g.Int(0, static_cast<int>(fit.size()) - 1))];
  size_t best = all.front();
  for (size_t i : all)
    if (ExpectedFunctionShare(ep, FunctionKey(ep.calls[i])) >
        ExpectedFunctionShare(ep, FunctionKey(ep.calls[best])))
      best = i;
  return best;
}

// Apply() — the card's change on `ep` through rollout `r`, into r and the case.
void Apply(Gen& g, const std::string& kind, double size, EndpointSpec& ep, RolloutSpec& r,
           FunctionCase& c) {
  r.endpoints = {ep.name};
  if (kind == "new-function") {
    r.culprit = c.function = AddNewHelper(ep, "new_helper_" + r.to);
    r.cost_factor = 1 + size;
  } else if (kind == "grown-function") {
    r.function = c.function = FunctionKey(ep.calls[HelperFitting(g, ep)]);
    r.function_factor = 1 + size / ExpectedFunctionShare(ep, r.function);
  } else if (kind == "cost-shift") {
    const size_t from = HelperFitting(g, ep);
    c.from_function = r.function = FunctionKey(ep.calls[from]);
    // Cost added to the receiver, taken from the giver: the mean total holds.
    const double share = ExpectedFunctionShare(ep, r.function);
    size = std::min(size, 0.8 * share);
    r.function_factor = 1 - size / share;
    r.cost_factor = 1 + size;
    std::vector<size_t> others;
    for (size_t i : Helpers(ep))
      if (i != from) others.push_back(i);
    if (others.empty() || g.Uniform(0, 1) < 0.5)
      r.culprit = AddNewHelper(ep, ep.calls[from].name + "_part");  // a split or rename
    else
      r.culprit = FunctionKey(ep.calls[others[static_cast<size_t>(
          g.Int(0, static_cast<int>(others.size()) - 1))]]);  // inlined into another
    c.function = r.culprit;
  }
  c.size = size;
}

// AddPopulationFlag() — flag-on users whose requests cost more everywhere
// (uniform) or in the slow frames: two specs of one name share the coin.
void AddPopulationFlag(Gen& g, FleetConfig& config, size_t s, size_t e, int k,
                       std::vector<FunctionCase>& cases) {
  const ServiceSpec& service = config.services[s];
  const EndpointSpec& ep = service.endpoints[e];
  FlagSpec f;
  f.name = "population_" + std::to_string(s) + "_" + std::to_string(k);
  f.service = service.name;
  f.scope = f.endpoints = {ep.name};
  f.exposure = g.Uniform(0.2, 0.4);
  if (k % 2 == 0) {
    f.cost_factor = 1.2;
    config.flags.push_back(f);
  } else {
    for (const char* slow : {"common/db.py:88:execute", "common/cache.py:30:get"}) {
      f.cost_factor = 1.15;
      f.culprit = slow;
      config.flags.push_back(f);
    }
  }
  FunctionCase c;
  c.kind = "population-shift";
  c.service = service.name;
  c.endpoint = ep.name;
  c.flag = f.name;
  c.size = 0.2;
  cases.push_back(std::move(c));
}

}  // namespace

FunctionFleet MakeFunctionFleet(uint64_t seed, int hours) {
  hours = std::max(hours, 8);
  Gen g(seed);
  FunctionFleet out;
  out.config = MakeDetectionServices(seed, 1);
  FleetConfig& c = out.config;
  c.duration_s = hours * kHour;
  const std::vector<std::pair<std::string, double>> deck_cards = {
      {"new-function", 0.005},   {"new-function", 0.02}, {"grown-function", 0.005},
      {"grown-function", 0.005}, {"cost-shift", 0.02},   {"noop", 0}};
  for (size_t s = 0; s < c.services.size(); ++s) {
    ServiceSpec& service = c.services[s];
    const std::vector<size_t> order = ByTraffic(service);
    std::vector<size_t> busy(order.begin(), order.begin() + 5);
    g.Shuffle(busy);
    std::vector<std::pair<std::string, double>> deck = deck_cards;
    g.Shuffle(deck);
    std::string commit = Commit(seed, s, 0);
    int k = 1;
    for (int64_t t = 2 * kHour + g.Int(0, 40) * 60; t + 3 * kHour <= c.duration_s;
         t += 3 * kHour, ++k) {
      RolloutSpec r;
      r.service = service.name;
      r.from = commit;
      r.to = commit = Commit(seed, s, k);
      r.at_s = t;
      r.spread_s = g.Int(15, 45) * 60;
      const auto& [kind, size] = deck[static_cast<size_t>(k - 1) % deck.size()];
      FunctionCase fc;
      fc.kind = kind;
      fc.service = service.name;
      fc.commit_from = r.from;
      fc.commit_to = r.to;
      fc.start_s = t;
      if (kind != "noop") {
        EndpointSpec& ep = service.endpoints[busy[static_cast<size_t>(k - 1) % busy.size()]];
        fc.endpoint = ep.name;
        Apply(g, kind, size, ep, r, fc);
      }
      c.rollouts.push_back(std::move(r));
      out.cases.push_back(std::move(fc));
    }
    AddPopulationFlag(g, c, s, order[5 + static_cast<size_t>(g.Int(0, 2))], static_cast<int>(s),
                      out.cases);
  }
  return out;
}

}  // namespace cpuledger::sim
