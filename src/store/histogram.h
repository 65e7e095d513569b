// src/store/histogram.h — a log-bucketed histogram for quantiles of CPU bills
// and latencies: relative error under 1%, merge by addition, a compact blob.
//
//   LogHistogram h;
//   for (uint64_t instructions : bills) h.Add(instructions);
//   std::string blob = h.Encode();              // into a rollup row
//   LogHistogram total;
//   Status s = total.MergeEncoded(blob);        // merging = adding counts
//   double p99 = total.Quantile(0.99);          // within 1% of the true p99
//
// Buckets: value 0 has its own bucket; a value v >= 1 falls in bucket i, the
// smallest i >= 0 with v <= 1.02^i, so bucket i covers (1.02^(i-1), 1.02^i]
// (1.02^i as std::pow computes it; found by a table lookup and one
// comparison, not a logarithm). A bucket is reported as 2 * 1.02^i / 2.02,
// the point whose relative distance to both edges is equal, so every
// reported value is within (1.02 - 1) / (1.02 + 1)
// = 0.990% of every value in its bucket (the DDSketch construction, Masson et
// al. 2019). The whole uint64 range needs 2,242 buckets besides the zero
// bucket; a measure spread over three decades of values fills at most 350.
//
// Quantiles are nearest-rank: Quantile(q) reports the bucket holding the
// ceil(q * count)-th smallest value (the smallest for q = 0). So the raw-sample
// path and the rollup path of the store, which both build these histograms
// from the same values, give identical quantiles.
//
// Blob format (the rollup rows keep it; version 1, little-endian varints):
//   varint zero_count, then for each non-empty bucket in ascending order
//   varint (index - previous index, the first relative to -1), varint count.
//   An empty histogram is the empty blob. NOTE: the format is part of the
//   SQLite file format; change it only with a schema migration.
//
// Thread-safety: a value type; const methods may be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace cpuledger::store {

class LogHistogram {
 public:
  static constexpr double kGamma = 1.02;
  // kRelativeError — the bound on |reported - true| / true for any quantile.
  static constexpr double kRelativeError = (kGamma - 1) / (kGamma + 1);
  // kMaxIndex — the bucket of UINT64_MAX.
  static constexpr int kMaxIndex = 2241;

  // LogHistogram::Add() — counts `value` `count` times.
  // COST: two table lookups; allocates only when the window outgrows 4 buckets.
  void Add(uint64_t value, uint64_t count = 1);
  // LogHistogram::Merge() — adds every count of `other`.
  void Merge(const LogHistogram& other);
  // LogHistogram::MergeEncoded() — adds the counts of a blob from Encode().
  // RETURNS: InvalidArgument for a malformed blob (nothing merged then).
  Status MergeEncoded(std::string_view blob);

  // LogHistogram::count() — how many values were added.
  uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }

  // LogHistogram::Quantile() — nearest-rank quantile, q in [0, 1] (clamped).
  // RETURNS: NaN when empty.
  double Quantile(double q) const;

  // LogHistogram::Encode() — the blob described above. AppendEncoded() appends it.
  std::string Encode() const;
  void AppendEncoded(std::string* out) const;
  // LogHistogram::Decode() — RETURNS: InvalidArgument for a malformed blob.
  static Result<LogHistogram> Decode(std::string_view blob);

  // LogHistogram::BucketOf() — -1 for 0, else the bucket index i (0 .. kMaxIndex).
  static int BucketOf(uint64_t value);
  // LogHistogram::ValueOf() — the value reported for bucket i (0 for -1).
  static double ValueOf(int bucket);

  bool operator==(const LogHistogram& other) const;

  LogHistogram() = default;
  ~LogHistogram();
  LogHistogram(const LogHistogram& other);
  LogHistogram(LogHistogram&& other) noexcept;
  LogHistogram& operator=(const LogHistogram& other);
  LogHistogram& operator=(LogHistogram&& other) noexcept;

 private:
  // StealFrom() — take other's buckets (its heap block, or a copy of its
  // inline ones) and leave it empty. REQUIRES: this holds no heap block.
  void StealFrom(LogHistogram& other) noexcept;
  // Up to kInline buckets live inside the object: most rollup rows of a
  // minute hold one or two samples, and a heap block each would dominate.
  static constexpr uint32_t kInline = 4;

  // Makes the window cover buckets [lo, hi].
  void Cover(int lo, int hi);
  bool on_heap() const { return data_ != inline_; }
  uint64_t at(int index) const;

  uint64_t count_ = 0;
  uint64_t zero_ = 0;       // values equal to 0
  int32_t lo_ = 0;          // bucket index of data_[0]
  uint32_t size_ = 0;       // buckets in the window lo_ .. lo_ + size_ - 1
  uint32_t cap_ = kInline;  // capacity of data_
  uint64_t* data_ = inline_;
  uint64_t inline_[kInline] = {};
};

// Varints (LEB128, 7 bits a byte, low groups first) — shared by the
// histogram blob and the store's raw-sample chunks.
inline void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// ReadVarint() — reads one varint at `*p` (before `end`) and advances `*p`.
// RETURNS: false on a truncated or over-long varint.
inline bool ReadVarint(const char** p, const char* end, uint64_t* v) {
  if (*p < end && (static_cast<uint8_t>(**p) & 0x80) == 0) {  // the common one-byte case
    *v = static_cast<uint8_t>(*(*p)++);
    return true;
  }
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(*(*p)++);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

}  // namespace cpuledger::store
