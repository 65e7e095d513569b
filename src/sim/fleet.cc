#include "sim/fleet.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <numbers>

#include "profile/function_key.h"
#include "record/hll.h"

namespace cpuledger::sim {
namespace {

EndpointSpec Ep(std::string name, double share, double cpu_ms, double db_calls,
                double cache_calls) {
  EndpointSpec e;
  e.name = std::move(name);
  e.traffic_share = share;
  e.cpu_ms_median = cpu_ms;
  e.db_calls_mean = db_calls;
  e.cache_calls_mean = cache_calls;
  return e;
}

// Mix64() — SplitMix64's finaliser: a per-(user, flag) coin that does not
// consume the main RNG, so a user's flag exposure is stable all day.
uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t HashString(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool Listed(const std::vector<std::string>& list, const std::string& name) {
  return list.empty() || std::find(list.begin(), list.end(), name) != list.end();
}

// FramesOf() — the frames of `calls` that run `function` (a FunctionKey, or a
// bare name that matches every frame of that name); empty when none does.
std::vector<int> FramesOf(const std::vector<CallSpec>& calls, const std::string& function) {
  std::vector<int> frames;
  if (function.empty()) return frames;
  for (size_t i = 0; i < calls.size(); ++i)
    if (calls[i].name == function || FunctionKey(calls[i]) == function)
      frames.push_back(static_cast<int>(i));
  return frames;
}

// CodeHash() — a stand-in for a function's code hash: FNV-1a over its key,
// mixed with its version (splitmix64's finalizer); never 0 ("unknown").
uint64_t CodeHash(const std::string& key, uint64_t version) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : key) h = (h ^ c) * 0x100000001b3ULL;
  h += (version + 1) * 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h == 0 ? 1 : h;
}

// kFrameSigma — lognormal noise of one frame's share of a request's cost.
constexpr double kFrameSigma = 0.15;

}  // namespace

