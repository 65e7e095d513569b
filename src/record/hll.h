// src/record/hll.h — HyperLogLog: how many distinct active users in a minute,
// in a few KiB per worker, mergeable across workers and minutes.
//
//   HyperLogLog users(12);            // 4096 registers, ~1.6% standard error
//   users.Add("user-key-hash");
//   other.Merge(users);               // same precision required
//   double n = users.Estimate();
//
// Hashing: XXH3-64 of the key (libxxhash). Estimation: Ertl's improved raw
// estimator ("New cardinality estimation algorithms for HyperLogLog
// sketches", 2017), unbiased from tiny to huge cardinalities without the
// empirical bias tables of HLL++; relative error ~1.04/sqrt(2^precision).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace cpuledger::record {

class HyperLogLog {
 public:
  static constexpr int kMinPrecision = 4;
  static constexpr int kMaxPrecision = 16;
  static constexpr int kDefaultPrecision = 12;

  // REQUIRES: kMinPrecision <= precision <= kMaxPrecision (clamped otherwise).
  explicit HyperLogLog(int precision = kDefaultPrecision);

  // HyperLogLog::Add() — counts `key` once however often it is added. COST: one hash.
  void Add(std::string_view key);
  void AddHash(uint64_t hash);
  // HyperLogLog::Merge() — union. RETURNS: InvalidArgument on a precision mismatch.
  Status Merge(const HyperLogLog& other);
  // HyperLogLog::Estimate() — the estimated number of distinct keys.
  double Estimate() const;

  int precision() const { return precision_; }
  // HyperLogLog::registers() — one byte per register, the wire form (WorkerTally).
  const std::string& registers() const { return registers_; }
  // HyperLogLog::FromRegisters() — RETURNS: InvalidArgument when the size
  // is not 2^precision or a register is out of range.
  static Result<HyperLogLog> FromRegisters(std::string_view registers, int precision);

 private:
  int precision_;
  std::string registers_;
};

}  // namespace cpuledger::record
