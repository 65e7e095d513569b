#include "store/sqlite/raw_chunk.h"

#include <bit>

namespace cpuledger::store::sqlite {

static_assert(std::endian::native == std::endian::little,
              "raw chunks store sample_rate as a little-endian double");

namespace chunk_internal {
Status Corrupt(int64_t minute) {
  return IoError("corrupt raw sample chunk for minute " + std::to_string(minute));
}
}  // namespace chunk_internal

void ChunkWriter::Add(const StoredRecord& s) {
  ++count_;
  AppendVarint(&body_, static_cast<uint64_t>(s.series));
  AppendVarint(&body_, static_cast<uint64_t>(s.start_us - minute_ * 1'000'000));
  body_.push_back(static_cast<char>((s.has_instructions ? 1 : 0) | (s.has_cycles ? 2 : 0) |
                                    ((s.counter_source & 3) << 2)));
  AppendVarint(&body_, s.wall_us);
  if (s.has_instructions) AppendVarint(&body_, s.instructions);
  if (s.has_cycles) AppendVarint(&body_, s.cycles);
  AppendVarint(&body_, s.cpu_ns);
  AppendVarint(&body_, s.db_us);
  AppendVarint(&body_, s.db_calls);
  AppendVarint(&body_, s.cache_us);
  AppendVarint(&body_, s.cache_calls);
  char rate[8];
  std::memcpy(rate, &s.sample_rate, 8);
  body_.append(rate, 8);
  AppendVarint(&body_, s.user.size());
  body_.append(s.user);
  AppendVarint(&body_, s.request_id.size());
  body_.append(s.request_id);
}

ChunkWriter::ChunkWriter(int64_t minute) : minute_(minute) {
  // Version byte, then the count as a 5-byte varint patched in by Finish():
  // the chunk is built in place, never copied.
  body_.push_back(static_cast<char>(chunk_internal::kVersion));
  body_.append(kCountBytes, '\0');
}

std::string_view ChunkWriter::Finish() {
  uint64_t v = count_;
  for (size_t i = 0; i < kCountBytes; ++i) {
    const bool more = i + 1 < kCountBytes;
    body_[1 + i] = static_cast<char>((v & 0x7f) | (more ? 0x80 : 0));
    v >>= 7;
  }
  return body_;
}

}  // namespace cpuledger::store::sqlite
