// SqliteStore: open and close — the writer connection and its statements,
// and the state loaded from the file (series, profile deltas, open buckets).
#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "store/sqlite/raw_chunk.h"
#include "store/sqlite/schema.h"
#include "store/sqlite/sqlite_store_internal.h"

namespace cpuledger::store {

Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  Result<std::unique_ptr<sqlite::SqliteStore>> store = sqlite::SqliteStore::Open(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace cpuledger::store

namespace cpuledger::store::sqlite {

SqliteStore::SqliteStore(const SqliteOptions& options)
    : options_(options),
      guard_(options.max_dimension_values,
             [this](std::string_view service, std::string_view dimension) {
               const std::string line = "service '" + std::string(service) + "' has " +
                                        std::to_string(options_.max_dimension_values) +
                                        " distinct " + std::string(dimension) +
                                        " values (max_dimension_values); new ones are stored as " +
                                        std::string(CardinalityGuard::kOther);
               if (options_.log)
                 options_.log(line);
               else
                 std::fprintf(stderr, "cpuledger store: %s\n", line.c_str());
             }) {}

SqliteStore::~SqliteStore() {
  // Fold the pending profile sums now, so the next open has nothing to fold;
  // a failure loses nothing (the deltas stay in the file).
  if (stmts_) (void)Checkpoint();
  stmts_.reset();  // finalize before the connection closes
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const SqliteOptions& options) {
  if (options.path.empty()) return InvalidArgument("SqliteOptions.path is empty");
  std::unique_ptr<SqliteStore> store(new SqliteStore(options));
  if (Status s = store->Init(); !s.ok())
    return IoError("cannot open store " + options.path + ": " + s.message());
  return store;
}

std::vector<std::pair<Stmt*, std::string>> SqliteStore::WriterSql(WriterStatements& w) {
  std::vector<std::pair<Stmt*, std::string>> sql = {
      {&w.insert_series,
       "INSERT INTO series (id, service, endpoint, method, status, host, cluster, region,"
       " commit_id, flags_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
      {&w.insert_chunk, "INSERT INTO raw_chunks (minute, samples, data) VALUES (?1, ?2, ?3)"},
      {&w.applied_exists, "SELECT 1 FROM applied_batches WHERE sender = ?1 AND sequence = ?2"},
      {&w.applied_insert,
       "INSERT INTO applied_batches (sender, sequence, applied_us) VALUES (?1, ?2, ?3)"},
      // Keeps the `window` highest sequences of a sender.
      {&w.applied_prune,
       "DELETE FROM applied_batches WHERE sender = ?1 AND sequence <= (SELECT sequence"
       " FROM applied_batches WHERE sender = ?1 ORDER BY sequence DESC LIMIT 1 OFFSET ?2)"},
      {&w.tally_endpoint,
       "INSERT INTO tally_endpoints (service, minute, host, sender, endpoint, requests,"
       " sampled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (service, minute, host,"
       " sender, endpoint) DO UPDATE SET requests = requests + excluded.requests,"
       " sampled = sampled + excluded.sampled"},
      {&w.tally_get,
       "SELECT hll, hll_precision FROM tallies WHERE service = ?1 AND minute = ?2"
       " AND host = ?3 AND sender = ?4"},
      {&w.tally_insert,
       "INSERT INTO tallies (service, minute, host, sender, cluster, region, commit_id,"
       " hll, hll_precision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
      {&w.tally_update,
       "UPDATE tallies SET cluster = ?5, region = ?6, commit_id = ?7, hll = ?8,"
       " hll_precision = ?9 WHERE service = ?1 AND minute = ?2 AND host = ?3"
       " AND sender = ?4"},
      {&w.deploy_upsert,
       "INSERT INTO deploys (service, cluster, commit_id, first_seen_us, last_seen_us,"
       " samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (service, cluster, commit_id)"
       " DO UPDATE SET first_seen_us = min(first_seen_us, excluded.first_seen_us),"
       " last_seen_us = max(last_seen_us, excluded.last_seen_us),"
       " samples = samples + excluded.samples"},
      {&w.path_cost_upsert,
       "INSERT INTO path_costs (bucket, slice, path, calls, primitive_calls, self_cost,"
       " total_cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (bucket, slice, path)"
       " DO UPDATE SET calls = calls + excluded.calls,"
       " primitive_calls = primitive_calls + excluded.primitive_calls,"
       " self_cost = self_cost + excluded.self_cost,"
       " total_cost = total_cost + excluded.total_cost"},
      {&w.moment_upsert,
       "INSERT INTO function_moments (bucket, slice, function, sum, sum_sq, share_sum,"
       " share_sq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (bucket, slice, function)"
       " DO UPDATE SET sum = sum + excluded.sum, sum_sq = sum_sq + excluded.sum_sq,"
       " share_sum = share_sum + excluded.share_sum, share_sq = share_sq + excluded.share_sq"},
      {&w.profile_requests_upsert,
       "INSERT INTO profile_requests (bucket, slice, requests) VALUES (?1, ?2, ?3)"
       " ON CONFLICT (bucket, slice) DO UPDATE SET requests = requests + excluded.requests"},
      {&w.delta_insert, "INSERT INTO profile_deltas (delta) VALUES (?1)"},
      // The hash of the newest hour wins; within an hour, the one written last.
      {&w.function_code_upsert,
       "INSERT INTO function_codes (service, commit_id, function, code_hash, last_hour)"
       " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (service, commit_id, function)"
       " DO UPDATE SET code_hash = CASE WHEN excluded.last_hour >= last_hour"
       " THEN excluded.code_hash ELSE code_hash END,"
       " last_hour = max(last_hour, excluded.last_hour)"},
      {&w.meta_set, "UPDATE meta SET value = ?2 WHERE key = ?1"},
  };
  for (Tier t : kAllTiers) {
    sql.emplace_back(&w.tier_insert[TierIndex(t)], InsertSql(t));
    sql.emplace_back(&w.tier_merge[TierIndex(t)], MergeSql(t));
    sql.emplace_back(&w.tier_exists[TierIndex(t)], ExistsSql(t));
  }
  return sql;
}

Status SqliteStore::Init() {
  if (Status s = OpenWriter(); !s.ok()) return s;
  if (Status s = LoadState(); !s.ok()) return s;
  readers_ = std::make_unique<ReaderPool>(options_.path);
  return OkStatus();
}

// The writer connection, migrated to the current schema, with its statements.
Status SqliteStore::OpenWriter() {
  Result<Db> db = Db::Open(options_.path, /*read_only=*/false);
  if (!db.ok()) return db.status();
  writer_ = std::move(*db);
  if (Status s = writer_.Exec("PRAGMA busy_timeout = 10000"); !s.ok()) return s;
  if (Status s = Migrate(writer_); !s.ok()) return s;
  if (Status s = ConfigureConnection(writer_, /*writer=*/true); !s.ok()) return s;
  if (Status s = RegisterSqlFunctions(writer_); !s.ok()) return s;
  auto statements = std::make_unique<WriterStatements>();
  for (auto& [stmt, sql] : WriterSql(*statements)) {
    Result<Stmt> prepared = writer_.Prepare(sql);
    if (!prepared.ok()) return prepared.status();
    *stmt = std::move(*prepared);
  }
  stmts_ = std::move(statements);
  return OkStatus();
}

// What the file holds that the writer keeps in memory: series, profile ids,
// and the open rollup buckets. Sums a crash left unfolded are folded now, so
// that a restart starts clean.
Status SqliteStore::LoadState() {
  if (Status s = LoadSeries(); !s.ok()) return s;
  if (Status s = profile_ids_.Load(writer_); !s.ok()) return s;
  shapes_.Clear();  // their ids were of the interner just reloaded
  if (Status s = LoadProfileDeltas(); !s.ok()) return s;
  if (Status s = CheckpointProfilesLocked(); !s.ok()) return s;
  return RebuildOpenBuckets();
}

Status SqliteStore::LoadSeries() {
  Result<Stmt> st =
      writer_.Prepare(std::string("SELECT ") + kSeriesColumns + " FROM series ORDER BY id");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  std::vector<SeriesInfo> infos;
  interner_.Reset();
  guard_.Reset();
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    Result<SeriesInfo> info = SeriesFromRow(u);
    if (!info.ok()) return info.status();
    interner_.Load(*info);
    guard_.Load(*info);
    infos.push_back(std::move(*info));
    return OkStatus();
  });
  if (!s.ok()) return s;
  catalog_.Extend(std::move(infos));
  return OkStatus();
}

Status SqliteStore::RebuildOpenBuckets() {
  for (OpenBuckets& o : open_) o.clear();
  max_seen_us_ = 0;
  {
    Result<Stmt> st = writer_.Prepare("SELECT key, value FROM meta");
    if (!st.ok()) return st.status();
    StmtUse use(*st);
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      const std::string_view key = u.Text(0);
      const int64_t v = u.Int64(1);
      for (Tier t : kTiers)
        if (key == TierWatermarkKey(t)) sealed_[TierIndex(t)] = v;
      if (key == "raw_samples") raw_samples_ = static_cast<uint64_t>(v);
      if (key == "rollup_rows") rollup_rows_ = static_cast<uint64_t>(v);
      if (key == "tallies") tallies_ = static_cast<uint64_t>(v);
      return OkStatus();
    });
    if (!s.ok()) return s;
  }
  const int64_t sealed_minute = sealed_[TierIndex(Tier::kMinute)];
  // Open minutes: the raw samples after the minute seal point.
  {
    Result<Stmt> st = writer_.Prepare("SELECT minute, data FROM raw_chunks WHERE minute >= ?1");
    if (!st.ok()) return st.status();
    StmtUse use(*st);
    use.Bind(1, sealed_minute);
    OpenBuckets& minutes = open_[TierIndex(Tier::kMinute)];
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      const int64_t minute = u.Int64(0);
      auto& bucket = minutes[minute];
      return ForEachSample(u.Blob(1), minute, [&](const StoredRecord& sample) {
        bucket[sample.series].Add(sample);
        max_seen_us_ = std::max(max_seen_us_, sample.start_us);
      });
    });
    if (!s.ok()) return s;
  }
  // Open hours: sealed minutes after the hour seal point; open days: sealed
  // hours after the day seal point.
  for (Tier coarse : {Tier::kHour, Tier::kDay}) {
    const Tier fine = coarse == Tier::kHour ? Tier::kMinute : Tier::kHour;
    Result<Stmt> st = writer_.Prepare(SelectSql(fine, true));
    if (!st.ok()) return st.status();
    StmtUse use(*st);
    use.Bind(1, sealed_[TierIndex(coarse)]);
    use.Bind(2, sealed_[TierIndex(fine)]);
    OpenBuckets& open = open_[TierIndex(coarse)];
    const int64_t size = TierSeconds(coarse);
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      return ReadRollup(u, true, &open[FloorTo(u.Int64(0), size)][u.Int64(1)]);
    });
    if (!s.ok()) return s;
  }
  needs_rebuild_ = false;
  return OkStatus();
}

}  // namespace cpuledger::store::sqlite
