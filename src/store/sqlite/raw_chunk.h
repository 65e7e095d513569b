// src/store/sqlite/raw_chunk.h — raw samples packed into chunks.
//
// The raw samples of one append that started in the same minute are one row
// of `raw_chunks` (minute, samples, data). One B-tree insert per ~thousand
// samples instead of one per sample is what lets AppendBatches() take
// millions of records a second (a row per sample costs ~1.5 us in SQLite);
// the price is that raw samples are read a chunk at a time, which is how the
// query paths read them anyway (a minute's worth, in C++).
//
// Chunk format (version 1): byte 1, varint count (5 bytes as written), then
// per sample:
//   varint series, varint (start_us - minute * 1e6), byte bits
//   (bit 0: has instructions, bit 1: has cycles, bits 2-3: counter source
//   code), varint wall_us, [varint instructions], [varint cycles], varint
//   cpu_ns, varint db_us, db_calls, cache_us, cache_calls, 8 bytes
//   sample_rate (IEEE double, little-endian), varint length + user bytes,
//   varint length + request_id bytes.
// Not kept: custom spans, the kernel/user split, the span CPU bills and
// multiplex scale (no query reads them yet; a new chunk version may add them).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "base/status.h"
#include "store/histogram.h"
#include "store/sqlite/rollup.h"

namespace cpuledger::store::sqlite {

// ChunkWriter — builds one chunk for one minute.
class ChunkWriter {
 public:
  explicit ChunkWriter(int64_t minute);
  // ChunkWriter::Add() — REQUIRES: s.start_us in [minute * 1e6, (minute + 60) * 1e6).
  // COST: ~100 bytes appended, no other allocation.
  void Add(const StoredRecord& s);
  // ChunkWriter::Finish() — the chunk's bytes, valid until the next Add().
  std::string_view Finish();
  int64_t minute() const { return minute_; }
  size_t samples() const { return count_; }

 private:
  static constexpr size_t kCountBytes = 5;  // up to 2^35 samples
  int64_t minute_;
  size_t count_ = 0;
  std::string body_;
};

// ForEachSample() — calls fn(const StoredRecord&) for every sample of a chunk, in
// the order added. The sample's strings view into `data`.
// RETURNS: Io for a malformed chunk (fn may have seen a prefix of it).
template <typename Fn>
Status ForEachSample(std::string_view data, int64_t minute, Fn&& fn);

// ---- implementation ----

namespace chunk_internal {
inline constexpr uint8_t kVersion = 1;
Status Corrupt(int64_t minute);
}  // namespace chunk_internal

template <typename Fn>
Status ForEachSample(std::string_view data, int64_t minute, Fn&& fn) {
  const char* p = data.data();
  const char* end = p + data.size();
  if (p == end || static_cast<uint8_t>(*p) != chunk_internal::kVersion)
    return chunk_internal::Corrupt(minute);
  ++p;
  uint64_t count = 0;
  if (!ReadVarint(&p, end, &count)) return chunk_internal::Corrupt(minute);
  const int64_t base_us = minute * 1'000'000;
  StoredRecord s;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t series = 0, offset = 0, len = 0;
    if (!ReadVarint(&p, end, &series) || !ReadVarint(&p, end, &offset) || p >= end)
      return chunk_internal::Corrupt(minute);
    const uint8_t bits = static_cast<uint8_t>(*p++);
    s.series = static_cast<int64_t>(series);
    s.start_us = base_us + static_cast<int64_t>(offset);
    s.has_instructions = (bits & 1) != 0;
    s.has_cycles = (bits & 2) != 0;
    s.counter_source = static_cast<uint8_t>((bits >> 2) & 3);
    s.instructions = s.cycles = 0;
    bool ok = ReadVarint(&p, end, &s.wall_us);
    if (s.has_instructions) ok = ok && ReadVarint(&p, end, &s.instructions);
    if (s.has_cycles) ok = ok && ReadVarint(&p, end, &s.cycles);
    ok = ok && ReadVarint(&p, end, &s.cpu_ns) && ReadVarint(&p, end, &s.db_us) &&
         ReadVarint(&p, end, &s.db_calls) && ReadVarint(&p, end, &s.cache_us) &&
         ReadVarint(&p, end, &s.cache_calls);
    if (!ok || end - p < 8) return chunk_internal::Corrupt(minute);
    std::memcpy(&s.sample_rate, p, 8);
    p += 8;
    if (!ReadVarint(&p, end, &len) || static_cast<uint64_t>(end - p) < len)
      return chunk_internal::Corrupt(minute);
    s.user = std::string_view(p, len);
    p += len;
    if (!ReadVarint(&p, end, &len) || static_cast<uint64_t>(end - p) < len)
      return chunk_internal::Corrupt(minute);
    s.request_id = std::string_view(p, len);
    p += len;
    fn(static_cast<const StoredRecord&>(s));
  }
  if (p != end) return chunk_internal::Corrupt(minute);
  return OkStatus();
}

}  // namespace cpuledger::store::sqlite
