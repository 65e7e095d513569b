#include "sim/detection_fleet.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <set>

namespace cpuledger::sim {
namespace {

constexpr int64_t kStartUnixS = 1767571200;  // 2026-01-05 00:00 UTC, a Monday
constexpr int64_t kHour = 3600;
constexpr int64_t kMinute = 60;

// Sizes of the endpoint-level regressions, cycled so each gets its share.
constexpr double kSizes[] = {0.01, 0.02, 0.03, 0.05, 0.10};
constexpr double kFunctionSize = 0.005;  // a function-level regression is worth this much

struct ServiceTemplate {
  const char* name;
  double traffic_share;
  int hosts;
  const char* endpoints[10];
};

constexpr ServiceTemplate kServices[] = {
    {"storefront",
     0.30,
     6,
     {"/", "/product/<int:id>/", "/search/", "/cart/", "/checkout/", "/category/<slug:slug>/",
      "/reviews/<int:id>/", "/wishlist/", "/orders/", "/help/"}},
    {"catalog-api",
     0.25,
     5,
     {"/api/v2/items/<int:id>/", "/api/v2/items/", "/api/v2/prices/", "/api/v2/stock/",
      "/api/v2/categories/", "/api/v2/bundles/", "/api/v2/images/<int:id>/", "/api/v2/variants/",
      "/api/v2/brands/", "/api/v2/export/"}},
    {"feed",
     0.20,
     5,
     {"/api/feed/", "/api/feed/home/", "/api/notifications/", "/api/recommendations/",
      "/api/trending/", "/api/follow/", "/api/likes/", "/api/comments/", "/api/share/",
      "/api/digest/"}},
    {"accounts",
     0.15,
     4,
     {"/api/session/", "/login/", "/profile/", "/logout/", "/signup/", "/password/reset/",
      "/settings/", "/api/token/", "/addresses/", "/2fa/verify/"}},
    {"payments",
     0.10,
     4,
     {"/pay/authorize/", "/pay/capture/", "/pay/refund/", "/pay/methods/", "/pay/invoice/<int:id>/",
      "/pay/webhook/", "/pay/quote/", "/pay/tax/", "/pay/fraud-check/", "/pay/ledger/"}},
};

constexpr const char* kFlagNames[] = {
    "new_search",   "fast_checkout", "reco_v2",        "lazy_images", "new_pricing",
    "bulk_export",  "smart_feed",    "dark_mode",      "one_tap_pay", "risk_model_v3",
    "grpc_catalog", "async_notify",  "passkeys",       "edge_cache",  "infinite_scroll",
    "new_cart",     "ranker_v4",     "session_rotate", "tax_engine",  "image_cdn_v2"};

constexpr const char* kVerbs[] = {"load",   "filter",    "score",  "render", "validate",
                                  "enrich", "aggregate", "format", "rank",   "merge"};

std::string Hex7(uint64_t x) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%07llx", static_cast<unsigned long long>(x & 0xfffffff));
  return buf;
}

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(Mix(seed ^ 0xde7ec7ull)) {}
  double Uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }  // [lo, hi]
  template <typename T>
  void Shuffle(std::vector<T>& v) {
    std::shuffle(v.begin(), v.end(), rng_);
  }

 private:
  std::mt19937_64 rng_;
};

