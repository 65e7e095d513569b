// SqliteStore::AppendBatches() and its phases: one transaction per call that
// stores the raw samples, seals and merges rollup rows, tallies, the deploy
// log, the profile delta and the applied (sender, sequence) pairs.
#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "record/hll.h"
#include "store/sqlite/raw_chunk.h"
#include "store/sqlite/sqlite_store.h"
#include "store/sqlite/sqlite_store_internal.h"

namespace cpuledger::store::sqlite {
namespace {

int64_t WallClockUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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
  std::vector<double> self_scratch;  // SelfByFunction()'s answer
  FunctionIds batch_functions;       // the ids of the batch's function table
  FunctionIds own_functions;         // of a profile's own table
  // Function codes: per (group, function id) the newest hash noted, the
  // (group, hour) each table entry was noted for last (NoteCodes), and the
  // rows WriteFunctionCodes() wrote: (group, function id, what).
  PairMap<CodeSeen> codes;
  std::vector<std::pair<int64_t, int64_t>> batch_code_marks, own_code_marks;
  std::vector<std::tuple<int64_t, int64_t, CodeSeen>> codes_written;
  record::RequestRecord guarded;                       // a record with values folded
  std::set<std::string> senders;                       // senders to prune
  std::set<std::pair<std::string, uint64_t>> applied;  // (sender, sequence) in this call
  uint64_t records = 0, tallies_new = 0, rollup_rows_new = 0;
  // Route()'s cache: the open minute bucket of the previous sample.
  int64_t cached_minute = INT64_MIN;
  std::unordered_map<int64_t, RollupAcc>* cached_bucket = nullptr;
  RollupBlobs blobs;  // scratch for BindRollup
};

Result<std::vector<AppendOutcome>> SqliteStore::AppendBatches(
    std::span<const record::Batch* const> batches) {
  std::lock_guard lock(write_mu_);
  if (needs_rebuild_) {
    if (Status s = RebuildOpenBuckets(); !s.ok()) return s;
  }
  shapes_.TrimToBound();
  if (codes_stored_.size() > kMaxCodesKept || code_group_names_.size() > kMaxCodesKept) {
    codes_stored_.Clear();  // what the file holds is written again, once
    code_groups_.clear();
    code_group_names_.clear();
  }
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
  if (Status s = WriteFunctionCodes(call); !s.ok()) return s;
  call.profiles.Fold();
  if (Status s = WriteProfileDelta(call.profiles.rows); !s.ok()) return s;
  if (Status s = PruneApplied(call); !s.ok()) return s;
  if (Status s = WriteMeta(call); !s.ok()) return s;
  if (Status s = txn.Commit(); !s.ok()) return s;
  RememberFunctionCodes(call);
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
  call.batch_code_marks.assign(static_cast<size_t>(batch.functions_size()), {-1, 0});
  for (int r = 0; r < batch.records_size(); ++r) {
    // Checked once, where the batch crossed into the server (DecodeBatch).
    const record::RequestRecord* stored = &batch.records(r);
    // A record of a known series has only known values; a new series may
    // bring a value past its dimension's cap.
    int64_t series = interner_.Find(*stored);
    if (series == 0) {
      stored = &guard_.Guard(*stored, &call.guarded);
      series = interner_.Intern(*stored);
    }
    const record::RequestRecord& rec = *stored;
    const StoredRecord sample = StoredFromRecord(rec, series);
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
void SqliteStore::Route(const StoredRecord& s, CallState& call) {
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

// AddProfile(): the record's profile adds to its slice of all requests and
// to the slice of each of its flags' values (so a flame graph or a diff can
// be drawn for flag F = v): every node to its call path's sums, found through
// the profile's shape, and the request's self cost per function to the
// moments.
Status SqliteStore::AddProfile(const record::RequestRecord& rec, CallState& call) {
  const record::Profile& p = rec.profile();
  FunctionIds* functions = &call.batch_functions;
  std::vector<std::pair<int64_t, int64_t>>* marks = &call.batch_code_marks;
  if (!p.functions_in_batch()) {
    functions = &call.own_functions;
    functions->Reset(&p.functions());
    marks = &call.own_code_marks;
    marks->assign(static_cast<size_t>(p.functions_size()), {-1, 0});
  }
  Result<const ProfileShape*> shape = shapes_.Find(p, *functions, profile_ids_);
  if (!shape.ok()) return shape.status();
  const int64_t hour = FloorTo(rec.start_time_unix_us(), 3600 * kUs) / kUs;
  NoteCodes(rec, hour, *functions, *marks, call);
  SelfByFunction(p, **shape, call.self_scratch);
  AddToSlice(rec, hour, **shape, "", "", /*with_paths=*/true, call);
  const std::optional<std::set<std::string>>& profiled = options_.profile_flags;
  for (const auto& [flag, value] : rec.flags())
    AddToSlice(rec, hour, **shape, flag, value, !profiled || profiled->count(flag) > 0, call);
  return OkStatus();
}

// SelfByFunction(): the profile's self cost per function of its shape.
// Functions that share a key (a profile may list one twice) are one function
// of the shape, so a request's cost of a function is one observation.
void SqliteStore::SelfByFunction(const record::Profile& p, const ProfileShape& shape,
                                 std::vector<double>& self) {
  self.assign(shape.functions.size(), 0.0);
  for (int i = 1; i < p.nodes_size(); ++i)
    self[shape.node_function[static_cast<size_t>(i)]] +=
        static_cast<double>(p.nodes(i).self_cost());
}

// AddToSlice(): the record's profiled requests, function moments
// (call.self_scratch, from SelfByFunction()) and, `with_paths`, call-path
// sums added to one slice.
void SqliteStore::AddToSlice(const record::RequestRecord& rec, int64_t hour,
                             const ProfileShape& shape, const std::string& flag,
                             const std::string& value, bool with_paths, CallState& call) {
  const record::Profile& p = rec.profile();
  ProfileSums& sums = call.profiles;
  const int64_t slot =
      sums.rows.SlotOf(hour, profile_ids_.Slice(SliceKey(rec.service(), rec.endpoint(),
                                                         rec.commit(), p.unit(), flag, value)));
  sums.rows.slots[static_cast<size_t>(slot)].requests += p.requests() == 0 ? 1 : p.requests();
  if (with_paths) {
    std::vector<ProfileSums::Path>& nodes = ProfileSums::SumsOf(
        sums.path_sums_of, sums.path_sums, slot, shape, static_cast<size_t>(p.nodes_size()));
    for (int i = 1; i < p.nodes_size(); ++i) {
      const record::ProfileNode& n = p.nodes(i);
      nodes[static_cast<size_t>(i)] +=
          ProfileSums::Path{n.calls(), n.primitive_calls(), n.self_cost(), n.total_cost()};
    }
  }
  const std::vector<double>& self = call.self_scratch;
  double total = 0;
  for (double cost : self) total += cost;
  std::vector<ProfileSums::Moments>& moments = ProfileSums::SumsOf(
      sums.moment_sums_of, sums.moment_sums, slot, shape, shape.functions.size());
  for (size_t f = 0; f < self.size(); ++f) {
    const double cost = self[f];
    if (cost == 0) continue;
    const double share = cost / total;  // total >= cost > 0
    moments[f] += ProfileSums::Moments{cost, cost * cost, share, share * share};
  }
}

int64_t SqliteStore::CodeGroup(std::string_view service, std::string_view commit) {
  auto by_service = code_groups_.find(service);
  if (by_service == code_groups_.end())
    by_service =
        code_groups_.emplace(std::string(service), std::map<std::string, int64_t, std::less<>>())
            .first;
  auto it = by_service->second.find(commit);
  if (it != by_service->second.end()) return it->second;
  const auto id = static_cast<int64_t>(code_group_names_.size());
  by_service->second.emplace(std::string(commit), id);
  code_group_names_.emplace_back(service, commit);
  return id;
}

// NoteCodes(): a batch's profiles name the same table entries over and over;
// an entry already noted for the record's (service, commit) at this hour or
// later is skipped with one array check, so the hash lookups are per distinct
// function, (service, commit) and hour of the call. The nodes (not the whole
// table) say which entries are the record's: a batch's table holds the
// functions of every commit in it.
void SqliteStore::NoteCodes(const record::RequestRecord& rec, int64_t hour, FunctionIds& functions,
                            std::vector<std::pair<int64_t, int64_t>>& marks, CallState& call) {
  const record::Profile& p = rec.profile();
  const FunctionIds::Table& table = functions.table();
  const int64_t group = CodeGroup(rec.service(), rec.commit());
  for (int i = 1; i < p.nodes_size(); ++i) {
    const uint32_t entry = p.nodes(i).function();  // in range: validated
    std::pair<int64_t, int64_t>& mark = marks[entry];
    if (mark.first == group && mark.second >= hour) continue;
    mark = {group, hour};
    const uint64_t hash = table.Get(static_cast<int>(entry)).code_hash();
    if (hash == 0) continue;  // unknown: a builtin, or an older sender
    auto [seen, added] = call.codes.TryEmplace(group, functions.Of(entry, profile_ids_));
    if (added || hour >= seen->hour) *seen = {hash, hour};
  }
}

// WriteFunctionCodes(): one upsert per noted row the file does not hold yet,
// in key order (the B-tree is walked forward).
Status SqliteStore::WriteFunctionCodes(CallState& call) {
  std::vector<std::tuple<int64_t, int64_t, CodeSeen>>& rows = call.codes_written;
  call.codes.ForEach([&](int64_t group, int64_t function, const CodeSeen& c) {
    const CodeSeen* have = codes_stored_.Find(group, function);
    if (have != nullptr && (c.hour < have->hour || (c.hour == have->hour && c.hash == have->hash)))
      return;  // the upsert would change nothing
    rows.emplace_back(group, function, c);
  });
  auto names = [&](int64_t group) -> const std::pair<std::string, std::string>& {
    return code_group_names_[static_cast<size_t>(group)];
  };
  std::sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
    return std::tie(names(std::get<0>(a)), std::get<1>(a)) <
           std::tie(names(std::get<0>(b)), std::get<1>(b));
  });
  for (const auto& [group, function, c] : rows) {
    StmtUse use(stmts_->function_code_upsert);
    use.Bind(1, std::string_view(names(group).first));
    use.Bind(2, std::string_view(names(group).second));
    use.Bind(3, function);
    use.Bind(4, static_cast<int64_t>(c.hash));  // the same 64 bits
    use.Bind(5, c.hour);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return OkStatus();
}

// RememberFunctionCodes(): after the commit. Every row written was at least
// as new as the one remembered, so it is what the file holds now.
void SqliteStore::RememberFunctionCodes(const CallState& call) {
  for (const auto& [group, function, c] : call.codes_written)
    *codes_stored_.TryEmplace(group, function).first = c;
}

Status SqliteStore::StoreTally(const record::WorkerTally& tally, CallState& call) {
  WriterStatements& w = *stmts_;
  const int64_t minute = FloorTo(tally.minute_unix(), 60);
  for (const record::EndpointCount& e : tally.endpoints()) {
    StmtUse use(w.tally_endpoint);
    use.Bind(1, tally.service());
    use.Bind(2, minute);
    use.Bind(3, tally.host());
    use.Bind(4, tally.sender());
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
    get.Bind(4, tally.sender());
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
  put.Bind(4, tally.sender());
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

}  // namespace cpuledger::store::sqlite
