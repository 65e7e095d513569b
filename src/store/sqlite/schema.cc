#include "store/sqlite/schema.h"

#include <string>
#include <tuple>
#include <vector>

#include "store/functions.h"
#include "store/sqlite/profile_ids.h"

namespace cpuledger::store::sqlite {
namespace {

// The same columns in all three rollup tiers (rollup.h describes the blobs).
#define CPULEDGER_ROLLUP_COLUMNS                                 \
  "(bucket INTEGER NOT NULL, series INTEGER NOT NULL,"           \
  " samples INTEGER NOT NULL, sums BLOB NOT NULL,"               \
  " h_instr BLOB, h_cycles BLOB, h_cpu_ns BLOB, h_wall_us BLOB," \
  " PRIMARY KEY (bucket, series)) WITHOUT ROWID;\n"

// Version 3's profile tables, as migrations 2 and 3 create them (and
// kVersion3ProfileTables spells them for tests and the bench's peer).
#define CPULEDGER_V2_FUNCTION_TABLES                                                       \
  "CREATE TABLE function_entities (bucket INTEGER NOT NULL, service TEXT NOT NULL,"        \
  " endpoint TEXT NOT NULL, commit_id TEXT NOT NULL, unit TEXT NOT NULL,"                  \
  " path_hash INTEGER NOT NULL, call_path TEXT NOT NULL, calls INTEGER NOT NULL,"          \
  " primitive_calls INTEGER NOT NULL, self_cost INTEGER NOT NULL,"                         \
  " total_cost INTEGER NOT NULL,"                                                          \
  " PRIMARY KEY (bucket, service, endpoint, commit_id, unit, path_hash)) WITHOUT ROWID;\n" \
  "CREATE TABLE function_requests (bucket INTEGER NOT NULL, service TEXT NOT NULL,"        \
  " endpoint TEXT NOT NULL, commit_id TEXT NOT NULL, unit TEXT NOT NULL,"                  \
  " requests INTEGER NOT NULL,"                                                            \
  " PRIMARY KEY (bucket, service, endpoint, commit_id, unit)) WITHOUT ROWID;\n"
#define CPULEDGER_V3_MOMENT_TABLES                                                         \
  "CREATE TABLE function_moments (bucket INTEGER NOT NULL, service TEXT NOT NULL,"         \
  " endpoint TEXT NOT NULL, commit_id TEXT NOT NULL, unit TEXT NOT NULL,"                  \
  " flag TEXT NOT NULL, flag_value TEXT NOT NULL, function TEXT NOT NULL,"                 \
  " sum REAL NOT NULL, sum_sq REAL NOT NULL, share_sum REAL NOT NULL,"                     \
  " share_sq REAL NOT NULL,"                                                               \
  " PRIMARY KEY (bucket, service, endpoint, commit_id, unit, flag, flag_value, function))" \
  " WITHOUT ROWID;\n"                                                                      \
  "CREATE TABLE function_moment_requests (bucket INTEGER NOT NULL, service TEXT NOT NULL," \
  " endpoint TEXT NOT NULL, commit_id TEXT NOT NULL, unit TEXT NOT NULL,"                  \
  " flag TEXT NOT NULL, flag_value TEXT NOT NULL, requests INTEGER NOT NULL,"              \
  " PRIMARY KEY (bucket, service, endpoint, commit_id, unit, flag, flag_value))"           \
  " WITHOUT ROWID;\n"

// Migration 1 — the first schema. Later migrations append to kMigrations;
// never edit one that has shipped.
constexpr const char* kMigration1 =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;\n"
    "INSERT INTO meta(key, value) VALUES ('sealed_minute', 0), ('sealed_hour', 0),"
    " ('sealed_day', 0), ('raw_samples', 0), ('rollup_rows', 0), ('tallies', 0);\n"
    "CREATE TABLE series (id INTEGER PRIMARY KEY, service TEXT NOT NULL,"
    " endpoint TEXT NOT NULL, method TEXT NOT NULL, status INTEGER NOT NULL,"
    " host TEXT NOT NULL, cluster TEXT NOT NULL, region TEXT NOT NULL,"
    " commit_id TEXT NOT NULL, flags_json TEXT NOT NULL,"
    " UNIQUE (service, endpoint, method, status, host, cluster, region, commit_id,"
    " flags_json));\n"
    "CREATE TABLE raw_chunks (id INTEGER PRIMARY KEY, minute INTEGER NOT NULL,"
    " samples INTEGER NOT NULL, data BLOB NOT NULL);\n"
    "CREATE INDEX raw_chunks_by_minute ON raw_chunks(minute);\n"
    "CREATE TABLE rollup_minute " CPULEDGER_ROLLUP_COLUMNS
    "CREATE TABLE rollup_hour " CPULEDGER_ROLLUP_COLUMNS
    "CREATE TABLE rollup_day " CPULEDGER_ROLLUP_COLUMNS
    "CREATE TABLE rollup_hour_coarse " CPULEDGER_ROLLUP_COLUMNS
    "CREATE TABLE rollup_day_coarse " CPULEDGER_ROLLUP_COLUMNS
    "CREATE TABLE tallies (service TEXT NOT NULL, minute INTEGER NOT NULL,"
    " host TEXT NOT NULL, worker_id TEXT NOT NULL, cluster TEXT NOT NULL,"
    " region TEXT NOT NULL, commit_id TEXT NOT NULL, hll BLOB,"
    " hll_precision INTEGER NOT NULL,"
    " PRIMARY KEY (service, minute, host, worker_id)) WITHOUT ROWID;\n"
    "CREATE INDEX tallies_by_minute ON tallies(minute, service);\n"
    "CREATE TABLE tally_endpoints (service TEXT NOT NULL, minute INTEGER NOT NULL,"
    " host TEXT NOT NULL, worker_id TEXT NOT NULL, endpoint TEXT NOT NULL,"
    " requests INTEGER NOT NULL, sampled INTEGER NOT NULL,"
    " PRIMARY KEY (service, minute, host, worker_id, endpoint)) WITHOUT ROWID;\n"
    "CREATE TABLE deploys (service TEXT NOT NULL, cluster TEXT NOT NULL,"
    " commit_id TEXT NOT NULL, first_seen_us INTEGER NOT NULL,"
    " last_seen_us INTEGER NOT NULL, samples INTEGER NOT NULL,"
    " PRIMARY KEY (service, cluster, commit_id)) WITHOUT ROWID;\n"
    "CREATE TABLE applied_batches (sender TEXT NOT NULL, sequence INTEGER NOT NULL,"
    " applied_us INTEGER NOT NULL, PRIMARY KEY (sender, sequence)) WITHOUT ROWID;\n"
    "CREATE TABLE function_entities (bucket INTEGER NOT NULL, service TEXT NOT NULL,"
    " endpoint TEXT NOT NULL, commit_id TEXT NOT NULL, function_id TEXT NOT NULL,"
    " call_path TEXT NOT NULL, calls INTEGER NOT NULL, self_cost REAL NOT NULL,"
    " total_cost REAL NOT NULL, profiled_requests INTEGER NOT NULL,"
    " PRIMARY KEY (bucket, service, endpoint, commit_id, function_id, call_path))"
    " WITHOUT ROWID;\n"
    "CREATE TABLE alerts (id INTEGER PRIMARY KEY, opened_us INTEGER NOT NULL,"
    " updated_us INTEGER NOT NULL, service TEXT NOT NULL, endpoint TEXT NOT NULL,"
    " cause TEXT NOT NULL, effect_json TEXT NOT NULL, status TEXT NOT NULL);\n"
    "CREATE INDEX alerts_by_service ON alerts(service, opened_us);\n";

#undef CPULEDGER_ROLLUP_COLUMNS

// Migration 2 — function entities (store/functions.h). Version 1's
// function_entities was never written, so it is replaced: one row per
// (hour, service, endpoint, commit, unit, call path), and the profiled
// request counts of the same slices in function_requests.
constexpr const char* kMigration2 = "DROP TABLE function_entities;\n" CPULEDGER_V2_FUNCTION_TABLES;

// Migration 3 — the detectors' tables (store/detection.h). Version 1's
// alerts table was never written, so it is replaced.
constexpr const char* kMigration3 =
    "DROP TABLE alerts;\n"
    "CREATE TABLE alerts (id INTEGER PRIMARY KEY, key TEXT NOT NULL, service TEXT NOT NULL,"
    " endpoint TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,"
    " opened_us INTEGER NOT NULL, updated_us INTEGER NOT NULL, body TEXT NOT NULL);\n"
    "CREATE UNIQUE INDEX alerts_open_key ON alerts(key) WHERE state = 'open';\n"
    "CREATE INDEX alerts_by_time ON alerts(opened_us);\n"
    "CREATE TABLE effects (at_us INTEGER NOT NULL, service TEXT NOT NULL,"
    " endpoint TEXT NOT NULL, subject TEXT NOT NULL, kind TEXT NOT NULL, cause TEXT NOT NULL,"
    " estimate REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL, alerted INTEGER NOT NULL);\n"
    "CREATE INDEX effects_by_subject ON effects(service, endpoint, subject, kind, at_us);\n"
    // clang-format off
    CPULEDGER_V3_MOMENT_TABLES;
// clang-format on

// Migration 4 — interned profiles (store/sqlite/profile_ids.h). Version 3
// spelled out every call path (~4 KB a row in a real app) and every function
// key per row; version 4 keys integer rows by small ids. The old rows are
// carried: the moments here in SQL, the call paths by CarryCallPaths(), which
// also drops the version 3 tables.
constexpr const char* kMigration4 =
    "CREATE TABLE functions (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);\n"
    "CREATE TABLE call_paths (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL,"
    " function INTEGER NOT NULL, UNIQUE (parent, function));\n"
    "CREATE TABLE profile_slices (id INTEGER PRIMARY KEY, service TEXT NOT NULL,"
    " endpoint TEXT NOT NULL, commit_id TEXT NOT NULL, unit TEXT NOT NULL, flag TEXT NOT NULL,"
    " flag_value TEXT NOT NULL, UNIQUE (service, endpoint, commit_id, unit, flag, flag_value));\n"
    "CREATE TABLE profile_requests (bucket INTEGER NOT NULL, slice INTEGER NOT NULL,"
    " requests INTEGER NOT NULL, PRIMARY KEY (bucket, slice)) WITHOUT ROWID;\n"
    "CREATE TABLE path_costs (bucket INTEGER NOT NULL, slice INTEGER NOT NULL,"
    " path INTEGER NOT NULL, calls INTEGER NOT NULL, primitive_calls INTEGER NOT NULL,"
    " self_cost INTEGER NOT NULL, total_cost INTEGER NOT NULL,"
    " PRIMARY KEY (bucket, slice, path)) WITHOUT ROWID;\n"
    "ALTER TABLE function_moments RENAME TO function_moments_v3;\n"
    "CREATE TABLE function_moments (bucket INTEGER NOT NULL, slice INTEGER NOT NULL,"
    " function INTEGER NOT NULL, sum REAL NOT NULL, sum_sq REAL NOT NULL,"
    " share_sum REAL NOT NULL, share_sq REAL NOT NULL,"
    " PRIMARY KEY (bucket, slice, function)) WITHOUT ROWID;\n"
    "INSERT INTO functions (key) SELECT DISTINCT function FROM function_moments_v3"
    " ORDER BY function;\n"
    "INSERT OR IGNORE INTO profile_slices (service, endpoint, commit_id, unit, flag, flag_value)"
    " SELECT service, endpoint, commit_id, unit, '', '' FROM function_requests"
    " UNION SELECT service, endpoint, commit_id, unit, flag, flag_value"
    " FROM function_moment_requests ORDER BY 1, 2, 3, 4, 5, 6;\n"
    "INSERT INTO function_moments SELECT m.bucket, s.id, f.id, m.sum, m.sum_sq, m.share_sum,"
    " m.share_sq FROM function_moments_v3 m JOIN functions f ON f.key = m.function"
    " JOIN profile_slices s ON s.service = m.service AND s.endpoint = m.endpoint"
    " AND s.commit_id = m.commit_id AND s.unit = m.unit AND s.flag = m.flag"
    " AND s.flag_value = m.flag_value;\n"
    // The all-requests count of a slice is in both version 3 tables (equal
    // since version 3); function_requests also has the hours before it.
    "INSERT INTO profile_requests SELECT r.bucket, s.id, r.requests FROM function_requests r"
    " JOIN profile_slices s ON s.service = r.service AND s.endpoint = r.endpoint"
    " AND s.commit_id = r.commit_id AND s.unit = r.unit AND s.flag = '' AND s.flag_value = '';\n"
    "INSERT OR IGNORE INTO profile_requests SELECT r.bucket, s.id, r.requests"
    " FROM function_moment_requests r JOIN profile_slices s ON s.service = r.service"
    " AND s.endpoint = r.endpoint AND s.commit_id = r.commit_id AND s.unit = r.unit"
    " AND s.flag = r.flag AND s.flag_value = r.flag_value;\n";

// CarryCallPaths() — version 3's text call paths as interned paths and
// path_costs rows; then drops the version 3 tables. RETURNS: Io for a stored
// path that does not parse.
Status CarryCallPaths(Db& db) {
  ProfileInterner ids;
  if (Status s = ids.Load(db); !s.ok()) return s;
  struct Row {
    int64_t bucket, slice, path, calls, primitive_calls, self_cost, total_cost;
  };
  std::vector<Row> rows;
  {
    Result<Stmt> st = db.Prepare(
        "SELECT bucket, service, endpoint, commit_id, unit, call_path, calls, primitive_calls,"
        " self_cost, total_cost FROM function_entities");
    if (!st.ok()) return st.status();
    StmtUse use(*st);
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      Result<std::vector<profile::Function>> frames = ParseCallPath(u.Text(5));
      if (!frames.ok()) return IoError("stored " + frames.status().message());
      int64_t path = 0;
      for (const profile::Function& f : *frames)
        path = ids.Path(path, ids.Function(profile::FunctionKeyText(f.file, f.line, f.name)));
      if (path == 0) return OkStatus();
      rows.push_back({u.Int64(0),
                      ids.Slice(SliceKey(u.Text(1), u.Text(2), u.Text(3), u.Text(4), "", "")), path,
                      u.Int64(6), u.Int64(7), u.Int64(8), u.Int64(9)});
      return OkStatus();
    });
    if (!s.ok()) return s;
  }
  if (Status s = ids.WritePending(); !s.ok()) return s;
  Result<Stmt> insert = db.Prepare(
      "INSERT INTO path_costs (bucket, slice, path, calls, primitive_calls, self_cost,"
      " total_cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO UPDATE SET"
      " calls = calls + excluded.calls, primitive_calls = primitive_calls +"
      " excluded.primitive_calls, self_cost = self_cost + excluded.self_cost,"
      " total_cost = total_cost + excluded.total_cost");
  if (!insert.ok()) return insert.status();
  for (const Row& r : rows) {
    StmtUse use(*insert);
    BindAll(use, std::make_tuple(r.bucket, r.slice, r.path, r.calls, r.primitive_calls, r.self_cost,
                                 r.total_cost));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return db.Exec(
      "DROP TABLE function_entities; DROP TABLE function_requests;"
      " DROP TABLE function_moments_v3; DROP TABLE function_moment_requests;");
}

// Migration 5 — profile sums committed but not yet folded into the hourly
// tables (sqlite_store.h, "Profile checkpoints"): one row per append.
constexpr const char* kMigration5 =
    "CREATE TABLE profile_deltas (id INTEGER PRIMARY KEY, delta BLOB NOT NULL);\n";

// Migration 6 — the glossary's names (DESIGN.md): a tally's `sender`, an
// effect's `function`, an alert's `base_commit` / `target_commit`.
constexpr const char* kMigration6 =
    "UPDATE alerts SET body = replace(replace(body, '\"commit_before\":',"
    " '\"base_commit\":'), '\"commit_after\":', '\"target_commit\":');\n"
    "ALTER TABLE tallies RENAME COLUMN worker_id TO sender;\n"
    "ALTER TABLE tally_endpoints RENAME COLUMN worker_id TO sender;\n"
    "ALTER TABLE effects RENAME COLUMN subject TO function;\n"
    "DROP INDEX effects_by_subject;\n"
    "CREATE INDEX effects_by_function ON effects(service, endpoint, function, kind, at_us);\n";

// Migration 7 — the alert lifecycle (store/detection.h, AlertState): one
// live (open or acknowledged) alert per key instead of one open one, the
// resolved alert an alert reopens, and every transition kept as an event.
// Alerts already stored get their opening event.
constexpr const char* kMigration7 =
    "DROP INDEX alerts_open_key;\n"
    "CREATE UNIQUE INDEX alerts_live_key ON alerts(key) WHERE state != 'resolved';\n"
    "CREATE INDEX alerts_by_key ON alerts(key, id);\n"
    "ALTER TABLE alerts ADD COLUMN reopens INTEGER NOT NULL DEFAULT 0;\n"
    "CREATE TABLE alert_events (alert_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " at_us INTEGER NOT NULL, state TEXT NOT NULL, by TEXT NOT NULL, note TEXT NOT NULL,"
    " detail TEXT NOT NULL, PRIMARY KEY (alert_id, seq)) WITHOUT ROWID;\n"
    "INSERT INTO alert_events SELECT id, 0, opened_us, 'open', 'detector', '', '' FROM alerts;\n";

// Migration 8 — leases (Store::HoldLease): who runs the detector schedule
// when several servers share a store. IF NOT EXISTS: the migration tests
// (function_entities_test.cc) rebuild older versions from a current file,
// dropping only the tables those versions lacked when they were written.
constexpr const char* kMigration8 =
    "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL,"
    " expires_us INTEGER NOT NULL) WITHOUT ROWID;\n";

// Migration 9 — each function's code hash per (service, commit)
// (Store::FunctionCodesOf). IF NOT EXISTS, as migration 8. No index on
// last_hour: only retention reads it, and the table is bounded by code base
// times commits kept.
constexpr const char* kMigration9 =
    "CREATE TABLE IF NOT EXISTS function_codes (service TEXT NOT NULL,"
    " commit_id TEXT NOT NULL, function INTEGER NOT NULL, code_hash INTEGER NOT NULL,"
    " last_hour INTEGER NOT NULL, PRIMARY KEY (service, commit_id, function)) WITHOUT ROWID;\n";

// Migration — the SQL of one version, then its C++ step (or nullptr).
struct Migration {
  const char* sql;
  Status (*carry)(Db&);
};

}  // namespace