// MakeCalls() — one endpoint's call tree: the view, a permission check, a
// shared decorator (at two call paths: around the logic and around the JSON
// encoder), the endpoint's logic and its helpers, db and cache (which carry
// the slow mode), a serializer. 11 to 15 frames, 4 to 6 levels deep.
std::vector<CallSpec> MakeCalls(Gen& g, const std::string& service, const std::string& handler) {
  std::vector<CallSpec> calls;
  auto add = [&](std::string file, uint32_t line, std::string name, int parent, double weight,
                 bool slow = false) {
    calls.push_back(CallSpec{std::move(file), line, std::move(name), parent, weight, slow});
    return static_cast<int>(calls.size()) - 1;
  };
  const std::string pkg = service;
  const int view = add(pkg + "/views.py", static_cast<uint32_t>(g.Int(20, 900)), handler + "_view",
                       -1, g.Uniform(0.03, 0.07));
  add("common/auth.py", 57, "check_permissions", view, g.Uniform(0.02, 0.05));
  const int wrapper = add("common/decorators.py", 41, "wrapper", view, g.Uniform(0.01, 0.03));
  const uint32_t logic_line = static_cast<uint32_t>(g.Int(20, 400));
  const int logic =
      add(pkg + "/logic.py", logic_line, handler + "_logic", wrapper, g.Uniform(0.04, 0.08));
  add("common/db.py", 88, "execute", logic, g.Uniform(0.08, 0.18), /*slow=*/true);
  add("common/cache.py", 30, "get", logic, g.Uniform(0.03, 0.07), /*slow=*/true);
  std::vector<int> verbs(std::size(kVerbs));
  for (size_t i = 0; i < verbs.size(); ++i) verbs[i] = static_cast<int>(i);
  g.Shuffle(verbs);
  const int helpers = g.Int(2, 6);
  int previous = logic;
  for (int h = 0; h < helpers; ++h) {
    // Most helpers are called by the logic; some by the helper before (a deeper path).
    const int parent = h > 0 && g.Uniform(0, 1) < 0.3 ? previous : logic;
    previous = add(pkg + "/logic.py", logic_line + 10 + 7 * static_cast<uint32_t>(h),
                   handler + "_" + kVerbs[verbs[h]], parent, g.Uniform(0.05, 0.15));
  }
  const int serializer =
      add("common/serializers.py", 120, "to_representation", view, g.Uniform(0.04, 0.09));
  const int wrapper2 =
      add("common/decorators.py", 41, "wrapper", serializer, g.Uniform(0.005, 0.015));
  add("common/json.py", 15, "dumps", wrapper2, g.Uniform(0.03, 0.07));
  return calls;
}

// Endpoint-specific helper frames (the culprit and subject candidates);
// not the new helpers (weight 0: they cost nothing until their rollout).
std::vector<std::string> HelperKeys(const EndpointSpec& ep) {
  std::vector<std::string> keys;
  for (const CallSpec& c : ep.calls)
    if (c.file.find("/logic.py") != std::string::npos && c.weight > 0)
      keys.push_back(FunctionKey(c));
  return keys;
}

struct EndpointRef {
  size_t service = 0, endpoint = 0;
};

// Picker — chooses target endpoints: alternating between a service's heavy
// ones (top 3 by traffic) and the rest, preferring endpoints not hit yet.
class Picker {
 public:
  Picker(const FleetConfig& config, Gen& g) : g_(g) {
    for (const ServiceSpec& s : config.services) {
      std::vector<size_t> order(s.endpoints.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return s.endpoints[a].traffic_share > s.endpoints[b].traffic_share;
      });
      by_traffic_.push_back(order);
      heavy_next_.push_back(g.Uniform(0, 1) < 0.5);
    }
  }
  // Pick() — an endpoint of `service`; `top` > 0 restricts to the top ones.
  size_t Pick(size_t service, size_t top = 0) {
    const std::vector<size_t>& order = by_traffic_[service];
    std::vector<size_t> group;
    if (top > 0) {
      group.assign(order.begin(), order.begin() + std::min(top, order.size()));
    } else {
      const bool heavy = heavy_next_[service];
      heavy_next_[service] = !heavy;
      if (heavy)
        group.assign(order.begin(), order.begin() + std::min<size_t>(3, order.size()));
      else
        group.assign(order.begin() + std::min<size_t>(3, order.size()), order.end());
    }
    std::vector<size_t> fresh;
    for (size_t e : group)
      if (!used_.count({service, e})) fresh.push_back(e);
    const std::vector<size_t>& from = fresh.empty() ? group : fresh;
    const size_t e = from[static_cast<size_t>(g_.Int(0, static_cast<int>(from.size()) - 1))];
    used_.insert({service, e});
    return e;
  }

 private:
  Gen& g_;
  std::vector<std::vector<size_t>> by_traffic_;
  std::vector<bool> heavy_next_;
  std::set<std::pair<size_t, size_t>> used_;
};

