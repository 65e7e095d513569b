// src/store/clickhouse/row_binary.h — rows in ClickHouse's RowBinary format,
// the insert format of the ClickHouse store: no escaping, no parsing of
// numbers as text on the server, ~1 byte of framing a string.
//
//   RowBinary out;
//   out.Date(DayOf(start_us)).Int64(start_us).String(service);   // one row, column by column
//   http.Insert("INSERT INTO db.records_local FORMAT RowBinary", out.data());
//
// Each call appends one value in the column's encoding: integers and floats
// little-endian at their width, String as a LEB128 length and its bytes,
// Nullable(T) as a 0/1 null byte then T (nothing after 1), Array(T) as a
// LEB128 count then the elements. Date is days and DateTime seconds since
// the unix epoch (UTC). The column order is the INSERT's (sql.h).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace cpuledger::store::clickhouse {

class RowBinary {
 public:
  RowBinary& UInt8(uint8_t v) { return Fixed(v); }
  RowBinary& UInt16(uint16_t v) { return Fixed(v); }
  RowBinary& UInt32(uint32_t v) { return Fixed(v); }
  RowBinary& UInt64(uint64_t v) { return Fixed(v); }
  RowBinary& Int64(int64_t v) { return Fixed(v); }
  RowBinary& Float64(double v) { return Fixed(v); }
  RowBinary& Date(uint16_t days) { return Fixed(days); }
  RowBinary& DateTime(uint32_t seconds) { return Fixed(seconds); }
  RowBinary& String(std::string_view s) {
    Length(s.size());
    out_.append(s);
    return *this;
  }
  RowBinary& NullableUInt64(std::optional<uint64_t> v) {
    UInt8(v ? 0 : 1);
    return v ? UInt64(*v) : *this;
  }
  // RowBinary::Length() — an Array's element count (LEB128), before its elements.
  RowBinary& Length(uint64_t n) {
    do {
      uint8_t b = n & 0x7f;
      n >>= 7;
      out_ += static_cast<char>(n ? (b | 0x80) : b);
    } while (n);
    return *this;
  }

  const std::string& data() const { return out_; }
  bool empty() const { return out_.empty(); }

 private:
  template <typename T>
  RowBinary& Fixed(T v) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));  // x86-64 and aarch64 are little-endian
    out_.append(buf, sizeof(T));
    return *this;
  }
  std::string out_;
};

// DayOf() / SecondsOf() — Date and DateTime values of unix microseconds
// (clamped at the epoch: ClickHouse's Date has no earlier days).
inline uint16_t DayOf(int64_t us) {
  return us <= 0 ? 0 : static_cast<uint16_t>(us / (86400LL * 1'000'000));
}
inline uint32_t SecondsOf(int64_t us) {
  return us <= 0 ? 0 : static_cast<uint32_t>(us / 1'000'000);
}

}  // namespace cpuledger::store::clickhouse
