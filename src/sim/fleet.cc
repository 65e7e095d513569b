#include "sim/fleet.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>

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

}  // namespace

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
  c.flags = {FlagSpec{"new_search", 0.3, 1.35, {"/search/"}}};
  RolloutSpec r;
  r.service = "shop-web";
  r.from = "9f3c2a1";
  r.to = "b7e41d0";
  r.at_s = 14 * 3600;
  r.spread_s = 1200;
  r.cost_factor = 1.2;
  r.endpoints = {"/checkout/"};
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
  // Users: a long tail with a few heavy users (weights ~ 1/rank^0.8).
  user_weights_cdf_.resize(std::max(config_.users, 1));
  double total = 0;
  for (size_t i = 0; i < user_weights_cdf_.size(); ++i) {
    total += 1.0 / std::pow(static_cast<double>(i + 1), 0.8);
    user_weights_cdf_[i] = total;
  }
  for (double& w : user_weights_cdf_) w /= total;
}

double FleetSimulator::DiurnalFactor(int64_t unix_s) const {
  const double hour = static_cast<double>(unix_s % 86400) / 3600.0;
  return 0.55 + 0.45 * std::sin(2 * std::numbers::pi * (hour - 9.0) / 24.0);  // peak 15:00 UTC
}

std::string FleetSimulator::CommitFor(const ServiceSpec& service, int host, int64_t t_s) const {
  std::string commit = "c0ffee" + std::to_string(HashString(service.name) % 10);
  for (const RolloutSpec& r : config_.rollouts) {
    if (r.service != service.name) continue;
    commit = r.from;
    const int64_t switch_at =
        r.at_s + r.spread_s * host / std::max(service.hosts, 1);  // host by host
    if (t_s >= switch_at) commit = r.to;
  }
  return commit;
}

std::optional<record::Batch> FleetSimulator::NextMinute() {
  const int64_t offset_s = minute_ * 60;
  if (offset_s >= config_.duration_s) return std::nullopt;
  ++minute_;
  const int64_t t0 = config_.start_unix_s + offset_s;
  record::Batch batch;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);

  double service_share_total = 0;
  for (const auto& s : config_.services) service_share_total += s.traffic_share;

  for (const ServiceSpec& service : config_.services) {
    double endpoint_share_total = 0;
    for (const auto& e : service.endpoints) endpoint_share_total += e.traffic_share;
    const double service_rps =
        config_.peak_rps * service.traffic_share / service_share_total * DiurnalFactor(t0);
    for (int host = 0; host < service.hosts; ++host) {
      const std::string host_name = service.name + "-" + std::to_string(host + 1);
      const std::string cluster = host % 2 == 0 ? "east-a" : "west-b";
      const std::string region = host % 2 == 0 ? "us-east" : "us-west";
      const std::string commit = CommitFor(service, host, offset_s);
      record::WorkerTally* tally = batch.add_tallies();
      tally->set_minute_unix(t0);
      tally->set_service(service.name);
      tally->set_host(host_name);
      tally->set_cluster(cluster);
      tally->set_region(region);
      tally->set_commit(commit);
      tally->set_worker_id(host_name + "/1");
      record::HyperLogLog users(record::HyperLogLog::kDefaultPrecision);

      for (const EndpointSpec& ep : service.endpoints) {
        const double mean =
            service_rps / service.hosts * 60.0 * ep.traffic_share / endpoint_share_total;
        const uint64_t n = std::poisson_distribution<uint64_t>(mean)(rng_);
        uint64_t sampled_here = 0;
        for (uint64_t i = 0; i < n; ++i) {
          const size_t user_index =
              std::lower_bound(user_weights_cdf_.begin(), user_weights_cdf_.end(), unit(rng_)) -
              user_weights_cdf_.begin();
          const std::string user = "u" + std::to_string(user_index);
          users.Add(user);
          if (unit(rng_) >= config_.sample_rate) continue;
          ++sampled_here;

          double cpu_ms = ep.cpu_ms_median * std::exp(0.35 * normal(rng_));
          if (unit(rng_) < ep.slow_mode_share) cpu_ms *= ep.slow_mode_factor;
          record::RequestRecord* r = batch.add_records();
          for (const FlagSpec& flag : config_.flags) {
            const bool on = static_cast<double>(
                                Mix64(user_index * 1315423911ull + HashString(flag.name)) >> 11) /
                                static_cast<double>(1ull << 53) <
                            flag.exposure;
            (*r->mutable_flags())[flag.name] = on ? "on" : "off";
            if (on && Listed(flag.endpoints, ep.name)) cpu_ms *= flag.cost_factor;
          }
          for (const RolloutSpec& roll : config_.rollouts)
            if (roll.service == service.name && commit == roll.to &&
                Listed(roll.endpoints, ep.name))
              cpu_ms *= roll.cost_factor;

          const uint64_t cpu_ns = static_cast<uint64_t>(cpu_ms * 1e6);
          const uint32_t db_calls = std::poisson_distribution<uint32_t>(ep.db_calls_mean)(rng_);
          const uint32_t cache_calls =
              std::poisson_distribution<uint32_t>(ep.cache_calls_mean)(rng_);
          const uint64_t db_us =
              static_cast<uint64_t>(db_calls * 700.0 * std::exp(0.5 * normal(rng_)));
          const uint64_t cache_us =
              static_cast<uint64_t>(cache_calls * 120.0 * std::exp(0.3 * normal(rng_)));
          r->set_start_time_unix_us(t0 * 1'000'000 + static_cast<int64_t>(unit(rng_) * 59'999'999));
          r->set_wall_us(cpu_ns / 1000 + db_us + cache_us +
                         static_cast<uint64_t>(200 * unit(rng_)));
          record::CpuBill* bill = r->mutable_cpu();
          bill->set_cpu_ns(cpu_ns);
          if (config_.with_pmu) {
            bill->set_instructions(
                static_cast<uint64_t>(cpu_ns * 2.4 * std::exp(0.05 * normal(rng_))));
            bill->set_cycles(static_cast<uint64_t>(cpu_ns * 3.0));
            bill->set_counter_source("hardware");
            bill->set_kernel_included(true);
          } else {
            bill->set_counter_source("task_clock");
          }
          r->mutable_db()->set_name("db");
          r->mutable_db()->set_calls(db_calls);
          r->mutable_db()->set_wall_us(db_us);
          r->mutable_cache()->set_name("cache");
          r->mutable_cache()->set_calls(cache_calls);
          r->mutable_cache()->set_wall_us(cache_us);
          r->set_service(service.name);
          r->set_endpoint(ep.name);
          r->set_method(ep.name.find("checkout") != std::string::npos ? "POST" : "GET");
          const double status_roll = unit(rng_);
          r->set_status(status_roll < 0.01 ? 404 : status_roll < 0.012 ? 500 : 200);
          r->set_host(host_name);
          r->set_cluster(cluster);
          r->set_region(region);
          r->set_commit(commit);
          r->set_user(user);
          r->set_sample_rate(config_.sample_rate);
        }
        requests_ += n;
        sampled_ += sampled_here;
        if (n > 0) {
          record::EndpointCount* count = tally->add_endpoints();
          count->set_endpoint(ep.name);
          count->set_requests(n);
          count->set_sampled(sampled_here);
        }
      }
      tally->set_active_users_hll(users.registers());
      tally->set_hll_precision(users.precision());
    }
  }
  return batch;
}

}  // namespace cpuledger::sim