// FunctionTarget — a helper of the endpoint whose share is in a range where
// a 0.5% regression is a 2.5-17% change of the function; the largest helper
// otherwise.
std::string FunctionTarget(Gen& g, const EndpointSpec& ep) {
  std::vector<std::string> fit, all = HelperKeys(ep);
  for (const std::string& k : all) {
    const double share = ExpectedFunctionShare(ep, k);
    if (share >= 0.03 && share <= 0.2) fit.push_back(k);
  }
  if (!fit.empty()) return fit[static_cast<size_t>(g.Int(0, static_cast<int>(fit.size()) - 1))];
  std::string best;
  double best_share = -1;
  for (const std::string& k : all)
    if (ExpectedFunctionShare(ep, k) > best_share)
      best_share = ExpectedFunctionShare(ep, k), best = k;
  return best;
}

std::string Culprit(Gen& g, const EndpointSpec& ep) {
  const std::vector<std::string> keys = HelperKeys(ep);
  return keys[static_cast<size_t>(g.Int(0, static_cast<int>(keys.size()) - 1))];
}

}  // namespace

double ExpectedFunctionShare(const EndpointSpec& ep, const std::string& function) {
  double total_weight = 0, slow_weight = 0;
  for (const CallSpec& c : ep.calls) {
    total_weight += std::max(c.weight, 0.0);
    if (c.slow) slow_weight += std::max(c.weight, 0.0);
  }
  if (total_weight <= 0) return 0;
  slow_weight /= total_weight;
  const double extra = ep.slow_mode_share * (ep.slow_mode_factor - 1);
  double share = 0;
  for (const CallSpec& c : ep.calls) {
    if (c.name != function && FunctionKey(c) != function) continue;
    const double w = std::max(c.weight, 0.0) / total_weight;
    // The slow mode's extra cost goes to the slow frames (all frames when none is slow).
    share += slow_weight > 0 ? w * (1 + (c.slow ? extra / slow_weight : 0)) : w * (1 + extra);
  }
  return share / (1 + extra);
}

std::string AddNewHelper(EndpointSpec& ep, const std::string& name) {
  int logic = 0;
  for (size_t i = 0; i < ep.calls.size(); ++i)
    if (ep.calls[i].file.find("/logic.py") != std::string::npos) {
      logic = static_cast<int>(i);
      break;
    }
  CallSpec c{ep.calls[logic].file, ep.calls[logic].line + 200, name, logic, 0.0, false};
  ep.calls.push_back(c);
  return FunctionKey(c);
}

