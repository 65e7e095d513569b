// src/store/sqlite/cardinality.h — a cap on the distinct values of each
// dimension per service, so that one careless sender (a request id in the
// endpoint, a host name per container) cannot turn the store into millions
// of series.
//
// Guarded, per service: endpoint, method, host, cluster, region, the flag
// names, and each flag's values. A value already stored always passes; a new
// one passes while its dimension has fewer than `max_values`; beyond that it
// is stored as kOther ("<other>"; a flag name beyond its cap becomes the flag
// "<other>" = "<other>"), counted per dimension, and reported once per
// (service, dimension) through `on_full`. Commits are not guarded: a service
// makes a new one every deploy, and the deploy log needs each exactly.
//
//   CardinalityGuard guard(2000, log);
//   guard.Load(info);                        // every stored series, at open
//   const RequestRecord& r = guard.Guard(rec, &scratch);  // r is rec or scratch
//
// A value admitted in a transaction that rolls back stays counted: the cap
// is then reached a little early, never exceeded.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "record/record.pb.h"
#include "store/sqlite/series.h"

namespace cpuledger::store::sqlite {

class CardinalityGuard {
 public:
  static constexpr std::string_view kOther = "<other>";
  // on_full(service, dimension): a dimension of a service reached the cap.
  using OnFull = std::function<void(std::string_view service, std::string_view dimension)>;

  // `max_values` 0: no cap (Guard() returns its record untouched).
  CardinalityGuard(size_t max_values, OnFull on_full);

  void Reset();
  // CardinalityGuard::Load() — a stored series: its values count and pass.
  void Load(const SeriesInfo& info);
  // CardinalityGuard::Guard() — `r`, or a copy in *scratch with the values
  // beyond the cap replaced by kOther. COST: a hash lookup per dimension;
  // call it for records of series not seen before only.
  const record::RequestRecord& Guard(const record::RequestRecord& r,
                                     record::RequestRecord* scratch);
  // CardinalityGuard::Folded() — values replaced so far, by dimension name
  // ("endpoint", "method", "host", "cluster", "region", "flag_name",
  // "flag_value"). Thread-safe (relaxed counters).
  std::map<std::string, uint64_t> Folded() const;

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using Set = std::unordered_set<std::string, StringHash, std::equal_to<>>;
  struct Values {
    Set seen;
    bool reported = false;  // on_full called
  };
  struct Service {
    std::unordered_map<std::string, Values, StringHash, std::equal_to<>> by_dimension;
  };

  // Admit() — whether `value` may be stored as itself, recording it if new.
  bool Admit(std::string_view service, std::string_view dimension, std::string_view value);

  const size_t max_values_;
  OnFull on_full_;
  std::unordered_map<std::string, Service, StringHash, std::equal_to<>> services_;
  static constexpr const char* kDimensions[] = {"endpoint", "method",    "host",      "cluster",
                                                "region",   "flag_name", "flag_value"};
  std::array<std::atomic<uint64_t>, std::size(kDimensions)> folded_{};
};

}  // namespace cpuledger::store::sqlite
