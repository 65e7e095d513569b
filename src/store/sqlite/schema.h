// src/store/sqlite/schema.h — the SQLite file format of the store: tables,
// pragmas, and migrations keyed by `PRAGMA user_version`.
//
// Tables (version 1):
//   meta(key, value)               watermarks and counters (below)
//   series(id, service, endpoint, method, status, host, cluster, region,
//          commit_id, flags_json)  one row per distinct dimension tuple;
//                                  flags_json is canonical: {"a":"x","b":"y"},
//                                  keys sorted bytewise, "{}" without flags
//   raw_chunks(id, minute, samples, data)
//                                  the raw samples: every sample that started
//                                  in `minute` and arrived in one append is
//                                  one varint-packed chunk (raw_chunk.h)
//   rollup_minute / rollup_hour / rollup_day(bucket, series, ...)
//                                  per bucket start (unix s) and series: counts,
//                                  sums, weighted sums and histogram blobs
//                                  (rollup.h); WITHOUT ROWID, key (bucket, series)
//   rollup_hour_coarse / rollup_day_coarse
//                                  the same, keyed by series without host,
//                                  cluster and region (rollup.h, Tier)
//   tallies(service, minute, host, sender, cluster, region, commit_id,
//           hll, hll_precision)    WorkerTally: active-user HyperLogLog
//   tally_endpoints(service, minute, host, sender, endpoint, requests, sampled)
//                                  WorkerTally: unsampled request counts
//   deploys(service, cluster, commit_id, first_seen_us, last_seen_us, samples)
//   applied_batches(sender, sequence, applied_us)
//                                  (sender, sequence) already stored
//   alerts(...)                    replaced by version 3
//
// Version 2 replaces the unused function_entities (store/functions.h):
//   function_entities(bucket, service, endpoint, commit_id, unit, path_hash,
//          call_path, calls, primitive_calls, self_cost, total_cost)
//                                  per hour bucket (unix s) and call path: sums
//                                  over the profiled requests; call_path is
//                                  "file:line:name" frames joined by "\n",
//                                  path_hash its 64-bit FNV-1a (the key)
//   function_requests(bucket, service, endpoint, commit_id, unit, requests)
//                                  profiled requests of the same slices
//
// Version 3 adds the detectors' tables (store/detection.h):
//   alerts(id, key, service, endpoint, kind, state, opened_us, updated_us, body)
//                                  at most one row per key in state 'open'
//   effects(at_us, service, endpoint, function, kind, cause, estimate, lo, hi, alerted)
//                                  every effect a detector measured
//   function_moments(bucket, service, endpoint, commit_id, unit, flag,
//          flag_value, function, sum, sum_sq, share_sum, share_sq)
//                                  per hour and function ("file:line:name"):
//                                  sums of its self cost per profiled request
//                                  and of its square, and of its share of the
//                                  request's profile and that share's square;
//                                  flag "" = all requests,
//                                  else one row set per value of each flag
//   function_moment_requests(bucket, ..., flag, flag_value, requests)
//                                  the profiled requests of those slices
//
// Version 4 interns the profiles (store/sqlite/profile_ids.h) and replaces
// function_entities, function_requests, function_moments and
// function_moment_requests, carrying their rows:
//   functions(id, key)             function key "file:line:name"
//   call_paths(id, parent, function)
//                                  a call path: its caller's path (0: none)
//                                  and its function; parents have lower ids
//   profile_slices(id, service, endpoint, commit_id, unit, flag, flag_value)
//                                  flag "" = all requests
//   profile_requests(bucket, slice, requests)
//                                  profiled requests per hour (unix s) and slice
//   path_costs(bucket, slice, path, calls, primitive_calls, self_cost, total_cost)
//                                  per hour and all-requests slice: sums over
//                                  its profiled requests of each call path
//   function_moments(bucket, slice, function, sum, sum_sq, share_sum, share_sq)
//                                  as version 3's, keyed by ids; flag slices too
//
// Version 5 adds:
//   profile_deltas(id, delta)      one append's profile sums (a ProfileDelta,
//                                  profile_delta.proto) not yet folded into the
//                                  three tables above; a checkpoint folds and
//                                  deletes them (sqlite_store.h)
//
// Version 7 adds the alert lifecycle (store/detection.h, AlertState):
//   alerts.reopens                 the resolved alert of the same key this one
//                                  reopens (0: none); at most one row per key
//                                  in a state other than 'resolved'
//   alert_events(alert_id, seq, at_us, state, by, note, detail)
//                                  every transition, seq 0 the opening
//
// Version 8 adds leases(name, holder, expires_us) (Store::HoldLease).
//
// Version 9 adds (Store::FunctionCodesOf):
//   function_codes(service, commit_id, function, code_hash, last_hour)
//                                  per (service, commit, function id) the
//                                  function's code hash (ProfileFunction.
//                                  code_hash, never 0 here, stored as the
//                                  int64 of the same bits) and the newest
//                                  hour (unix s) a profile carried it
//
// meta keys: sealed_minute / sealed_hour / sealed_day (unix seconds: every
// bucket that starts before it is complete in its rollup table and nothing
// at or after it is there); raw_samples, rollup_rows (all five tiers),
// tallies (counters for Stats(), kept exact by the writer).
//
// Identification: `PRAGMA application_id` is kApplicationId; a file with
// another application id, or a newer user_version, is refused.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "store/sqlite/db.h"

namespace cpuledger::store::sqlite {

// kApplicationId — "CPLG", in the SQLite header of every store file.
inline constexpr int32_t kApplicationId = 0x43504C47;
// kSchemaVersion — PRAGMA user_version after Migrate().
inline constexpr int kSchemaVersion = 9;

// kVersion3ProfileTables — the CREATE TABLE statements of version 3's
// function_entities, function_requests, function_moments and
// function_moment_requests: for tests that write a version 3 file and for the
// bench's replay of the old layout.
extern const char* const kVersion3ProfileTables;

// ConfigureConnection() — the per-connection pragmas: WAL, synchronous=NORMAL
// (store.h invariant 2), busy_timeout, cache and mmap sizes, secure_delete off
// (Debian's SQLite turns it on; zeroing freed pages only slows retention).
Status ConfigureConnection(Db& db, bool writer);

// Migrate() — creates the schema in an empty file, or upgrades an older
// one, in one transaction. RETURNS: Io "not a cpuledger store" for a foreign
// file; Io for a file written by a newer cpuledger.
Status Migrate(Db& db);

}  // namespace cpuledger::store::sqlite