namespace {

// BaseConfig() — the fleet's traffic, sampling and profiling, without services.
FleetConfig BaseConfig(uint64_t seed, int days) {
  FleetConfig c;
  c.seed = seed;
  c.start_unix_s = kStartUnixS;
  c.duration_s = days * 86400LL;
  c.peak_rps = 105;
  c.sample_rate = 0.5;
  c.users = 50000;
  c.with_pmu = true;
  c.profile_rate = 0.05;
  c.cost_diurnal = 0.15;
  return c;
}

// AddServices() — the five services of kServices, ten endpoints each, with
// Zipf traffic within a service and drawn costs and call trees.
void AddServices(Gen& g, FleetConfig& c) {
  for (const ServiceTemplate& t : kServices) {
    ServiceSpec s;
    s.name = t.name;
    s.traffic_share = t.traffic_share;
    s.hosts = t.hosts;
    std::vector<int> rank(10);
    for (int i = 0; i < 10; ++i) rank[i] = i;
    g.Shuffle(rank);
    for (int i = 0; i < 10; ++i) {
      EndpointSpec ep;
      ep.name = t.endpoints[i];
      ep.traffic_share = 1.0 / std::pow(rank[i] + 1.0, 1.1);  // Zipf within the service
      ep.cpu_ms_median = std::exp(g.Uniform(std::log(0.5), std::log(40.0)));
      ep.cpu_sigma = g.Uniform(0.2, 0.3);
      ep.slow_mode_share = g.Uniform(0.05, 0.15);
      ep.slow_mode_factor = g.Uniform(2.0, 5.0);
      ep.db_calls_mean = g.Uniform(0, 6);
      ep.cache_calls_mean = g.Uniform(0, 5);
      ep.calls = MakeCalls(g, s.name, HandlerName(ep.name));
      s.endpoints.push_back(std::move(ep));
    }
    c.services.push_back(std::move(s));
  }
}

// Slot — a rollout that may carry a regression (there is data before and after it).
struct Slot {
  size_t rollout;
  size_t service;
};

// AddRollouts() — per service every ~4 h (6 a day, 30 across the fleet),
// chained. RETURNS: the eligible ones; those in the first 2 h of the run
// are no-ops (nothing before them to compare against), and so are those
// too near its end.
std::vector<Slot> AddRollouts(Gen& g, FleetConfig& c, uint64_t seed) {
  std::vector<Slot> eligible;
  for (size_t s = 0; s < c.services.size(); ++s) {
    int64_t t = 30 * kMinute + static_cast<int64_t>(s) * 40 * kMinute + g.Int(0, 20) * kMinute;
    std::string commit = Hex7(Mix(seed * 1000003 + s * 7919));
    for (int k = 1; t < c.duration_s - 20 * kMinute; ++k) {
      RolloutSpec r;
      r.service = c.services[s].name;
      r.from = commit;
      r.to = commit = Hex7(Mix(seed * 1000003 + s * 7919 + static_cast<uint64_t>(k) * 104729));
      r.at_s = t;
      r.spread_s = g.Int(15, 45) * kMinute;
      if (t >= 2 * kHour && t + r.spread_s + 2 * kHour <= c.duration_s)
        eligible.push_back({c.rollouts.size(), s});
      c.rollouts.push_back(r);
      t += 4 * kHour + g.Int(-40, 40) * kMinute;
    }
  }
  return eligible;
}

// Card — what a rollout or flag does: kind ("" for nothing) and size.
struct Card {
  std::string kind;
  double size;
};

// Inject() — the card's regression on endpoint `ep`, into the rollout's or
// flag's spec and its ground truth: an endpoint regression adds its cost in
// one helper (the culprit); a new function is a helper added to `ep` that
// carries the added cost; a grown function multiplies one helper's own
// cost (the subject) by what makes the endpoint card.size costlier.
template <typename Spec>
void Inject(Gen& g, const Card& card, EndpointSpec& ep, Spec& spec, InjectedRegression& truth) {
  if (card.kind == "rollout" || card.kind == "flag") {
    spec.cost_factor = 1 + card.size;
    spec.culprit = truth.function = Culprit(g, ep);
    truth.endpoint_change = card.size;
    truth.function_change = card.size / ExpectedFunctionShare(ep, spec.culprit);
  } else if (card.kind == "new-function-rollout") {
    spec.cost_factor = 1 + card.size;
    spec.culprit = truth.function = AddNewHelper(ep, "new_helper_" + truth.commit_to);
    truth.endpoint_change = card.size;
    truth.function_change = std::numeric_limits<double>::infinity();  // from no cost at all
  } else {
    spec.function = truth.function = FunctionTarget(g, ep);
    const double share = ExpectedFunctionShare(ep, spec.function);
    spec.function_factor = 1 + card.size / share;
    truth.endpoint_change = card.size;
    truth.function_change = card.size / share;
  }
}

// InjectRolloutRegressions() — half the eligible rollouts regress an
// endpoint, a sixth grow a function, a sixth add a new one, the rest
// nothing; the rollouts without an effect are the truth's no-ops.
void InjectRolloutRegressions(Gen& g, Picker& picker, const std::vector<Slot>& eligible,
                              DetectionFleet& out) {
  FleetConfig& c = out.config;
  std::vector<Card> deck;
  const size_t n_endpoint = (eligible.size() + 1) / 2;
  const size_t n_function = eligible.size() / 6;
  const size_t n_new_function = eligible.size() / 6;
  for (size_t i = 0; i < eligible.size(); ++i) {
    if (i < n_endpoint)
      deck.push_back({"rollout", kSizes[i % std::size(kSizes)]});
    else if (i < n_endpoint + n_function)
      deck.push_back({"function-rollout", kFunctionSize});
    else if (i < n_endpoint + n_function + n_new_function)
      deck.push_back({"new-function-rollout", kFunctionSize});
    else
      deck.push_back({"", 0});
  }
  g.Shuffle(deck);
  std::vector<bool> has_effect(c.rollouts.size(), false);
  for (size_t i = 0; i < eligible.size(); ++i) {
    const Card& card = deck[i];
    if (card.kind.empty()) continue;
    RolloutSpec& r = c.rollouts[eligible[i].rollout];
    const size_t s = eligible[i].service;
    const size_t e = card.kind == "rollout" ? picker.Pick(s) : picker.Pick(s, 5);
    EndpointSpec& ep = c.services[s].endpoints[e];
    InjectedRegression truth;
    truth.kind = card.kind;
    truth.service = r.service;
    truth.endpoint = ep.name;
    truth.commit_from = r.from;
    truth.commit_to = r.to;
    truth.size = card.size;
    truth.start_s = r.at_s;
    truth.spread_s = r.spread_s;
    r.endpoints = {ep.name};
    Inject(g, card, ep, r, truth);
    has_effect[eligible[i].rollout] = true;
    out.truth.regressions.push_back(std::move(truth));
  }
  for (size_t i = 0; i < c.rollouts.size(); ++i) {
    if (has_effect[i]) continue;
    const RolloutSpec& r = c.rollouts[i];
    out.truth.noops.push_back({"rollout", r.service, r.from, r.to, "", r.at_s});
  }
}

// AddFlags() — 20 flags, four per service, each carried by 1-3 endpoints;
// 8 regress an endpoint, 4 a function, 8 nothing. A quarter exist from the
// start; the others appear in the first 60% of the run, so there is data
// after them.
void AddFlags(Gen& g, Picker& picker, DetectionFleet& out) {
  FleetConfig& c = out.config;
  std::vector<Card> deck;
  for (double size : {0.01, 0.02, 0.03, 0.05, 0.10, 0.03, 0.05, 0.10})
    deck.push_back({"flag", size});
  for (int i = 0; i < 4; ++i) deck.push_back({"function-flag", kFunctionSize});
  while (deck.size() < std::size(kFlagNames)) deck.push_back({"", 0});
  g.Shuffle(deck);
  for (size_t i = 0; i < std::size(kFlagNames); ++i) {
    const size_t s = i % c.services.size();
    ServiceSpec& service = c.services[s];
    const Card& card = deck[i];
    FlagSpec f;
    f.name = kFlagNames[i];
    f.service = service.name;
    f.exposure = g.Uniform(0.1, 0.5);
    f.at_s =
        i % 4 == 0 ? 0 : g.Int(60, static_cast<int>(c.duration_s * 6 / 10 / kMinute)) * kMinute;
    const size_t target = card.kind == "function-flag" ? picker.Pick(s, 5)
                          : card.kind == "flag"        ? picker.Pick(s)
                                                       : static_cast<size_t>(g.Int(0, 9));
    EndpointSpec& ep = service.endpoints[target];
    f.scope = {ep.name};
    for (int extra = g.Int(0, 2); extra > 0; --extra) {
      const std::string& other = service.endpoints[static_cast<size_t>(g.Int(0, 9))].name;
      if (std::find(f.scope.begin(), f.scope.end(), other) == f.scope.end())
        f.scope.push_back(other);
    }
    f.endpoints = {ep.name};
    if (card.kind.empty()) {
      out.truth.noops.push_back({"flag", service.name, "", "", f.name, f.at_s});
    } else {
      InjectedRegression truth;
      truth.kind = card.kind;
      truth.service = service.name;
      truth.endpoint = ep.name;
      truth.flag = f.name;
      truth.flag_value = "on";
      truth.size = card.size;
      truth.start_s = f.at_s;
      Inject(g, card, ep, f, truth);
      out.truth.regressions.push_back(std::move(truth));
    }
    c.flags.push_back(std::move(f));
  }
}

// AddMixShifts() — three a day, an endpoint's traffic x0.5, x2 or x3.
void AddMixShifts(Gen& g, FleetConfig& c, int days) {
  for (int i = 0; i < 3 * days; ++i) {
    MixShift m;
    const size_t s = static_cast<size_t>(g.Int(0, static_cast<int>(c.services.size()) - 1));
    m.service = c.services[s].name;
    m.endpoint = c.services[s].endpoints[static_cast<size_t>(g.Int(0, 9))].name;
    m.at_s = g.Int(1, static_cast<int>(c.duration_s / kMinute) - 60) * kMinute;
    constexpr double kFactors[] = {0.5, 2.0, 3.0};
    m.traffic_factor = kFactors[g.Int(0, 2)];
    c.mix_shifts.push_back(m);
  }
}

}  // namespace

