#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_set>

#include "record/codec.h"
#include "record/hll.h"
#include "store/sqlite/raw_chunk.h"
#include "store/sqlite/schema.h"

namespace cpuledger::store {

Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  Result<std::unique_ptr<sqlite::SqliteStore>> store = sqlite::SqliteStore::Open(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace cpuledger::store

namespace cpuledger::store::sqlite {
namespace {

constexpr int64_t kUs = 1'000'000;

int64_t WallClockUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

size_t TierIndex(Tier t) { return static_cast<size_t>(t); }

// MergeSketches() — the union of two HyperLogLogs given as registers, at the
// lower of their precisions. RETURNS: InvalidArgument for bad registers.
Result<std::pair<std::string, int>> MergeSketches(std::string_view a, int pa, std::string_view b,
                                                  int pb) {
  const int p = std::min(pa, pb);
  auto at_p = [p](std::string_view regs, int from) -> Result<record::HyperLogLog> {
    Result<record::HyperLogLog> h = record::HyperLogLog::FromRegisters(regs, from);
    if (!h.ok() || from == p) return h;
    return record::HyperLogLog::FromRegisters(FoldHllRegisters(regs, from, p), p);
  };
  Result<record::HyperLogLog> ha = at_p(a, pa);
  if (!ha.ok()) return ha.status();
  Result<record::HyperLogLog> hb = at_p(b, pb);
  if (!hb.ok()) return hb.status();
  if (Status s = ha->Merge(*hb); !s.ok()) return s;
  return std::make_pair(ha->registers(), p);
}

}  // namespace

struct SqliteStore::DeploySeen {
  int64_t first_us = 0, last_us = 0;
  uint64_t samples = 0;
};

// ProfileSums — the profile rows one AppendBatches() call adds.
//
// Records add into per-(slot, shape) vectors first, in node and function
// order (no lookup per node); Fold() turns those into the rows at the end.
struct SqliteStore::ProfileSums {
  using Path = ProfileRows::Path;
  using Moments = ProfileRows::Moments;
  // One shape's sums in one slot: per node (paths) or per distinct function.
  template <typename V>
  struct ShapeSums {
    int64_t slot = 0;
    const ProfileShape* shape = nullptr;
    std::vector<V> values;
  };
  ProfileRows rows;
  PairMap<size_t> path_sums_of, moment_sums_of;  // (slot, shape serial) -> index
  std::vector<ShapeSums<Path>> path_sums;
  std::vector<ShapeSums<Moments>> moment_sums;

  template <typename V>
  static std::vector<V>& SumsOf(PairMap<size_t>& index, std::vector<ShapeSums<V>>& all,
                                int64_t slot, const ProfileShape& shape, size_t size) {
    auto [i, added] = index.TryEmplace(slot, static_cast<int64_t>(shape.serial));
    if (added) {
      *i = all.size();
      all.push_back({slot, &shape, std::vector<V>(size)});
    }
    return all[*i].values;
  }

  // Fold() — the per-shape sums into the (slot, id) rows.
  void Fold() {
    for (const ShapeSums<Path>& s : path_sums) {
      for (size_t i = 1; i < s.values.size(); ++i)
        *rows.paths.TryEmplace(s.slot, s.shape->path[i]).first += s.values[i];
    }
    for (const ShapeSums<Moments>& s : moment_sums) {
      for (size_t f = 0; f < s.values.size(); ++f) {
        if (s.values[f].sum == 0) continue;  // the function cost nothing in this slot
        *rows.moments.TryEmplace(s.slot, s.shape->functions[f]).first += s.values[f];
      }
    }
  }
};

// CallState — what one AppendBatches() call builds before writing it.
struct SqliteStore::CallState {
  int64_t now_us = 0;
  std::array<int64_t, 3> sealed_us{};                // seal points at the start of the call
  std::array<int64_t, 3> sealed_before{};            // seal points before Seal()
  std::map<int64_t, ChunkWriter> chunks;             // minute -> raw chunk
  std::array<std::map<TierKey, RollupAcc>, 3> late;  // samples of sealed buckets
  std::unordered_map<int64_t, DeploySeen> deploys;   // series -> seen
  ProfileSums profiles;
  std::vector<double> self_scratch;                    // AddMoments(): self cost per function
  FunctionIds batch_functions;                         // the ids of the batch's function table
  FunctionIds own_functions;                           // of a profile's own table
  record::RequestRecord guarded;                       // a record with values folded
  std::set<std::string> senders;                       // senders to prune
  std::set<std::pair<std::string, uint64_t>> applied;  // (sender, sequence) in this call
  uint64_t records = 0, tallies_new = 0, rollup_rows_new = 0;
  // Route()'s cache: the open minute bucket of the previous sample.
  int64_t cached_minute = INT64_MIN;
  std::unordered_map<int64_t, RollupAcc>* cached_bucket = nullptr;
  RollupBlobs blobs;  // scratch for BindRollup
};

struct SqliteStore::WriterStatements {
  Stmt insert_series;
  Stmt insert_chunk;
  std::array<Stmt, kNumTiers> tier_insert, tier_merge, tier_exists;
  Stmt applied_exists, applied_insert, applied_prune;
  Stmt tally_endpoint, tally_get, tally_insert, tally_update;
  Stmt deploy_upsert;
  Stmt path_cost_upsert, moment_upsert, profile_requests_upsert, delta_insert;
  Stmt meta_set;
};

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

Status SqliteStore::Init() {
  Result<Db> db = Db::Open(options_.path, /*read_only=*/false);
  if (!db.ok()) return db.status();
  writer_ = std::move(*db);
  if (Status s = writer_.Exec("PRAGMA busy_timeout = 10000"); !s.ok()) return s;
  if (Status s = Migrate(writer_); !s.ok()) return s;
  if (Status s = ConfigureConnection(writer_, /*writer=*/true); !s.ok()) return s;
  if (Status s = RegisterSqlFunctions(writer_); !s.ok()) return s;

  stmts_ = std::make_unique<WriterStatements>();
  WriterStatements& w = *stmts_;
  Status s;
  auto prepare = [&](Stmt* st, const std::string& sql) {
    if (!s.ok()) return;
    Result<Stmt> p = writer_.Prepare(sql);
    if (!p.ok()) {
      s = p.status();
      return;
    }
    *st = std::move(*p);
  };
  prepare(&w.insert_series,
          "INSERT INTO series (id, service, endpoint, method, status, host, cluster, region,"
          " commit_id, flags_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  prepare(&w.insert_chunk, "INSERT INTO raw_chunks (minute, samples, data) VALUES (?1, ?2, ?3)");
  for (Tier t : kAllTiers) {
    prepare(&w.tier_insert[TierIndex(t)], InsertSql(t));
    prepare(&w.tier_merge[TierIndex(t)], MergeSql(t));
    prepare(&w.tier_exists[TierIndex(t)], ExistsSql(t));
  }
  prepare(&w.applied_exists, "SELECT 1 FROM applied_batches WHERE sender = ?1 AND sequence = ?2");
  prepare(&w.applied_insert,
          "INSERT INTO applied_batches (sender, sequence, applied_us) VALUES (?1, ?2, ?3)");
  // Keeps the `window` highest sequences of a sender.
  prepare(&w.applied_prune,
          "DELETE FROM applied_batches WHERE sender = ?1 AND sequence <= (SELECT sequence"
          " FROM applied_batches WHERE sender = ?1 ORDER BY sequence DESC LIMIT 1 OFFSET ?2)");
  prepare(&w.tally_endpoint,
          "INSERT INTO tally_endpoints (service, minute, host, worker_id, endpoint, requests,"
          " sampled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (service, minute, host,"
          " worker_id, endpoint) DO UPDATE SET requests = requests + excluded.requests,"
          " sampled = sampled + excluded.sampled");
  prepare(&w.tally_get,
          "SELECT hll, hll_precision FROM tallies WHERE service = ?1 AND minute = ?2"
          " AND host = ?3 AND worker_id = ?4");
  prepare(&w.tally_insert,
          "INSERT INTO tallies (service, minute, host, worker_id, cluster, region, commit_id,"
          " hll, hll_precision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  prepare(&w.tally_update,
          "UPDATE tallies SET cluster = ?5, region = ?6, commit_id = ?7, hll = ?8,"
          " hll_precision = ?9 WHERE service = ?1 AND minute = ?2 AND host = ?3"
          " AND worker_id = ?4");
  prepare(&w.deploy_upsert,
          "INSERT INTO deploys (service, cluster, commit_id, first_seen_us, last_seen_us,"
          " samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (service, cluster, commit_id)"
          " DO UPDATE SET first_seen_us = min(first_seen_us, excluded.first_seen_us),"
          " last_seen_us = max(last_seen_us, excluded.last_seen_us),"
          " samples = samples + excluded.samples");
  prepare(&w.path_cost_upsert,
          "INSERT INTO path_costs (bucket, slice, path, calls, primitive_calls, self_cost,"
          " total_cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (bucket, slice, path)"
          " DO UPDATE SET calls = calls + excluded.calls,"
          " primitive_calls = primitive_calls + excluded.primitive_calls,"
          " self_cost = self_cost + excluded.self_cost,"
          " total_cost = total_cost + excluded.total_cost");
  prepare(&w.moment_upsert,
          "INSERT INTO function_moments (bucket, slice, function, sum, sum_sq, share_sum,"
          " share_sq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (bucket, slice, function)"
          " DO UPDATE SET sum = sum + excluded.sum, sum_sq = sum_sq + excluded.sum_sq,"
          " share_sum = share_sum + excluded.share_sum, share_sq = share_sq + excluded.share_sq");
  prepare(&w.profile_requests_upsert,
          "INSERT INTO profile_requests (bucket, slice, requests) VALUES (?1, ?2, ?3)"
          " ON CONFLICT (bucket, slice) DO UPDATE SET requests = requests + excluded.requests");
  prepare(&w.delta_insert, "INSERT INTO profile_deltas (delta) VALUES (?1)");
  prepare(&w.meta_set, "UPDATE meta SET value = ?2 WHERE key = ?1");
  if (!s.ok()) return s;

  if (Status ls = LoadSeries(); !ls.ok()) return ls;
  if (Status ps = profile_ids_.Load(writer_); !ps.ok()) return ps;
  shapes_.Clear();  // their ids were of the interner just reloaded
  // Sums a crash left unfolded: folded now, so that a restart starts clean.
  if (Status ds = LoadProfileDeltas(); !ds.ok()) return ds;
  if (Status cs = CheckpointProfilesLocked(); !cs.ok()) return cs;
  if (Status rs = RebuildOpenBuckets(); !rs.ok()) return rs;
  readers_ = std::make_unique<ReaderPool>(options_.path);
  return OkStatus();
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
      return ForEachSample(u.Blob(1), minute, [&](const Sample& sample) {
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

Result<std::vector<AppendOutcome>> SqliteStore::AppendBatches(
    std::span<const record::Batch* const> batches) {
  std::lock_guard lock(write_mu_);
  if (needs_rebuild_) {
    if (Status s = RebuildOpenBuckets(); !s.ok()) return s;
  }
  shapes_.TrimToBound();
  Result<std::vector<AppendOutcome>> out = AppendInTransaction(batches);
  if (out.ok()) {
    catalog_.Extend(interner_.Commit());
    profile_ids_.Commit();
    return out;
  }
  // Nothing was stored (the transaction rolled back), but the open buckets
  // and counters in memory may have moved: rebuild them from the file.
  interner_.Abort();
  profile_ids_.Abort();
  shapes_.Clear();  // they may hold ids Abort() took back
  if (Status s = RebuildOpenBuckets(); !s.ok()) needs_rebuild_ = true;
  return out;
}

Result<std::vector<AppendOutcome>> SqliteStore::AppendInTransaction(
    std::span<const record::Batch* const> batches) {
  Txn txn(writer_);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  CallState call;
  call.now_us = WallClockUs();
  for (Tier t : kTiers) call.sealed_us[TierIndex(t)] = sealed_[TierIndex(t)] * kUs;
  std::vector<AppendOutcome> outcomes(batches.size());
  for (size_t b = 0; b < batches.size(); ++b)
    if (Status s = ApplyBatch(*batches[b], b, call, outcomes[b]); !s.ok()) return s;
  // Order matters only in that sealing and late merges may intern coarse
  // series, which WriteSeries() then stores.
  if (Status s = WriteChunks(call); !s.ok()) return s;
  if (Status s = MergeLate(call); !s.ok()) return s;
  if (Status s = Seal(call); !s.ok()) return s;
  if (Status s = WriteSeries(); !s.ok()) return s;
  if (Status s = WriteDeploys(call); !s.ok()) return s;
  if (Status s = profile_ids_.WritePending(); !s.ok()) return s;
  call.profiles.Fold();
  if (Status s = WriteProfileDelta(call.profiles.rows); !s.ok()) return s;
  if (Status s = PruneApplied(call); !s.ok()) return s;
  if (Status s = WriteMeta(call); !s.ok()) return s;
  if (Status s = txn.Commit(); !s.ok()) return s;
  if (!call.profiles.rows.empty()) {
    pending_profiles_.Add(call.profiles.rows);
    ++pending_deltas_;
  }
  return outcomes;
}

Status SqliteStore::ApplyBatch(const record::Batch& batch, size_t b, CallState& call,
                               AppendOutcome& outcome) {
  WriterStatements& w = *stmts_;
  if (!batch.sender().empty()) {
    const auto id = std::make_pair(batch.sender(), batch.sequence());
    bool duplicate = call.applied.count(id) > 0;
    if (!duplicate) {
      StmtUse use(w.applied_exists);
      use.Bind(1, batch.sender());
      use.Bind(2, static_cast<int64_t>(batch.sequence()));
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      duplicate = *row;
    }
    if (duplicate) {
      outcome.duplicate = true;
      return OkStatus();
    }
    call.applied.insert(id);
    call.senders.insert(batch.sender());
    StmtUse use(w.applied_insert);
    use.Bind(1, batch.sender());
    use.Bind(2, static_cast<int64_t>(batch.sequence()));
    use.Bind(3, call.now_us);
    if (Status s = use.Run(); !s.ok()) return s;
  }

  call.batch_functions.Reset(&batch.functions());
  for (int r = 0; r < batch.records_size(); ++r) {
    const record::RequestRecord* stored = &batch.records(r);
    if (!(stored->sample_rate() > 0 && stored->sample_rate() <= 1) ||
        stored->start_time_unix_us() < 0)
      return InvalidArgument("batch " + std::to_string(b) + " record " + std::to_string(r) +
                             ": sample_rate must be in (0, 1] and start time >= 0");
    // A record of a known series has only known values; a new series may
    // bring a value past its dimension's cap.
    int64_t series = interner_.Find(*stored);
    if (series == 0) {
      stored = &guard_.Guard(*stored, &call.guarded);
      series = interner_.Intern(*stored);
    }
    const record::RequestRecord& rec = *stored;
    const Sample sample = SampleFromRecord(rec, series);
    const int64_t minute = FloorTo(sample.start_us, 60 * kUs) / kUs;
    auto chunk = call.chunks.find(minute);
    if (chunk == call.chunks.end()) chunk = call.chunks.emplace(minute, ChunkWriter(minute)).first;
    chunk->second.Add(sample);
    Route(sample, call);
    DeploySeen& d = call.deploys[series];
    if (d.samples == 0 || sample.start_us < d.first_us) d.first_us = sample.start_us;
    if (d.samples == 0 || sample.start_us > d.last_us) d.last_us = sample.start_us;
    d.samples += 1;
    max_seen_us_ = std::max(max_seen_us_, sample.start_us);
    if (rec.has_profile()) {
      if (Status s = AddProfile(rec, call); !s.ok())
        return Status(s.code(), "batch " + std::to_string(b) + " record " + std::to_string(r) +
                                    ": " + s.message());
    }
  }
  outcome.records = static_cast<size_t>(batch.records_size());
  call.records += outcome.records;

  for (int t = 0; t < batch.tallies_size(); ++t) {
    if (Status s = StoreTally(batch.tallies(t), call); !s.ok())
      return Status(s.code(), "batch " + std::to_string(b) + " tally " + std::to_string(t) + ": " +
                                  s.message());
  }
  outcome.tallies = static_cast<size_t>(batch.tallies_size());
  return OkStatus();
}

// Route(): into the open bucket of the finest tier still open at the sample's
// start (coarser tiers get it when that bucket seals), and, for every tier
// already sealed there, into a late delta merged into the sealed row.
void SqliteStore::Route(const Sample& s, CallState& call) {
  const int64_t minute = FloorTo(s.start_us, 60 * kUs) / kUs;
  if (s.start_us >= call.sealed_us[0]) {
    if (minute != call.cached_minute) {
      call.cached_bucket = &open_[0][minute];
      call.cached_minute = minute;
    }
    (*call.cached_bucket)[s.series].Add(s);
    return;
  }
  call.late[0][{minute, s.series}].Add(s);
  for (Tier t : {Tier::kHour, Tier::kDay}) {
    const size_t i = TierIndex(t);
    const int64_t bucket = FloorTo(s.start_us, TierSeconds(t) * kUs) / kUs;
    if (s.start_us >= call.sealed_us[i]) {
      open_[i][bucket][s.series].Add(s);
      return;
    }
    call.late[i][{bucket, s.series}].Add(s);
  }
}

// AddProfile(): every node of the record's profile adds to its call path's
// sums, found through the profile's shape.
Status SqliteStore::AddProfile(const record::RequestRecord& rec, CallState& call) {
  const record::Profile& p = rec.profile();
  FunctionIds* functions = &call.batch_functions;
  if (!p.functions_in_batch()) {
    functions = &call.own_functions;
    functions->Reset(&p.functions());
  }
  Result<const ProfileShape*> shape = shapes_.Find(p, *functions, profile_ids_);
  if (!shape.ok()) return shape.status();
  const int64_t hour = FloorTo(rec.start_time_unix_us(), 3600 * kUs) / kUs;
  ProfileSums& sums = call.profiles;
  const int64_t slot = sums.rows.SlotOf(
      hour,
      profile_ids_.Slice(SliceKey(rec.service(), rec.endpoint(), rec.commit(), p.unit(), "", "")));
  std::vector<ProfileSums::Path>& nodes = ProfileSums::SumsOf(
      sums.path_sums_of, sums.path_sums, slot, **shape, static_cast<size_t>(p.nodes_size()));
  for (int i = 1; i < p.nodes_size(); ++i) {
    const record::ProfileNode& n = p.nodes(i);
    nodes[static_cast<size_t>(i)] +=
        ProfileSums::Path{n.calls(), n.primitive_calls(), n.self_cost(), n.total_cost()};
  }
  AddMoments(rec, hour, **shape, call);
  return OkStatus();
}

// AddMoments(): the record's self cost per function, added once to the
// all-requests slice and once to the slice of each of its flags' values.
// Functions that share a key (a profile may list one twice) are one function
// of the shape, so a request's cost of a function is one observation.
void SqliteStore::AddMoments(const record::RequestRecord& rec, int64_t hour,
                             const ProfileShape& shape, CallState& call) {
  const record::Profile& p = rec.profile();
  std::vector<double>& self = call.self_scratch;
  self.assign(shape.functions.size(), 0.0);
  double total = 0;
  for (int i = 1; i < p.nodes_size(); ++i) {
    const double cost = static_cast<double>(p.nodes(i).self_cost());
    self[shape.node_function[static_cast<size_t>(i)]] += cost;
    total += cost;
  }
  const uint64_t requests = p.requests() == 0 ? 1 : p.requests();
  auto add = [&](const std::string& flag, const std::string& value) {
    ProfileSums& sums = call.profiles;
    const int64_t slot =
        sums.rows.SlotOf(hour, profile_ids_.Slice(SliceKey(rec.service(), rec.endpoint(),
                                                           rec.commit(), p.unit(), flag, value)));
    sums.rows.slots[static_cast<size_t>(slot)].requests += requests;
    std::vector<ProfileSums::Moments>& moments = ProfileSums::SumsOf(
        sums.moment_sums_of, sums.moment_sums, slot, shape, shape.functions.size());
    for (size_t f = 0; f < self.size(); ++f) {
      const double cost = self[f];
      if (cost == 0) continue;
      const double share = cost / total;  // total >= cost > 0
      moments[f] += ProfileSums::Moments{cost, cost * cost, share, share * share};
    }
  };
  add("", "");
  for (const auto& [flag, value] : rec.flags()) add(flag, value);
}

Status SqliteStore::StoreTally(const record::WorkerTally& tally, CallState& call) {
  WriterStatements& w = *stmts_;
  const int64_t minute = FloorTo(tally.minute_unix(), 60);
  for (const record::EndpointCount& e : tally.endpoints()) {
    StmtUse use(w.tally_endpoint);
    use.Bind(1, tally.service());
    use.Bind(2, minute);
    use.Bind(3, tally.host());
    use.Bind(4, tally.worker_id());
    use.Bind(5, e.endpoint());
    use.Bind(6, static_cast<int64_t>(e.requests()));
    use.Bind(7, static_cast<int64_t>(e.sampled()));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  std::string hll = tally.active_users_hll();
  int precision = static_cast<int>(tally.hll_precision());
  if (!hll.empty()) {
    Result<record::HyperLogLog> h = record::HyperLogLog::FromRegisters(hll, precision);
    if (!h.ok()) return h.status();
  }
  // A second tally of the same worker-minute (a partial flush) merges in.
  bool exists = false;
  {
    StmtUse get(w.tally_get);
    get.Bind(1, tally.service());
    get.Bind(2, minute);
    get.Bind(3, tally.host());
    get.Bind(4, tally.worker_id());
    Result<bool> row = get.Step();
    if (!row.ok()) return row.status();
    exists = *row;
    if (exists && !get.IsNull(0)) {
      const std::string_view old = get.Blob(0);
      const int old_precision = static_cast<int>(get.Int64(1));
      if (hll.empty()) {
        hll = std::string(old);
        precision = old_precision;
      } else {
        Result<std::pair<std::string, int>> merged =
            MergeSketches(old, old_precision, hll, precision);
        if (!merged.ok()) return IoError("stored tally HyperLogLog: " + merged.status().message());
        hll = std::move(merged->first);
        precision = merged->second;
      }
    }
  }
  StmtUse put(exists ? w.tally_update : w.tally_insert);
  put.Bind(1, tally.service());
  put.Bind(2, minute);
  put.Bind(3, tally.host());
  put.Bind(4, tally.worker_id());
  put.Bind(5, tally.cluster());
  put.Bind(6, tally.region());
  put.Bind(7, tally.commit());
  if (hll.empty())
    put.BindNull(8);
  else
    put.BindBlob(8, hll);
  put.Bind(9, static_cast<int64_t>(precision));
  if (Status s = put.Run(); !s.ok()) return s;
  if (!exists) call.tallies_new += 1;
  return OkStatus();
}

Status SqliteStore::WriteChunks(CallState& call) {
  for (auto& [minute, chunk] : call.chunks) {
    StmtUse use(stmts_->insert_chunk);
    use.Bind(1, minute);
    use.Bind(2, static_cast<int64_t>(chunk.samples()));
    use.BindBlob(3, chunk.Finish());
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return OkStatus();
}

Status SqliteStore::InsertRow(Tier t, int64_t bucket, int64_t series, const RollupAcc& acc,
                              CallState& call) {
  StmtUse use(stmts_->tier_insert[TierIndex(t)]);
  use.Bind(1, bucket);
  use.Bind(2, series);
  BindRollup(use, acc, &call.blobs);
  if (Status s = use.Run(); !s.ok()) return s;
  call.rollup_rows_new += 1;
  return OkStatus();
}

Status SqliteStore::MergeRows(Tier t, const std::map<TierKey, RollupAcc>& rows, CallState& call) {
  const size_t i = TierIndex(t);
  for (const auto& [key, acc] : rows) {
    bool exists;
    {
      StmtUse use(stmts_->tier_exists[i]);
      use.Bind(1, key.first);
      use.Bind(2, key.second);
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      exists = *row;
    }
    StmtUse use(stmts_->tier_merge[i]);
    use.Bind(1, key.first);
    use.Bind(2, key.second);
    BindRollup(use, acc, &call.blobs);
    if (Status s = use.Run(); !s.ok()) return s;
    if (!exists) call.rollup_rows_new += 1;  // rollup_rows stays exact
  }
  return OkStatus();
}

Status SqliteStore::MergeLate(CallState& call) {
  for (Tier t : kTiers) {
    const auto& late = call.late[TierIndex(t)];
    if (Status s = MergeRows(t, late, call); !s.ok()) return s;
    if (t == Tier::kMinute || late.empty()) continue;
    std::map<TierKey, RollupAcc> coarse;
    for (const auto& [key, acc] : late)
      coarse[{key.first, interner_.CoarseOf(key.second)}].Merge(acc);
    if (Status s = MergeRows(CoarseTier(t), coarse, call); !s.ok()) return s;
  }
  return OkStatus();
}

// Seal(): every open bucket that ends before the seal point is written (with
// its coarse rows for hours and days) and folded into the next tier's open bucket.
Status SqliteStore::Seal(CallState& call) {
  call.sealed_before = sealed_;
  const int64_t point_s = FloorTo(std::min(max_seen_us_, call.now_us), kUs) / kUs - kSealLagSeconds;
  for (Tier t : kTiers) {
    const size_t i = TierIndex(t);
    const int64_t size = TierSeconds(t);
    const int64_t target = std::max(sealed_[i], FloorTo(point_s, size));
    OpenBuckets& open = open_[i];
    while (!open.empty() && open.begin()->first + size <= target) {
      auto node = open.extract(open.begin());
      const int64_t bucket = node.key();
      // In key order: the rows append to the B-tree instead of splitting pages.
      std::vector<std::pair<int64_t, RollupAcc*>> rows;
      rows.reserve(node.mapped().size());
      for (auto& [series, acc] : node.mapped()) rows.emplace_back(series, &acc);
      std::sort(rows.begin(), rows.end());
      std::map<int64_t, RollupAcc> coarse;
      for (auto& [series, acc] : rows) {
        if (Status s = InsertRow(t, bucket, series, *acc, call); !s.ok()) return s;
        if (t != Tier::kMinute) coarse[interner_.CoarseOf(series)].Merge(*acc);
        if (t != Tier::kDay) {
          const size_t next = i + 1;
          auto& up = open_[next][FloorTo(bucket, TierSeconds(kTiers[next]))];
          auto [it, inserted] = up.try_emplace(series);
          if (inserted)
            it->second = std::move(*acc);
          else
            it->second.Merge(*acc);
        }
      }
      for (const auto& [series, acc] : coarse)
        if (Status s = InsertRow(CoarseTier(t), bucket, series, acc, call); !s.ok()) return s;
    }
    sealed_[i] = target;
  }
  return OkStatus();
}

Status SqliteStore::WriteSeries() {
  for (const SeriesInfo* info : interner_.pending()) {
    StmtUse use(stmts_->insert_series);
    use.Bind(1, info->id);
    use.Bind(2, info->service);
    use.Bind(3, info->endpoint);
    use.Bind(4, info->method);
    use.Bind(5, static_cast<int64_t>(info->status));
    use.Bind(6, info->host);
    use.Bind(7, info->cluster);
    use.Bind(8, info->region);
    use.Bind(9, info->commit);
    use.Bind(10, info->flags_json);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return OkStatus();
}

Status SqliteStore::WriteDeploys(const CallState& call) {
  std::map<std::tuple<std::string_view, std::string_view, std::string_view>, DeploySeen> agg;
  for (const auto& [series, seen] : call.deploys) {
    const SeriesInfo* info = interner_.Get(series);
    if (info == nullptr) return Internal("series " + std::to_string(series) + " unknown");
    DeploySeen& d = agg[{info->service, info->cluster, info->commit}];
    if (d.samples == 0 || seen.first_us < d.first_us) d.first_us = seen.first_us;
    if (d.samples == 0 || seen.last_us > d.last_us) d.last_us = seen.last_us;
    d.samples += seen.samples;
  }
  for (const auto& [key, seen] : agg) {
    StmtUse use(stmts_->deploy_upsert);
    use.Bind(1, std::get<0>(key));
    use.Bind(2, std::get<1>(key));
    use.Bind(3, std::get<2>(key));
    use.Bind(4, seen.first_us);
    use.Bind(5, seen.last_us);
    use.Bind(6, static_cast<int64_t>(seen.samples));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return OkStatus();
}

namespace {

// SortedRows() — a PairMap's (slot, id) entries in (hour, slice, id) order, so
// the upserts walk the B-tree forward instead of jumping about it.
template <typename V, typename Slots>
std::vector<std::tuple<int64_t, int64_t, int64_t, const V*>> SortedRows(const PairMap<V>& map,
                                                                        const Slots& slots) {
  std::vector<std::tuple<int64_t, int64_t, int64_t, const V*>> rows;
  rows.reserve(map.size());
  map.ForEach([&](int64_t slot, int64_t id, const V& v) {
    const auto& s = slots[static_cast<size_t>(slot)];
    rows.emplace_back(s.hour, s.slice, id, &v);
  });
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace

Status SqliteStore::WriteProfileDelta(const ProfileRows& rows) {
  if (rows.empty()) return OkStatus();
  rows.ToDelta(&delta_scratch_);
  delta_scratch_.SerializeToString(&delta_bytes_);
  StmtUse use(stmts_->delta_insert);
  use.BindBlob(1, delta_bytes_);
  return use.Run();
}

Status SqliteStore::WriteProfileRows(const ProfileRows& rows) {
  for (const auto& [hour, slice, path, row] : SortedRows(rows.paths, rows.slots)) {
    StmtUse use(stmts_->path_cost_upsert);
    BindAll(use, std::make_tuple(hour, slice, path, static_cast<int64_t>(row->calls),
                                 static_cast<int64_t>(row->primitive_calls),
                                 static_cast<int64_t>(row->self_cost),
                                 static_cast<int64_t>(row->total_cost)));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  for (const ProfileRows::Slot& slot : rows.slots) {
    if (slot.requests == 0) continue;  // a slot of path sums only
    StmtUse use(stmts_->profile_requests_upsert);
    BindAll(use, std::make_tuple(slot.hour, slot.slice, static_cast<int64_t>(slot.requests)));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  for (const auto& [hour, slice, function, m] : SortedRows(rows.moments, rows.slots)) {
    StmtUse use(stmts_->moment_upsert);
    BindAll(use,
            std::make_tuple(hour, slice, function, m->sum, m->sum_sq, m->share_sum, m->share_sq));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return OkStatus();
}

Status SqliteStore::Checkpoint() {
  std::lock_guard lock(write_mu_);
  return CheckpointProfilesLocked();
}

Status SqliteStore::CheckpointProfilesLocked() {
  if (pending_deltas_ == 0) return OkStatus();
  Txn txn(writer_);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  if (Status s = WriteProfileRows(pending_profiles_); !s.ok()) return s;
  if (Status s = writer_.Exec("DELETE FROM profile_deltas"); !s.ok()) return s;
  if (Status s = txn.Commit(); !s.ok()) return s;
  pending_profiles_.Clear();
  pending_deltas_ = 0;
  return OkStatus();
}

Status SqliteStore::LoadProfileDeltas() {
  pending_profiles_.Clear();
  pending_deltas_ = 0;
  Result<Stmt> st = writer_.Prepare("SELECT delta FROM profile_deltas ORDER BY id");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  ProfileDelta delta;
  return ForEachRow(use, [&](StmtUse& u) -> Status {
    const std::string_view bytes = u.Blob(0);
    if (!delta.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
        !pending_profiles_.AddDelta(delta))
      return IoError("a stored profile delta does not parse");
    ++pending_deltas_;
    return OkStatus();
  });
}

Status SqliteStore::PruneApplied(const CallState& call) {
  for (const std::string& sender : call.senders) {
    StmtUse use(stmts_->applied_prune);
    use.Bind(1, sender);
    use.Bind(2, static_cast<int64_t>(options_.dedup_window));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return OkStatus();
}

Status SqliteStore::WriteMeta(const CallState& call) {
  auto set = [&](const char* key, int64_t value) {
    StmtUse use(stmts_->meta_set);
    use.Bind(1, key);
    use.Bind(2, value);
    return use.Run();
  };
  for (Tier t : kTiers) {
    const size_t i = TierIndex(t);
    if (sealed_[i] != call.sealed_before[i])
      if (Status s = set(TierWatermarkKey(t), sealed_[i]); !s.ok()) return s;
  }
  // The counters in memory move only here, just before the commit; a failed
  // commit reloads them (RebuildOpenBuckets).
  raw_samples_ += call.records;
  rollup_rows_ += call.rollup_rows_new;
  tallies_ += call.tallies_new;
  if (call.records > 0)
    if (Status s = set("raw_samples", static_cast<int64_t>(raw_samples_)); !s.ok()) return s;
  if (call.rollup_rows_new > 0)
    if (Status s = set("rollup_rows", static_cast<int64_t>(rollup_rows_)); !s.ok()) return s;
  if (call.tallies_new > 0)
    if (Status s = set("tallies", static_cast<int64_t>(tallies_)); !s.ok()) return s;
  return OkStatus();
}

Result<QueryResult> SqliteStore::Query(const QuerySpec& spec) {
  if (Status s = ValidateDimensions(spec.group_by, spec.filters); !s.ok()) return s;
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  AggSpec agg;
  agg.group_by = spec.group_by;
  agg.filters = spec.filters;
  agg.from_us = spec.from_us;
  agg.to_us = spec.to_us;
  agg.bucket_s = BucketSeconds(spec.bucket);
  Result<Aggregation> result = session.Aggregate(agg);
  if (!result.ok()) return result.status();
  return ToQueryResult(std::move(*result), spec);
}

Result<std::vector<ServiceEfficiency>> SqliteStore::Efficiency(const EfficiencySpec& spec) {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  return ComputeEfficiency(session, spec);
}

Result<std::vector<DeployEntry>> SqliteStore::Deploys(const std::string& service) {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  ReadConn& c = session.conn();
  StmtUse use(service.empty() ? c.deploys_all : c.deploys_service);
  if (!service.empty()) use.Bind(1, service);
  std::vector<DeployEntry> out;
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    DeployEntry e;
    e.service = u.Text(0);
    e.cluster = u.Text(1);
    e.commit = u.Text(2);
    e.first_seen_us = u.Int64(3);
    e.last_seen_us = u.Int64(4);
    e.samples = static_cast<uint64_t>(u.Int64(5));
    out.push_back(std::move(e));
    return OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

Result<profile::CallTree> SqliteStore::FunctionTree(const FunctionQuery& query) {
  if (Status s = Checkpoint(); !s.ok()) return s;
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  Db& db = session.conn().db;
  const auto [lo, hi] = HourBuckets(query.from_us, query.to_us);
  // The slice's all-requests slices (?6: of one unit, or any when NULL).
  static constexpr const char* kSlices =
      " slice IN (SELECT id FROM profile_slices WHERE flag = '' AND (?3 IS NULL OR service = ?3)"
      " AND (?4 IS NULL OR endpoint = ?4) AND (?5 IS NULL OR commit_id = ?5)"
      " AND (?6 IS NULL OR unit = ?6))";
  auto bind = [&](StmtUse& use) {
    use.Bind(1, lo);
    use.Bind(2, hi);
    BindOptional(use, 3, query.service);
    BindOptional(use, 4, query.endpoint);
    BindOptional(use, 5, query.commit);
  };

  std::vector<std::pair<std::string, int64_t>> units;  // unit -> profiled requests
  {
    Result<Stmt> st = db.Prepare(
        std::string("SELECT s.unit, sum(r.requests) FROM profile_requests r JOIN profile_slices s"
                    " ON s.id = r.slice WHERE r.bucket >= ?1 AND r.bucket < ?2 AND r.") +
        kSlices + " GROUP BY s.unit ORDER BY s.unit");
    if (!st.ok()) return st.status();
    StmtUse use(*st);
    bind(use);
    use.BindNull(6);
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      units.emplace_back(std::string(u.Text(0)), u.Int64(1));
      return OkStatus();
    });
    if (!s.ok()) return s;
  }
  if (units.empty()) {
    profile::CallTree empty("", "store", "exact");
    empty.set_requests(0);
    return empty;
  }
  if (units.size() > 1) {
    std::string names;
    for (const auto& [unit, n] : units) names += (names.empty() ? "" : ", ") + unit;
    return InvalidArgument("the slice holds profiles in several units (" + names +
                           "); narrow it by service, endpoint or commit to one unit");
  }

  // The sums per path id, then every path's ancestors from call_paths.
  struct PathNode {
    int64_t parent = 0, function = 0;
    uint64_t calls = 0, primitive_calls = 0, self_cost = 0, total_cost = 0;
    std::vector<int64_t> children;
  };
  std::unordered_map<int64_t, PathNode> paths;
  {
    Result<Stmt> st = db.Prepare(
        std::string("SELECT path, sum(calls), sum(primitive_calls), sum(self_cost),"
                    " sum(total_cost) FROM path_costs WHERE bucket >= ?1 AND bucket < ?2 AND") +
        kSlices + " GROUP BY path");
    if (!st.ok()) return st.status();
    StmtUse use(*st);
    bind(use);
    use.Bind(6, std::string_view(units[0].first));
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      PathNode& n = paths[u.Int64(0)];
      n.calls = static_cast<uint64_t>(u.Int64(1));
      n.primitive_calls = static_cast<uint64_t>(u.Int64(2));
      n.self_cost = static_cast<uint64_t>(u.Int64(3));
      n.total_cost = static_cast<uint64_t>(u.Int64(4));
      return OkStatus();
    });
    if (!s.ok()) return s;
  }
  std::unordered_map<int64_t, std::string> keys;  // function id -> key
  {
    Result<Stmt> path_st = db.Prepare("SELECT parent, function FROM call_paths WHERE id = ?1");
    if (!path_st.ok()) return path_st.status();
    Result<Stmt> key_st = db.Prepare("SELECT key FROM functions WHERE id = ?1");
    if (!key_st.ok()) return key_st.status();
    std::vector<int64_t> todo;
    todo.reserve(paths.size());
    for (const auto& [id, n] : paths) todo.push_back(id);
    while (!todo.empty()) {
      const int64_t id = todo.back();
      todo.pop_back();
      if (paths.size() > record::kMaxProfileNodes)
        return InvalidArgument("the slice has more than " +
                               std::to_string(record::kMaxProfileNodes) +
                               " call paths; narrow it by time, service, endpoint or commit");
      StmtUse use(*path_st);
      use.Bind(1, id);
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) return IoError("corrupt store: call path " + std::to_string(id) + " is missing");
      const int64_t parent = use.Int64(0), function = use.Int64(1);
      PathNode& n = paths[id];
      n.parent = parent;
      n.function = function;
      if (parent != 0) {
        auto [it, added] = paths.try_emplace(parent);
        if (added) todo.push_back(parent);
        it->second.children.push_back(id);
      }
      if (keys.count(function) == 0) {
        StmtUse k(*key_st);
        k.Bind(1, function);
        Result<bool> krow = k.Step();
        if (!krow.ok()) return krow.status();
        if (!*krow)
          return IoError("corrupt store: function " + std::to_string(function) + " is missing");
        keys.emplace(function, std::string(k.Text(0)));
      }
    }
  }

  // The tree, as a record::Profile, in the order of the paths' text (siblings
  // by function key, each followed by its subtree): the order schema version 3
  // gave, so every answer built on node order stays the same.
  record::Profile p;
  p.set_unit(units[0].first);
  p.set_source("store");
  p.set_mode("exact");
  p.set_requests(static_cast<uint64_t>(units[0].second));
  p.add_nodes();  // the root
  std::vector<int64_t> roots;
  for (const auto& [id, n] : paths)
    if (n.parent == 0) roots.push_back(id);
  auto by_key = [&](int64_t a, int64_t b) {
    return keys.at(paths.at(a).function) < keys.at(paths.at(b).function);
  };
  std::unordered_map<int64_t, uint32_t> function_index;  // function id -> index in p
  // (path id, its node's parent index), depth first.
  std::vector<std::pair<int64_t, uint32_t>> stack;
  std::sort(roots.begin(), roots.end(), by_key);
  for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack.emplace_back(*it, 0);
  while (!stack.empty()) {
    const auto [id, parent_index] = stack.back();
    stack.pop_back();
    PathNode& n = paths.at(id);
    auto [fit, added] =
        function_index.try_emplace(n.function, static_cast<uint32_t>(p.functions_size()));
    if (added) {
      Result<profile::Function> f = profile::ParseFunctionKey(keys.at(n.function));
      if (!f.ok()) return IoError("stored " + f.status().message());
      record::ProfileFunction* pf = p.add_functions();
      pf->set_file(f->file);
      pf->set_line(f->line);
      pf->set_name(f->name);
    }
    const auto index = static_cast<uint32_t>(p.nodes_size());
    record::ProfileNode* node = p.add_nodes();
    node->set_parent(parent_index);
    node->set_function(fit->second);
    node->set_calls(n.calls);
    node->set_primitive_calls(n.primitive_calls);
    node->set_self_cost(n.self_cost);
    node->set_total_cost(n.total_cost);
    std::sort(n.children.begin(), n.children.end(), by_key);
    for (auto it = n.children.rbegin(); it != n.children.rend(); ++it)
      stack.emplace_back(*it, index);
  }
  Result<profile::CallTree> tree = profile::CallTree::FromProto(p);
  if (!tree.ok())
    return InvalidArgument("cannot rebuild the slice's call tree (narrow it): " +
                           tree.status().message());
  return tree;
}

Result<FunctionReport> SqliteStore::Functions(const FunctionQuery& query) {
  Result<profile::CallTree> tree = FunctionTree(query);
  if (!tree.ok()) return tree.status();
  if (tree->requests() == 0) return FunctionReport{};
  return ReportFromTree(*tree, query);
}

Result<uint64_t> SqliteStore::ApplyRetention(int64_t now_us) {
  std::lock_guard lock(write_mu_);
  // Pending sums of hours past retention would otherwise come back later.
  if (Status s = CheckpointProfilesLocked(); !s.ok()) return s;
  Txn txn(writer_);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  Result<uint64_t> raw = DeleteRawSamples(now_us - options_.raw_retention_us);
  if (!raw.ok()) return raw.status();
  if (Status s = DeleteProfiles(now_us - options_.profile_retention_us); !s.ok()) return s;
  Result<uint64_t> tallies = DeleteTallies(now_us - options_.tally_retention_us);
  if (!tallies.ok()) return tallies.status();
  const uint64_t raw_left = raw_samples_ >= *raw ? raw_samples_ - *raw : 0;
  const uint64_t tallies_left = tallies_ >= *tallies ? tallies_ - *tallies : 0;
  auto set = [&](const char* key, uint64_t value) {
    StmtUse use(stmts_->meta_set);
    use.Bind(1, key);
    use.Bind(2, static_cast<int64_t>(value));
    return use.Run();
  };
  if (*raw > 0)
    if (Status s = set("raw_samples", raw_left); !s.ok()) return s;
  if (*tallies > 0)
    if (Status s = set("tallies", tallies_left); !s.ok()) return s;
  if (Status s = txn.Commit(); !s.ok()) return s;
  raw_samples_ = raw_left;
  tallies_ = tallies_left;
  return *raw;
}

// DeleteRawSamples(): never past the minute seal point: later samples are the
// only copy of the open buckets.
Result<uint64_t> SqliteStore::DeleteRawSamples(int64_t before_us) {
  const int64_t cutoff_us = std::min(before_us, sealed_[TierIndex(Tier::kMinute)] * kUs);
  if (cutoff_us <= 0) return uint64_t{0};
  const int64_t whole_minutes_before = FloorTo(cutoff_us, 60 * kUs) / kUs;
  uint64_t deleted = 0;
  {
    Result<Stmt> count =
        writer_.Prepare("SELECT coalesce(sum(samples), 0) FROM raw_chunks WHERE minute < ?1");
    if (!count.ok()) return count.status();
    StmtUse use(*count);
    use.Bind(1, whole_minutes_before);
    Result<bool> row = use.Step();
    if (!row.ok()) return row.status();
    deleted = static_cast<uint64_t>(use.Int64(0));
  }
  {
    Result<Stmt> del = writer_.Prepare("DELETE FROM raw_chunks WHERE minute < ?1");
    if (!del.ok()) return del.status();
    StmtUse use(*del);
    use.Bind(1, whole_minutes_before);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  // The minute the cutoff falls in: keep the samples at or after it.
  if (cutoff_us % (60 * kUs) == 0) return deleted;
  struct Rewrite {
    int64_t id;
    std::string data;  // empty: delete the chunk
    size_t samples;
  };
  std::vector<Rewrite> rewrites;
  {
    Result<Stmt> sel = writer_.Prepare("SELECT id, data FROM raw_chunks WHERE minute = ?1");
    if (!sel.ok()) return sel.status();
    StmtUse use(*sel);
    use.Bind(1, whole_minutes_before);
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      ChunkWriter kept(whole_minutes_before);
      size_t dropped = 0;
      Status ds = ForEachSample(u.Blob(1), whole_minutes_before, [&](const Sample& sample) {
        if (sample.start_us < cutoff_us)
          ++dropped;
        else
          kept.Add(sample);
      });
      if (!ds.ok()) return ds;
      if (dropped == 0) return OkStatus();
      deleted += dropped;
      rewrites.push_back({u.Int64(0),
                          kept.samples() == 0 ? std::string() : std::string(kept.Finish()),
                          kept.samples()});
      return OkStatus();
    });
    if (!s.ok()) return s;
  }
  Result<Stmt> upd = writer_.Prepare("UPDATE raw_chunks SET data = ?2, samples = ?3 WHERE id = ?1");
  if (!upd.ok()) return upd.status();
  Result<Stmt> del = writer_.Prepare("DELETE FROM raw_chunks WHERE id = ?1");
  if (!del.ok()) return del.status();
  for (const Rewrite& r : rewrites) {
    StmtUse use(r.samples == 0 ? *del : *upd);
    use.Bind(1, r.id);
    if (r.samples > 0) {
      use.BindBlob(2, r.data);
      use.Bind(3, static_cast<int64_t>(r.samples));
    }
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return deleted;
}

// DeleteProfiles(): whole hours only, so a kept hour keeps all its profiles
// and moments and their request counts agree. The interned ids stay: they
// are bounded by the code base, not by time.
Status SqliteStore::DeleteProfiles(int64_t before_us) {
  if (before_us <= 0) return OkStatus();
  const int64_t before_hour = FloorTo(before_us, 3600 * kUs) / kUs;
  for (const char* table : {"path_costs", "function_moments", "profile_requests"}) {
    Result<Stmt> del = writer_.Prepare(std::string("DELETE FROM ") + table + " WHERE bucket < ?1");
    if (!del.ok()) return del.status();
    StmtUse use(*del);
    use.Bind(1, before_hour);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return OkStatus();
}

// DeleteTallies(): whole minutes, both tally tables. RETURNS: the `tallies`
// rows deleted (the Stats() counter).
Result<uint64_t> SqliteStore::DeleteTallies(int64_t before_us) {
  if (before_us <= 0) return uint64_t{0};
  const int64_t before_minute = FloorTo(before_us, 60 * kUs) / kUs;
  Result<Stmt> count = writer_.Prepare("SELECT count(*) FROM tallies WHERE minute < ?1");
  if (!count.ok()) return count.status();
  uint64_t deleted = 0;
  {
    StmtUse use(*count);
    use.Bind(1, before_minute);
    Result<bool> row = use.Step();
    if (!row.ok()) return row.status();
    deleted = static_cast<uint64_t>(use.Int64(0));
  }
  for (const char* table : {"tallies", "tally_endpoints"}) {
    Result<Stmt> del = writer_.Prepare(std::string("DELETE FROM ") + table + " WHERE minute < ?1");
    if (!del.ok()) return del.status();
    StmtUse use(*del);
    use.Bind(1, before_minute);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return deleted;
}

Result<StoreStats> SqliteStore::Stats() {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  StoreStats stats;
  stats.raw_samples = static_cast<uint64_t>(session.meta("raw_samples"));
  stats.rollup_rows = static_cast<uint64_t>(session.meta("rollup_rows"));
  stats.tallies = static_cast<uint64_t>(session.meta("tallies"));
  stats.folded_values = guard_.Folded();
  Result<int64_t> pages = session.conn().db.QueryInt64("PRAGMA page_count");
  if (!pages.ok()) return pages.status();
  Result<int64_t> page_size = session.conn().db.QueryInt64("PRAGMA page_size");
  if (!page_size.ok()) return page_size.status();
  stats.file_bytes = static_cast<uint64_t>(*pages * *page_size);
  std::error_code ec;
  const auto wal = std::filesystem::file_size(options_.path + "-wal", ec);
  if (!ec) stats.file_bytes += wal;
  return stats;
}

Result<Watermarks> SqliteStore::SealPoints() {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  return session.sealed();
}

}  // namespace cpuledger::store::sqlite