const char* const kVersion3ProfileTables = CPULEDGER_V2_FUNCTION_TABLES CPULEDGER_V3_MOMENT_TABLES;

namespace {

#undef CPULEDGER_V2_FUNCTION_TABLES
#undef CPULEDGER_V3_MOMENT_TABLES

// kMigrations[v - 1] upgrades user_version v - 1 to v.
constexpr Migration kMigrations[] = {
    {kMigration1, nullptr},        {kMigration2, nullptr}, {kMigration3, nullptr},
    {kMigration4, CarryCallPaths}, {kMigration5, nullptr}, {kMigration6, nullptr},
    {kMigration7, nullptr},        {kMigration8, nullptr}, {kMigration9, nullptr}};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion);

}  // namespace

Status ConfigureConnection(Db& db, bool writer) {
  // busy_timeout first: even journal_mode may wait for another connection.
  std::string pragmas =
      "PRAGMA busy_timeout = 10000;"
      "PRAGMA synchronous = NORMAL;"
      "PRAGMA secure_delete = OFF;"
      "PRAGMA temp_store = MEMORY;";
  if (writer) {
    pragmas +=
        "PRAGMA journal_mode = WAL;"
        "PRAGMA cache_size = -65536;";  // 64 MiB: rollup pages being rewritten
  } else {
    pragmas +=
        "PRAGMA cache_size = -32768;"     // 32 MiB per reader
        "PRAGMA mmap_size = 1073741824;"  // scans read pages in place
        "PRAGMA query_only = ON;";
  }
  return db.Exec(pragmas);
}

