// src/store/sqlite/series.h — series: the distinct dimension tuples
// (service, endpoint, method, status, host, cluster, region, commit, flags).
//
// Every raw sample and rollup row names its tuple by a small integer id
// instead of nine strings: rows stay small, rollup keys are two integers, and
// dimension filters are evaluated once per series in C++, never as user text
// in SQL. The `series` table maps ids to tuples; ids are dense from 1 and a
// tuple never changes its id.
//
//   SeriesInterner (writer thread only): record -> id, new ids pending until
//     the transaction that inserted them commits.
//   SeriesCatalog (shared): id -> SeriesInfo, append-only; readers extend it
//     from the `series` rows their snapshot sees, the writer after a commit.
#pragma once

#include <cstdint>
#include <deque>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "record/record.pb.h"
#include "store/query.h"
#include "store/sqlite/db.h"

namespace cpuledger::store::sqlite {

using Flags = std::vector<std::pair<std::string, std::string>>;  // sorted by name

// SeriesInfo — one tuple.
struct SeriesInfo {
  int64_t id = 0;
  std::string service, endpoint, method;
  uint32_t status = 0;
  std::string status_text;  // status as decimal text, the query key
  std::string host, cluster, region, commit;
  Flags flags;
  std::string flags_json;  // canonical (CanonicalFlagsJson)

  // SeriesInfo::Value() — this tuple's value of `d` ("" for a flag it lacks).
  // REQUIRES: d.dim != kUser (users are per sample, not per series).
  std::string_view Value(const DimensionRef& d) const;
};

// CanonicalFlagsJson() — {"name":"value",...} with names sorted bytewise,
// JSON string escaping, no spaces; "{}" for no flags. Two equal flag maps give
// byte-equal text, so the text can be part of a UNIQUE key.
std::string CanonicalFlagsJson(const Flags& flags);
// ParseFlagsJson() — the inverse, sorted. RETURNS: InvalidArgument when not
// an object of strings.
Result<Flags> ParseFlagsJson(std::string_view json);
// SortedFlags() — a record's flags as a sorted vector.
Flags SortedFlags(const record::RequestRecord& r);

// kSeriesColumns — the columns SeriesFromRow() reads, in its order; every
// SELECT of series rows starts with them.
inline constexpr const char* kSeriesColumns =
    "id, service, endpoint, method, status, host, cluster, region, commit_id, flags_json";
// SeriesFromRow() — the SeriesInfo of a row that selected kSeriesColumns.
// RETURNS: Io when its flags_json is corrupt.
Result<SeriesInfo> SeriesFromRow(StmtUse& row);

// SeriesCatalog — id -> SeriesInfo. Thread-safe.
class SeriesCatalog {
 public:
  // SeriesCatalog::next_id() — one past the highest id known.
  int64_t next_id() const;
  // SeriesCatalog::Get() — RETURNS: nullptr for an id not (yet) known. The
  // pointer stays valid for the catalog's lifetime. COST: a shared lock.
  const SeriesInfo* Get(int64_t id) const;
  // SeriesCatalog::Extend() — appends the tuples in `infos` whose ids are
  // exactly the next ones; ids already known are skipped (readers and the
  // writer may both offer the same ids). REQUIRES: `infos` ascending by id.
  void Extend(std::vector<SeriesInfo> infos);

 private:
  mutable std::shared_mutex mu_;
  std::deque<SeriesInfo> infos_;  // infos_[i].id == i + 1; deque: stable addresses
};

// SeriesInterner — the writer's map from tuple to id. Not thread-safe: the
// writer thread only.
//
// A record is looked up by a 64-bit hash of its dimensions (flags hashed
// order-independently, so they need no sorting) and then compared field by
// field with the tuple found: no key is built per record. Tuples whose hash
// collides with another's are kept in a second map keyed by their full text.
class SeriesInterner {
 public:
  // SeriesInterner::Reset() — forget everything; ids restart at 1.
  void Reset();
  // SeriesInterner::Load() — a committed tuple (from the `series` table).
  // REQUIRES: loaded in id order, ids 1, 2, 3, ...
  void Load(SeriesInfo info);

  // SeriesInterner::Intern() — the id of r's tuple. A tuple never seen gets
  // the next id and stays pending until Commit() or Abort().
  // COST: one pass over the dimensions (~50 ns); allocates for a new tuple only.
  int64_t Intern(const record::RequestRecord& r);
  // SeriesInterner::Find() — the id r's tuple has already, or 0 (also for a
  // tuple whose hash collided: Intern() then takes its exact path).
  // COST: as Intern() for a known tuple; never allocates.
  int64_t Find(const record::RequestRecord& r) const;
  // SeriesInterner::CoarseOf() — the id of the tuple `id` has without host,
  // cluster and region (the coarse tiers' key); interned like Intern().
  // REQUIRES: `id` is known. COST: a vector lookup once known.
  int64_t CoarseOf(int64_t id);
  // SeriesInterner::Get() — a committed or pending tuple; nullptr if unknown.
  const SeriesInfo* Get(int64_t id) const;

  // SeriesInterner::pending() — tuples created since the last Commit()/Abort(), by id.
  std::vector<const SeriesInfo*> pending() const;
  // SeriesInterner::Commit() — the pending tuples were stored: keep them,
  // and RETURNS copies of them (for the catalog).
  std::vector<SeriesInfo> Commit();
  // SeriesInterner::Abort() — the transaction rolled back: forget the pending
  // tuples and reuse their ids.
  void Abort();

 private:
  static uint64_t Hash(const record::RequestRecord& r);
  static uint64_t Hash(const SeriesInfo& info);
  static bool Same(const record::RequestRecord& r, const SeriesInfo& info);
  static bool Same(const SeriesInfo& a, const SeriesInfo& b);
  static std::string FullKey(const SeriesInfo& info);
  void Index(const SeriesInfo& info, uint64_t hash);

  std::deque<SeriesInfo> infos_;  // infos_[i].id == i + 1; the first committed_ are stored
  size_t committed_ = 0;
  std::unordered_map<uint64_t, int64_t> by_hash_;      // hash -> id
  std::unordered_map<std::string, int64_t> collided_;  // FullKey -> id, on hash collisions
  std::vector<int64_t> coarse_of_;                     // id -> CoarseOf(id); 0 unknown
};

}  // namespace cpuledger::store::sqlite
