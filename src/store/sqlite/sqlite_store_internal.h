// src/store/sqlite/sqlite_store_internal.h — what the files of SqliteStore
// share; included by them only. SqliteStore is one class, its member
// functions defined by job:
//   sqlite_store.cc      open and close: the writer's statements, the state
//                        loaded from the file (series, open buckets)
//   sqlite_writer.cc     AppendBatches() and its phases
//   sqlite_reads.cc      Query(), Efficiency(), Deploys(), Stats(), SealPoints()
//   sqlite_profiles.cc   the function store: profile deltas, checkpoints,
//                        FunctionTree(), Functions()
//   sqlite_retention.cc  ApplyRetention() and its phases
//   detection_store.cc   the detectors' side (detection.h)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "store/sqlite/db.h"
#include "store/sqlite/rollup.h"
#include "store/sqlite/sqlite_store.h"

namespace cpuledger::store::sqlite {

inline constexpr int64_t kUs = 1'000'000;

inline size_t TierIndex(Tier t) { return static_cast<size_t>(t); }

// WriterStatements — prepared on the writer connection by Init().
struct SqliteStore::WriterStatements {
  Stmt insert_series;
  Stmt insert_chunk;
  std::array<Stmt, kNumTiers> tier_insert, tier_merge, tier_exists;
  Stmt applied_exists, applied_insert, applied_prune;
  Stmt tally_endpoint, tally_get, tally_insert, tally_update;
  Stmt deploy_upsert;
  Stmt path_cost_upsert, moment_upsert, profile_requests_upsert, delta_insert;
  Stmt function_code_upsert;
  Stmt meta_set;
};

}  // namespace cpuledger::store::sqlite
