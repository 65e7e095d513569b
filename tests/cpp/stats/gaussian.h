// tests/cpp/stats/gaussian.h — seeded standard normal draws for the stats
// tests. Box–Muller over mt19937_64's raw bits, so a seed gives the same
// numbers with every standard library (std::normal_distribution does not).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <vector>

namespace cpuledger::stats::test_util {

class Gaussian {
 public:
  explicit Gaussian(uint64_t seed) : rng_(seed) {}

  // operator() — one N(0, 1) draw.
  double operator()() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double radius = std::sqrt(-2 * std::log(Uniform()));
    const double angle = 2 * std::numbers::pi * Uniform();
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

  // Uniform() — in (0, 1), never 0 or 1.
  double Uniform() { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53; }

  // Series() — n draws of mean + sd * N(0, 1).
  std::vector<double> Series(size_t n, double mean = 0, double sd = 1) {
    std::vector<double> v(n);
    for (double& x : v) x = mean + sd * (*this)();
    return v;
  }

 private:
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace cpuledger::stats::test_util
