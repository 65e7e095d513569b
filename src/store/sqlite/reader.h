// src/store/sqlite/reader.h — the read side of the SQLite store: pooled read
// connections and the aggregation engine behind Query() and Efficiency().
//
// One read runs in one transaction on one pooled connection:
//   ReadSession session(pool, catalog);
//   if (Status s = session.Begin(); !s.ok()) ...   // snapshot, seal points, series
//   Result<Aggregation> agg = session.Aggregate(spec);
// Aggregate() plans the time range into rollup ranges and raw ranges (see
// sqlite_store.h, "Query semantics") and folds every row and sample into one
// RollupAcc per (group, bucket).
//
// Thread-safety: a ReaderPool is thread-safe; a ReadSession belongs to one thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "store/efficiency.h"    // FoldHllRegisters()
#include "store/profile_sums.h"  // HourBuckets()
#include "store/query.h"
#include "store/sqlite/db.h"
#include "store/sqlite/rollup.h"
#include "store/sqlite/series.h"

namespace cpuledger::store::sqlite {

// TierSealPoints — the seal points per Tier, unix seconds (sqlite_store.h).
using TierSealPoints = std::array<int64_t, 3>;

// ReadConn — one read connection and its prepared statements.
struct ReadConn {
  Db db;
  Stmt meta;                              // key, value
  Stmt series_since;                      // series with id >= ?1
  std::array<Stmt, kNumTiers> tier_rows;  // SelectSql(tier, true)
  std::array<Stmt, kNumTiers> tier_sums;  // SelectSql(tier, false)
  Stmt chunks;                            // minute, data for ?1 <= minute < ?2
  Stmt tally_requests;                    // service, minute, endpoint, requests in a window
  Stmt tally_hll;                         // hll, hll_precision of (service, minute)
  Stmt deploys_all;
  Stmt deploys_service;

  static Result<std::unique_ptr<ReadConn>> Open(const std::string& path);
};

// ReaderPool — idle read connections, opened on demand.
class ReaderPool {
 public:
  explicit ReaderPool(std::string path) : path_(std::move(path)) {}

  // ReaderPool::Lease — a connection, returned to the pool on destruction.
  class Lease {
   public:
    Lease(ReaderPool* pool, std::unique_ptr<ReadConn> conn) : pool_(pool), conn_(std::move(conn)) {}
    ~Lease() {
      if (conn_) pool_->Release(std::move(conn_));
    }
    Lease(Lease&&) = default;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ReadConn& operator*() const { return *conn_; }
    ReadConn* operator->() const { return conn_.get(); }

   private:
    ReaderPool* pool_;
    std::unique_ptr<ReadConn> conn_;
  };

  // ReaderPool::Acquire() — an idle connection, or a new one (~0.2 ms).
  Result<Lease> Acquire();

 private:
  static constexpr size_t kMaxIdle = 8;
  void Release(std::unique_ptr<ReadConn> conn);

  const std::string path_;
  std::mutex mu_;
  std::vector<std::unique_ptr<ReadConn>> idle_;  // guarded by mu_
};

// AggSpec — one aggregation: QuerySpec's selection plus how to compute it.
struct AggSpec {
  std::vector<DimensionRef> group_by;
  std::vector<Filter> filters;
  int64_t from_us = 0;
  int64_t to_us = 0;
  int64_t bucket_s = 0;    // 0: no time buckets
  bool histograms = true;  // false: sums only (cheaper)
};

// AggGroup — one (group, bucket) and the aggregate of its samples.
struct AggGroup {
  std::vector<std::string> keys;  // one per group_by
  int64_t bucket_start_us = 0;
  RollupAcc acc;
};

struct Aggregation {
  std::vector<AggGroup> groups;  // in order of first appearance
  bool used_rollups = false;
};

// ValidateDimensions() — RETURNS: InvalidArgument for a flag dimension
// without a name.
Status ValidateDimensions(const std::vector<DimensionRef>& group_by,
                          const std::vector<Filter>& filters);

// ReadSession — one snapshot; the destructor ends the read transaction and
// returns the connection to the pool.
class ReadSession {
 public:
  ReadSession(ReaderPool& pool, SeriesCatalog& catalog) : pool_(pool), catalog_(catalog) {}

  // ReadSession::Begin() — leases a connection, starts the read transaction,
  // reads the seal points and brings the series catalog up to the snapshot.
  Status Begin();

  const TierSealPoints& sealed() const { return sealed_; }
  ReadConn& conn() { return **lease_; }
  // ReadSession::meta() — a meta counter as of the snapshot (0 if absent).
  int64_t meta(std::string_view key) const;

  // ReadSession::Aggregate() — see the file comment. REQUIRES: Begin() succeeded.
  // COST: ~0.3-0.5 us a rollup row, ~0.15 us a raw sample (with histograms).
  Result<Aggregation> Aggregate(const AggSpec& spec);

 private:
  ReaderPool& pool_;
  SeriesCatalog& catalog_;
  std::unique_ptr<ReaderPool::Lease> lease_;
  std::unique_ptr<Txn> txn_;
  TierSealPoints sealed_{};
  std::vector<std::pair<std::string, int64_t>> meta_;
};

// ToQueryResult() — rows from an aggregation, ordered and limited as
// sqlite_store.h describes.
QueryResult ToQueryResult(Aggregation agg, const QuerySpec& spec);

// ComputeEfficiency() — the metric of ServiceEfficiency (query.h, sqlite_store.h).
Result<std::vector<ServiceEfficiency>> ComputeEfficiency(ReadSession& session,
                                                         const EfficiencySpec& spec);

using store::FoldHllRegisters;  // efficiency.h

// FloorTo() / CeilTo() — to a multiple of `step` (> 0), correct for negatives.
inline int64_t FloorTo(int64_t v, int64_t step) {
  int64_t q = v / step;
  if (v % step != 0 && v < 0) --q;
  return q * step;
}
inline int64_t CeilTo(int64_t v, int64_t step) { return -FloorTo(-v, step); }

}  // namespace cpuledger::store::sqlite