FleetConfig MakeDetectionServices(uint64_t seed, int days) {
  Gen g(seed);
  FleetConfig c = BaseConfig(seed, std::max(days, 1));
  AddServices(g, c);
  return c;
}

// AddChangedCode() — the code each rollout changed: the function its
// regression, if any, lies in, and 2-10 other functions of its service
// that cost no more for it (most of what a commit changes). Drawn from a
// stream of its own: the rest of the fleet is what it was without them.
void AddChangedCode(uint64_t seed, FleetConfig& c) {
  c.with_code_hashes = true;
  Gen g(seed ^ 0xc0dec0deull);
  for (RolloutSpec& r : c.rollouts) {
    std::vector<std::string> keys;  // the service's functions
    for (const ServiceSpec& s : c.services)
      if (s.name == r.service)
        for (const EndpointSpec& ep : s.endpoints)
          for (const CallSpec& call : ep.calls) keys.push_back(FunctionKey(call));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    g.Shuffle(keys);
    keys.resize(std::min(keys.size(), static_cast<size_t>(g.Int(2, 10))));
    r.changed = std::move(keys);
    for (const std::string* f : {&r.culprit, &r.function})
      if (!f->empty()) r.changed.push_back(*f);
  }
}

DetectionFleet MakeDetectionFleet(uint64_t seed, int days) {
  days = std::max(days, 1);
  Gen g(seed);  // draws the services as MakeDetectionServices() does, then the rest
  DetectionFleet out;
  out.config = BaseConfig(seed, days);
  AddServices(g, out.config);
  Picker picker(out.config, g);
  const std::vector<Slot> eligible = AddRollouts(g, out.config, seed);
  InjectRolloutRegressions(g, picker, eligible, out);
  AddFlags(g, picker, out);
  AddMixShifts(g, out.config, days);
  AddChangedCode(seed, out.config);
  out.truth.mix_shifts = out.config.mix_shifts;
  std::stable_sort(out.truth.regressions.begin(), out.truth.regressions.end(),
                   [](const InjectedRegression& a, const InjectedRegression& b) {
                     return a.start_s < b.start_s;
                   });
  return out;
}

}  // namespace cpuledger::sim
