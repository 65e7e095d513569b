#include "record/hll.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace cpuledger::record {
namespace {

// Ertl, "New cardinality estimation algorithms for HyperLogLog sketches"
// (2017), section 4: the improved raw estimator. It is unbiased over the
// whole range without the empirical bias tables of HLL++.
double Sigma(double x) {
  if (x == 1.0) return std::numeric_limits<double>::infinity();
  double y = 1.0, z = x;
  for (;;) {
    x *= x;
    const double before = z;
    z += x * y;
    y += y;
    if (z == before) return z;
  }
}

double Tau(double x) {
  if (x == 0.0 || x == 1.0) return 0.0;
  double y = 1.0, z = 1.0 - x;
  for (;;) {
    x = std::sqrt(x);
    const double before = z;
    y *= 0.5;
    z -= (1.0 - x) * (1.0 - x) * y;
    if (z == before) return z / 3.0;
  }
}

}  // namespace

HyperLogLog::HyperLogLog(int precision)
    : precision_(std::clamp(precision, kMinPrecision, kMaxPrecision)),
      registers_(size_t{1} << precision_, '\0') {}

void HyperLogLog::Add(std::string_view key) { AddHash(XXH3_64bits(key.data(), key.size())); }

void HyperLogLog::AddHash(uint64_t hash) {
  const uint64_t index = hash >> (64 - precision_);
  const uint64_t rest = hash << precision_;
  const int q = 64 - precision_;
  // rank = position of the first 1 bit in the remaining q bits, q + 1 if none.
  const int rank = rest == 0 ? q + 1 : std::min(__builtin_clzll(rest) + 1, q + 1);
  char& reg = registers_[index];
  if (rank > static_cast<unsigned char>(reg)) reg = static_cast<char>(rank);
}

Status HyperLogLog::Merge(const HyperLogLog& other) {
  if (other.precision_ != precision_)
    return InvalidArgument("HyperLogLog precision mismatch: " + std::to_string(precision_) +
                           " vs " + std::to_string(other.precision_));
  for (size_t i = 0; i < registers_.size(); ++i)
    registers_[i] = std::max(static_cast<unsigned char>(registers_[i]),
                             static_cast<unsigned char>(other.registers_[i]));
  return OkStatus();
}

double HyperLogLog::Estimate() const {
  const int q = 64 - precision_;
  const double m = static_cast<double>(registers_.size());
  std::vector<double> counts(q + 2, 0.0);
  for (char r : registers_) counts[static_cast<unsigned char>(r)] += 1;
  double z = m * Tau(1.0 - counts[q + 1] / m);
  for (int k = q; k >= 1; --k) z = 0.5 * (z + counts[k]);
  z += m * Sigma(counts[0] / m);
  const double alpha_inf = 1.0 / (2.0 * std::log(2.0));
  return alpha_inf * m * m / z;
}

Result<HyperLogLog> HyperLogLog::FromRegisters(std::string_view registers, int precision) {
  if (precision < kMinPrecision || precision > kMaxPrecision)
    return InvalidArgument("hll_precision " + std::to_string(precision) + " outside [" +
                           std::to_string(kMinPrecision) + ", " + std::to_string(kMaxPrecision) +
                           "]");
  if (registers.size() != (size_t{1} << precision))
    return InvalidArgument("active_users_hll has " + std::to_string(registers.size()) +
                           " registers; precision " + std::to_string(precision) + " needs " +
                           std::to_string(size_t{1} << precision));
  const int max_rank = 64 - precision + 1;
  for (char r : registers)
    if (static_cast<unsigned char>(r) > max_rank)
      return InvalidArgument("active_users_hll register out of range");
  HyperLogLog h(precision);
  h.registers_.assign(registers.data(), registers.size());
  return h;
}

}  // namespace cpuledger::record