namespace {

// CheckFile() — RETURNS: the file's schema version (0 for an empty file), or
// Io for a foreign or newer file.
Result<int64_t> CheckFile(Db& db) {
  Result<int64_t> app = db.QueryInt64("PRAGMA application_id");
  if (!app.ok()) return IoError("not a cpuledger store: " + app.status().message());
  Result<int64_t> version = db.QueryInt64("PRAGMA user_version");
  if (!version.ok()) return version.status();
  Result<int64_t> tables = db.QueryInt64("SELECT count(*) FROM sqlite_schema");
  if (!tables.ok()) return IoError("not a cpuledger store: " + tables.status().message());
  const bool empty = *version == 0 && *tables == 0 && *app == 0;
  if (!empty && *app != kApplicationId)
    return IoError("not a cpuledger store (application_id " + std::to_string(*app) + ", " +
                   std::to_string(*tables) + " schema objects)");
  if (*version > kSchemaVersion)
    return IoError("store schema version " + std::to_string(*version) +
                   " is newer than this cpuledger (" + std::to_string(kSchemaVersion) +
                   "); upgrade cpuledger");
  return *version;
}

}  // namespace

Status Migrate(Db& db) {
  Result<int64_t> version = CheckFile(db);
  if (!version.ok()) return version.status();
  if (*version == kSchemaVersion) return OkStatus();

  Txn txn(db);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  // Again under the write lock: another process may have migrated meanwhile.
  version = CheckFile(db);
  if (!version.ok()) return version.status();
  for (int64_t v = *version; v < kSchemaVersion; ++v) {
    if (Status s = db.Exec(kMigrations[v].sql); !s.ok()) return s;
    if (kMigrations[v].carry != nullptr)
      if (Status s = kMigrations[v].carry(db); !s.ok()) return s;
  }
  if (Status s = db.Exec("PRAGMA application_id = " + std::to_string(kApplicationId) +
                         "; PRAGMA user_version = " + std::to_string(kSchemaVersion));
      !s.ok())
    return s;
  return txn.Commit();
}

}  // namespace cpuledger::store::sqlite