std::string HandlerName(const std::string& route) {
  std::string out, param;
  bool in_param = false;
  for (char c : route) {
    if (c == '<' || c == ':') {  // "<int:id>": keep what follows the last ':'
      in_param = true;
      param.clear();
    } else if (in_param && c == '>') {
      in_param = false;
      if (!out.empty() && out.back() != '_') out += '_';
      out += param;
    } else if (in_param) {
      param += c;
    } else if (std::isalnum(static_cast<unsigned char>(c))) {
      out += c;
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "index" : out;
}

// DefaultCalls() — the demo's call tree of one endpoint: the view, a shared
// decorator at two paths, the logic with two helpers, db and cache (the slow
// mode's frames), a serializer and the JSON encoder. Fixed weights: the
// default fleet draws nothing for them, so its records are what they were.
std::vector<CallSpec> DefaultCalls(const std::string& service, const std::string& route) {
  std::string pkg = service;  // "shop-web" -> the package "shop/web"
  std::replace(pkg.begin(), pkg.end(), '-', '/');
  const std::string h = HandlerName(route);
  return {
      CallSpec{pkg + "/views.py", 30, h + "_view", -1, 0.06, false},                // 0
      CallSpec{"common/decorators.py", 41, "wrapper", 0, 0.02, false},              // 1
      CallSpec{pkg + "/logic.py", 120, h + "_logic", 1, 0.08, false},               // 2
      CallSpec{"common/db.py", 88, "execute", 2, 0.16, true},                       // 3
      CallSpec{"common/cache.py", 30, "get", 2, 0.06, true},                        // 4
      CallSpec{pkg + "/logic.py", 160, h + "_load", 2, 0.22, false},                // 5
      CallSpec{pkg + "/logic.py", 210, h + "_render", 2, 0.18, false},              // 6
      CallSpec{"common/serializers.py", 120, "to_representation", 0, 0.10, false},  // 7
      CallSpec{"common/decorators.py", 41, "wrapper", 7, 0.02, false},              // 8
      CallSpec{"common/json.py", 15, "dumps", 8, 0.10, false},                      // 9
  };
}

std::string FunctionKey(const CallSpec& call) {
  return profile::FunctionKeyText(call.file, call.line, call.name);
}

FleetConfig DefaultFleet() {
  FleetConfig c;
  ServiceSpec web{
      "shop-web",
      {Ep("/", 4, 3.0, 1, 4), Ep("/product/<int:id>/", 6, 6.0, 3, 5), Ep("/search/", 3, 12.0, 2, 2),
       Ep("/cart/", 2, 4.0, 2, 3), Ep("/checkout/", 1, 18.0, 6, 2)},
      3,
      6};
  ServiceSpec api{"shop-api",
                  {Ep("/api/v1/feed/", 5, 9.0, 4, 6), Ep("/api/v1/items/<int:id>/", 4, 2.5, 1, 2),
                   Ep("/api/v1/recommendations/", 1, 25.0, 3, 1)},
                  2,
                  4};
  ServiceSpec accounts{"accounts",
                       {Ep("/login/", 1, 15.0, 2, 1), Ep("/profile/", 2, 3.5, 2, 2),
                        Ep("/api/session/", 4, 0.8, 0, 2)},
                       1,
                       2};
  c.services = {web, api, accounts};
  for (ServiceSpec& s : c.services)
    for (EndpointSpec& e : s.endpoints) e.calls = DefaultCalls(s.name, e.name);
  FlagSpec flag;
  flag.name = "new_search";
  flag.exposure = 0.3;
  flag.cost_factor = 1.35;
  flag.endpoints = {"/search/"};
  flag.culprit = "shop/web/logic.py:160:search_load";  // where profiles show the added cost
  c.flags = {flag};
  RolloutSpec r;
  r.service = "shop-web";
  r.from = "9f3c2a1";
  r.to = "b7e41d0";
  r.at_s = 14 * 3600;
  r.spread_s = 1200;
  r.cost_factor = 1.2;
  r.endpoints = {"/checkout/"};
  r.culprit = "shop/web/logic.py:210:checkout_render";
  c.rollouts = {r};
  return c;
}

FleetSimulator::FleetSimulator(FleetConfig config) : config_(std::move(config)) {
  if (config_.services.empty()) {
    FleetConfig defaults = DefaultFleet();
    config_.services = defaults.services;
    if (config_.flags.empty()) config_.flags = defaults.flags;
    if (config_.rollouts.empty()) config_.rollouts = defaults.rollouts;
  }
  if (config_.start_unix_s == 0) {
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    config_.start_unix_s = (now - config_.duration_s) / 60 * 60;
  }
  rng_.seed(config_.seed);
  frame_rng_.seed(Mix64(config_.seed ^ 0x70f11e5ull));
  // Users: a long tail with a few heavy users (weights ~ 1/rank^0.8).
  user_weights_cdf_.resize(std::max(config_.users, 1));
  double total = 0;
  for (size_t i = 0; i < user_weights_cdf_.size(); ++i) {
    total += 1.0 / std::pow(static_cast<double>(i + 1), 0.8);
    user_weights_cdf_[i] = total;
  }
  for (double& w : user_weights_cdf_) w /= total;

  // Resolve, once, each service's rollout chain and each endpoint's flags,
  // effects, mix shifts and profile skeleton.
  const size_t services = config_.services.size();
  chains_.resize(services);
  initial_commits_.resize(services);
  endpoints_.resize(services);
  for (size_t s = 0; s < services; ++s) {
    const ServiceSpec& service = config_.services[s];
    for (size_t i = 0; i < config_.rollouts.size(); ++i)
      if (config_.rollouts[i].service == service.name) chains_[s].push_back(i);
    std::stable_sort(chains_[s].begin(), chains_[s].end(), [&](size_t a, size_t b) {
      return config_.rollouts[a].at_s < config_.rollouts[b].at_s;
    });
    initial_commits_[s] = chains_[s].empty()
                              ? "c0ffee" + std::to_string(HashString(service.name) % 10)
                              : config_.rollouts[chains_[s].front()].from;
    for (const EndpointSpec& ep : service.endpoints) {
      EndpointState st = ResolveEffects(s, ep);
      BuildProfileSkeleton(ep, st);
      if (config_.with_code_hashes) AddCodeHashes(s, st);
      endpoints_[s].push_back(std::move(st));
    }
  }
}

FleetSimulator::EndpointState FleetSimulator::ResolveEffects(size_t s,
                                                             const EndpointSpec& ep) const {
  const ServiceSpec& service = config_.services[s];
  EndpointState st;
  auto effect = [&](double cost_factor, const std::vector<std::string>& endpoints,
                    const std::string& culprit, const std::string& function,
                    double function_factor) {
    Effect e;
    if (!Listed(endpoints, ep.name)) return e;
    e.cost_factor = cost_factor;
    e.culprit = FramesOf(ep.calls, culprit);
    e.function = FramesOf(ep.calls, function);
    e.function_factor = function_factor;
    return e;
  };
  for (size_t f = 0; f < config_.flags.size(); ++f) {
    const FlagSpec& flag = config_.flags[f];
    if (!flag.service.empty() && flag.service != service.name) continue;
    if (!Listed(flag.scope, ep.name)) continue;
    st.flags.push_back(f);
    st.flag_effects.push_back(effect(flag.cost_factor, flag.endpoints, flag.culprit, flag.function,
                                     flag.function_factor));
  }
  for (size_t i : chains_[s]) {
    const RolloutSpec& r = config_.rollouts[i];
    st.rollout_effects.push_back(
        effect(r.cost_factor, r.endpoints, r.culprit, r.function, r.function_factor));
  }
  for (size_t i = 0; i < config_.mix_shifts.size(); ++i) {
    const MixShift& m = config_.mix_shifts[i];
    if (m.service == service.name && m.endpoint == ep.name) st.shifts.push_back(i);
  }
  return st;
}

// BuildProfileSkeleton() — one function per distinct file:line:name, node
// i + 1 for frame i (node 0 is the root), parents first as calls are; and
// the frames' weights.
void FleetSimulator::BuildProfileSkeleton(const EndpointSpec& ep, EndpointState& st) const {
  double weight_total = 0;
  for (const CallSpec& c : ep.calls) weight_total += std::max(c.weight, 0.0);
  std::vector<std::string> keys;
  if (!ep.calls.empty()) st.profile.add_nodes();  // the root
  for (size_t i = 0; i < ep.calls.size(); ++i) {
    const CallSpec& c = ep.calls[i];
    const double w = weight_total > 0 ? std::max(c.weight, 0.0) / weight_total : 0;
    st.weights.push_back(w);
    if (c.slow) st.slow_weight += w;
    const std::string key = FunctionKey(c);
    auto it = std::find(keys.begin(), keys.end(), key);
    if (it == keys.end()) {
      keys.push_back(key);
      record::ProfileFunction* fn = st.profile.add_functions();
      fn->set_file(c.file);
      fn->set_line(c.line);
      fn->set_name(c.name);
      it = keys.end() - 1;
    }
    record::ProfileNode* node = st.profile.add_nodes();
    // A parent that is not an earlier frame would break the tree: hang it on the root.
    node->set_parent(c.parent >= 0 && static_cast<size_t>(c.parent) < i ? c.parent + 1 : 0);
    node->set_function(static_cast<uint32_t>(it - keys.begin()));
    node->set_calls(1);
    node->set_primitive_calls(1);
  }
  if (!ep.calls.empty()) {
    st.profile.set_unit(config_.with_pmu ? "instructions" : "cpu_ns");
    st.profile.set_source(config_.with_pmu ? "hardware" : "task_clock");
    st.profile.set_mode("fast");
    st.profile.set_builtins_folded(true);
    st.profile.set_requests(1);
  }
}

// AddCodeHashes() — each function's hash at each chain position: one per
// version, a new version from each rollout that lists it as changed.
void FleetSimulator::AddCodeHashes(size_t service, EndpointState& st) const {
  const std::vector<size_t>& chain = chains_[service];
  st.code_hashes.assign(chain.size() + 1, {});
  for (const record::ProfileFunction& f : st.profile.functions()) {
    const std::string key = profile::FunctionKeyText(f.file(), f.line(), f.name());
    uint64_t version = 0;
    for (size_t position = 0; position <= chain.size(); ++position) {
      if (position > 0) {
        const std::vector<std::string>& changed = config_.rollouts[chain[position - 1]].changed;
        if (std::find_if(changed.begin(), changed.end(), [&](const std::string& c) {
              return c == key || c == f.name();
            }) != changed.end())
          version = position;
      }
      st.code_hashes[position].push_back(CodeHash(key, version));
    }
  }
}

double FleetSimulator::DiurnalFactor(int64_t unix_s) const {
  const double hour = static_cast<double>(unix_s % 86400) / 3600.0;
  return 0.55 + 0.45 * std::sin(2 * std::numbers::pi * (hour - 9.0) / 24.0);  // peak 15:00 UTC
}

int FleetSimulator::ChainPosition(size_t service, int host, int64_t t_s) const {
  const int hosts = std::max(config_.services[service].hosts, 1);
  int position = 0;
  for (size_t k = 0; k < chains_[service].size(); ++k) {
    const RolloutSpec& r = config_.rollouts[chains_[service][k]];
    const int64_t switch_at = r.at_s + r.spread_s * host / hosts;  // host by host
    if (t_s >= switch_at) position = static_cast<int>(k) + 1;
  }
  return position;
}

const std::string& FleetSimulator::CommitAt(size_t service, int position) const {
  if (position == 0) return initial_commits_[service];
  return config_.rollouts[chains_[service][position - 1]].to;
}

std::string FleetSimulator::CommitFor(const std::string& service, int host, int64_t t_s) const {
  for (size_t s = 0; s < config_.services.size(); ++s)
    if (config_.services[s].name == service) return CommitAt(s, ChainPosition(s, host, t_s));
  return "";
}

// Minute — one minute's clock, distributions and batch. The frame stream
// has its own distributions: std::normal_distribution caches a value, and
// sharing one would couple the two streams; for the same reason the draws
// of a minute all go through these objects, made afresh each minute.
struct FleetSimulator::Minute {
  int64_t offset_s = 0;  // into the run
  int64_t t0 = 0;        // unix seconds
  std::uniform_real_distribution<double> unit{0.0, 1.0};
  std::normal_distribution<double> normal{0.0, 1.0};
  std::uniform_real_distribution<double> frame_unit{0.0, 1.0};
  std::normal_distribution<double> frame_normal{0.0, 1.0};
  double slow_modulation = 1.0;  // the slow mode's share follows the hour (cost_diurnal)
  double service_share_total = 0;
  std::vector<const Effect*> effects;  // those that apply to one request, in order
  std::vector<double> frames;          // one request's self cost per frame, ms
  record::Batch batch;
};

// Host — one host of a service during the minute.
struct FleetSimulator::Host {
  size_t service = 0;
  std::string name, cluster, region;
  int position = 0;  // in the service's rollout chain
  const std::string* commit = nullptr;
  record::WorkerTally* tally = nullptr;
  record::HyperLogLog users{record::HyperLogLog::kDefaultPrecision};
};

std::optional<record::Batch> FleetSimulator::NextMinute() {
  const int64_t offset_s = minute_ * 60;
  if (offset_s >= config_.duration_s) return std::nullopt;
  ++minute_;
  Minute m = StartMinute(offset_s);
  for (size_t s = 0; s < config_.services.size(); ++s)
    for (int host = 0; host < config_.services[s].hosts; ++host) SimulateHost(m, s, host);
  return std::move(m.batch);
}

FleetSimulator::Minute FleetSimulator::StartMinute(int64_t offset_s) const {
  Minute m;
  m.offset_s = offset_s;
  m.t0 = config_.start_unix_s + offset_s;
  m.slow_modulation =
      config_.cost_diurnal == 0
          ? 1.0
          : 1.0 + config_.cost_diurnal * (DiurnalFactor(m.t0) - 0.55) / 0.45;  // in [-1, 1]
  for (const auto& s : config_.services) m.service_share_total += s.traffic_share;
  return m;
}

// SimulateHost() — one host's worker tally and the records of its requests.
void FleetSimulator::SimulateHost(Minute& m, size_t s, int host) {
  const ServiceSpec& service = config_.services[s];
  double endpoint_share_total = 0;
  for (const auto& e : service.endpoints) endpoint_share_total += e.traffic_share;
  const double service_rps =
      config_.peak_rps * service.traffic_share / m.service_share_total * DiurnalFactor(m.t0);
  Host h;
  h.service = s;
  h.name = service.name + "-" + std::to_string(host + 1);
  h.cluster = host % 2 == 0 ? "east-a" : "west-b";
  h.region = host % 2 == 0 ? "us-east" : "us-west";
  h.position = ChainPosition(s, host, m.offset_s);
  h.commit = &CommitAt(s, h.position);
  h.tally = m.batch.add_tallies();
  h.tally->set_minute_unix(m.t0);
  h.tally->set_service(service.name);
  h.tally->set_host(h.name);
  h.tally->set_cluster(h.cluster);
  h.tally->set_region(h.region);
  h.tally->set_commit(*h.commit);
  h.tally->set_sender(h.name + "/1");
  for (size_t e = 0; e < service.endpoints.size(); ++e)
    SimulateEndpoint(m, h, e,
                     service_rps / service.hosts * 60.0 * service.endpoints[e].traffic_share /
                         endpoint_share_total);
  h.tally->set_active_users_hll(h.users.registers());
  h.tally->set_hll_precision(h.users.precision());
}

// SimulateEndpoint() — one endpoint's requests on one host: a Poisson
// count around `endpoint_rpm` (after the traffic-mix shifts), each drawn.
void FleetSimulator::SimulateEndpoint(Minute& m, Host& h, size_t e, double endpoint_rpm) {
  const EndpointSpec& ep = config_.services[h.service].endpoints[e];
  const EndpointState& st = endpoints_[h.service][e];
  double mean = endpoint_rpm;
  double shift = 1.0;
  for (size_t i : st.shifts)
    if (m.offset_s >= config_.mix_shifts[i].at_s) shift *= config_.mix_shifts[i].traffic_factor;
  if (shift != 1.0) mean *= shift;
  const double slow_share =
      config_.cost_diurnal == 0 ? ep.slow_mode_share : ep.slow_mode_share * m.slow_modulation;
  double profile_rate = 0;  // an endpoint without calls has no frames to profile
  if (!ep.calls.empty()) {
    profile_rate = config_.profile_rate;
    if (config_.profile_floor_per_min > 0 && mean > 0)
      profile_rate = std::max(profile_rate, std::min(1.0, config_.profile_floor_per_min /
                                                              (mean * config_.sample_rate)));
  }
  const uint64_t n = std::poisson_distribution<uint64_t>(mean)(rng_);
  uint64_t sampled_here = 0;
  for (uint64_t i = 0; i < n; ++i)
    sampled_here += SimulateRequest(m, h, ep, st, slow_share, profile_rate);
  requests_ += n;
  sampled_ += sampled_here;
  if (n > 0) {
    record::EndpointCount* count = h.tally->add_endpoints();
    count->set_endpoint(ep.name);
    count->set_requests(n);
    count->set_sampled(sampled_here);
  }
}

// SimulateRequest() — one request: its user (counted whether sampled or
// not), and when sampled, its record. RETURNS: whether it was sampled.
bool FleetSimulator::SimulateRequest(Minute& m, Host& h, const EndpointSpec& ep,
                                     const EndpointState& st, double slow_share,
                                     double profile_rate) {
  const size_t user_index =
      std::lower_bound(user_weights_cdf_.begin(), user_weights_cdf_.end(), m.unit(rng_)) -
      user_weights_cdf_.begin();
  const std::string user = "u" + std::to_string(user_index);
  h.users.Add(user);
  if (m.unit(rng_) >= config_.sample_rate) return false;

  double cpu_ms = ep.cpu_ms_median * std::exp(ep.cpu_sigma * m.normal(rng_));
  const bool slow = m.unit(rng_) < slow_share;
  if (slow) cpu_ms *= ep.slow_mode_factor;
  record::RequestRecord* r = m.batch.add_records();
  const bool needs_frames = CollectEffects(m, h, st, user_index, *r);
  const bool profiled = profile_rate > 0 && m.frame_unit(frame_rng_) < profile_rate;
  if (profiled || (needs_frames && !ep.calls.empty())) {
    cpu_ms = SplitOverFrames(m, ep, st, slow, cpu_ms);
  } else {
    for (const Effect* effect : m.effects) cpu_ms *= effect->cost_factor;
  }
  const uint64_t cpu_ns = FillCosts(m, ep, cpu_ms, *r);
  if (profiled) FillProfile(m, h, st, cpu_ms, cpu_ns, *r);
  FillDimensions(m, h, ep, user, *r);
  return true;
}

// CollectEffects() — the flags the user sees (set on the record) and the
// rollouts the host has taken: their effects, in order, into m.effects.
// RETURNS: whether one of them needs the request split over its frames.
bool FleetSimulator::CollectEffects(Minute& m, const Host& h, const EndpointState& st,
                                    size_t user_index, record::RequestRecord& r) const {
  m.effects.clear();
  bool needs_frames = false;
  for (size_t k = 0; k < st.flags.size(); ++k) {
    const FlagSpec& flag = config_.flags[st.flags[k]];
    if (m.offset_s < flag.at_s) continue;
    const bool on =
        static_cast<double>(Mix64(user_index * 1315423911ull + HashString(flag.name)) >> 11) /
            static_cast<double>(1ull << 53) <
        flag.exposure;
    (*r.mutable_flags())[flag.name] = on ? "on" : "off";
    if (on) {
      m.effects.push_back(&st.flag_effects[k]);
      needs_frames |= st.flag_effects[k].NeedsFrames();
    }
  }
  for (int k = 0; k < h.position; ++k) {
    m.effects.push_back(&st.rollout_effects[k]);
    needs_frames |= st.rollout_effects[k].NeedsFrames();
  }
  return needs_frames;
}

// SplitOverFrames() — the request's cost split over its frames (into
// m.frames), then each effect acting on the frames it names.
// RETURNS: the bill, the frames' sum.
double FleetSimulator::SplitOverFrames(Minute& m, const EndpointSpec& ep, const EndpointState& st,
                                       bool slow, double cpu_ms) {
  std::vector<double>& frames = m.frames;
  frames.assign(st.weights.size(), 0.0);
  const double slow_boost =
      slow && st.slow_weight > 0 ? 1 + (ep.slow_mode_factor - 1) / st.slow_weight : 1;
  double sum = 0;
  for (size_t f = 0; f < frames.size(); ++f) {
    const double noise =
        std::exp(kFrameSigma * m.frame_normal(frame_rng_) - 0.5 * kFrameSigma * kFrameSigma);
    frames[f] = st.weights[f] * noise * (ep.calls[f].slow ? slow_boost : 1.0);
    sum += frames[f];
  }
  for (double& x : frames) x = sum > 0 ? x * cpu_ms / sum : 0;
  for (const Effect* effect : m.effects) {
    if (effect->cost_factor != 1.0) {
      if (effect->culprit.empty()) {
        for (double& x : frames) x *= effect->cost_factor;
      } else {
        double total = 0, culprit = 0;
        for (double x : frames) total += x;
        for (int f : effect->culprit) culprit += frames[f];
        const double added = (effect->cost_factor - 1) * total;
        for (int f : effect->culprit)
          frames[f] += culprit > 0 ? added * frames[f] / culprit
                                   : added / static_cast<double>(effect->culprit.size());
      }
    }
    if (effect->function_factor != 1.0)
      for (int f : effect->function) frames[f] *= effect->function_factor;
  }
  double billed = 0;
  for (double x : frames) billed += x;
  return billed;
}

// FillCosts() — the record's bill, its db and cache calls, start and wall
// time. RETURNS: the bill in ns.
uint64_t FleetSimulator::FillCosts(Minute& m, const EndpointSpec& ep, double cpu_ms,
                                   record::RequestRecord& r) {
  const uint64_t cpu_ns = static_cast<uint64_t>(cpu_ms * 1e6);
  const uint32_t db_calls = std::poisson_distribution<uint32_t>(ep.db_calls_mean)(rng_);
  const uint32_t cache_calls = std::poisson_distribution<uint32_t>(ep.cache_calls_mean)(rng_);
  const uint64_t db_us = static_cast<uint64_t>(db_calls * 700.0 * std::exp(0.5 * m.normal(rng_)));
  const uint64_t cache_us =
      static_cast<uint64_t>(cache_calls * 120.0 * std::exp(0.3 * m.normal(rng_)));
  r.set_start_time_unix_us(m.t0 * 1'000'000 + static_cast<int64_t>(m.unit(rng_) * 59'999'999));
  r.set_wall_us(cpu_ns / 1000 + db_us + cache_us + static_cast<uint64_t>(200 * m.unit(rng_)));
  record::CpuBill* bill = r.mutable_cpu();
  bill->set_cpu_ns(cpu_ns);
  if (config_.with_pmu) {
    bill->set_instructions(static_cast<uint64_t>(cpu_ns * 2.4 * std::exp(0.05 * m.normal(rng_))));
    bill->set_cycles(static_cast<uint64_t>(cpu_ns * 3.0));
    bill->set_counter_source("hardware");
    bill->set_kernel_included(true);
  } else {
    bill->set_counter_source("task_clock");
  }
  r.mutable_db()->set_name("db");
  r.mutable_db()->set_calls(db_calls);
  r.mutable_db()->set_wall_us(db_us);
  r.mutable_cache()->set_name("cache");
  r.mutable_cache()->set_calls(cache_calls);
  r.mutable_cache()->set_wall_us(cache_us);
  return cpu_ns;
}

// FillProfile() — the endpoint's profile skeleton with m.frames as self
// costs, in the bill's unit, so its self costs sum to the bill.
void FleetSimulator::FillProfile(const Minute& m, const Host& h, const EndpointState& st,
                                 double cpu_ms, uint64_t cpu_ns, record::RequestRecord& r) {
  ++profiled_;
  const double billed =
      config_.with_pmu ? static_cast<double>(r.cpu().instructions()) : static_cast<double>(cpu_ns);
  const double per_ms = cpu_ms > 0 ? billed / cpu_ms : 0;
  record::Profile* p = r.mutable_profile();
  *p = st.profile;
  if (!st.code_hashes.empty()) {
    const std::vector<uint64_t>& code = st.code_hashes[static_cast<size_t>(h.position)];
    for (int f = 0; f < p->functions_size(); ++f)
      p->mutable_functions(f)->set_code_hash(code[static_cast<size_t>(f)]);
  }
  for (size_t f = m.frames.size(); f-- > 0;) {
    record::ProfileNode* node = p->mutable_nodes(static_cast<int>(f) + 1);
    const uint64_t self = static_cast<uint64_t>(std::llround(m.frames[f] * per_ms));
    node->set_self_cost(self);
    node->set_total_cost(node->total_cost() + self);
    if (node->parent() != 0) {
      record::ProfileNode* parent = p->mutable_nodes(static_cast<int>(node->parent()));
      parent->set_total_cost(parent->total_cost() + node->total_cost());
    }
  }
}

// FillDimensions() — who served the request, for whom, and its status.
void FleetSimulator::FillDimensions(Minute& m, const Host& h, const EndpointSpec& ep,
                                    const std::string& user, record::RequestRecord& r) {
  r.set_service(config_.services[h.service].name);
  r.set_endpoint(ep.name);
  r.set_method(ep.name.find("checkout") != std::string::npos ? "POST" : "GET");
  const double status_roll = m.unit(rng_);
  r.set_status(status_roll < 0.01 ? 404 : status_roll < 0.012 ? 500 : 200);
  r.set_host(h.name);
  r.set_cluster(h.cluster);
  r.set_region(h.region);
  r.set_commit(*h.commit);
  r.set_user(user);
  r.set_sample_rate(config_.sample_rate);
}

}  // namespace cpuledger::sim
