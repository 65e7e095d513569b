#include "store/sqlite/reader.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

#include "store/efficiency.h"
#include "store/sqlite/raw_chunk.h"
#include "store/sqlite/schema.h"

namespace cpuledger::store::sqlite {
namespace {

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kMinuteUs = 60 * kUs;
// Times are clamped to [0, kMaxUs) so that rounding never overflows; 2^62 us
// is about the year 148,000.
constexpr int64_t kMaxUs = int64_t{1} << 62;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- planning ----

struct TierRange {
  Tier tier;
  int64_t from_s, to_s;  // bucket starts in [from_s, to_s)
};

struct Plan {
  std::vector<TierRange> tiers;
  std::vector<std::pair<int64_t, int64_t>> raw;  // [from_us, to_us)
};

// MakePlan() — covers [from_us, to_us) with whole sealed day, then hour, then
// minute buckets where `rollups` allows, and raw ranges for what is left;
// hours and days from the coarse tiers when `coarse`.
Plan MakePlan(int64_t from_us, int64_t to_us, const TierSealPoints& sealed, bool rollups,
              bool coarse, int64_t bucket_s) {
  Plan plan;
  std::vector<std::pair<int64_t, int64_t>> segments{{from_us, to_us}};
  if (rollups) {
    for (Tier tier : {Tier::kDay, Tier::kHour, Tier::kMinute}) {
      const int64_t size_s = TierSeconds(tier);
      // A tier row must fall inside one output bucket.
      if (bucket_s != 0 && size_s > bucket_s) continue;
      const int64_t size = size_s * kUs;
      const int64_t sealed_us = sealed[static_cast<size_t>(tier)] * kUs;
      std::vector<std::pair<int64_t, int64_t>> rest;
      for (auto [lo, hi] : segments) {
        const int64_t a = CeilTo(lo, size);
        const int64_t b = FloorTo(std::min(hi, sealed_us), size);
        if (a < b) {
          const Tier table = coarse && tier != Tier::kMinute ? CoarseTier(tier) : tier;
          plan.tiers.push_back({table, a / kUs, b / kUs});
          if (lo < a) rest.emplace_back(lo, a);
          if (b < hi) rest.emplace_back(b, hi);
        } else {
          rest.emplace_back(lo, hi);
        }
      }
      segments = std::move(rest);
    }
  }
  plan.raw = std::move(segments);
  return plan;
}

// ---- aggregation ----

struct DimFilter {
  DimensionRef dim;
  std::vector<std::string> values;  // OR
};

bool Contains(const std::vector<std::string>& values, std::string_view v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

void PackPart(std::string* key, std::string_view part) {
  const uint32_t n = static_cast<uint32_t>(part.size());
  key->append(reinterpret_cast<const char*>(&n), sizeof n);
  key->append(part);
}

struct CellKey {
  int32_t group;
  int64_t bucket_us;
  bool operator==(const CellKey&) const = default;
};
struct CellKeyHash {
  size_t operator()(const CellKey& k) const {
    return static_cast<size_t>(static_cast<uint64_t>(k.bucket_us) * 1'000'003u +
                               static_cast<uint32_t>(k.group));
  }
};

// Aggregator — folds rollup rows and samples into cells (group x bucket).
class Aggregator {
 public:
  Aggregator(const AggSpec& spec, const SeriesCatalog& catalog) : spec_(spec), catalog_(catalog) {
    for (const Filter& f : spec.filters) {
      if (f.dim.dim == Dimension::kUser) {
        has_user_filter_ = true;
        user_values_.push_back(f.value);
        continue;
      }
      auto it = std::find_if(series_filters_.begin(), series_filters_.end(),
                             [&](const DimFilter& d) { return d.dim == f.dim; });
      if (it == series_filters_.end()) {
        series_filters_.push_back({f.dim, {}});
        it = series_filters_.end() - 1;
      }
      it->values.push_back(f.value);
    }
    for (const DimensionRef& d : spec.group_by) user_grouping_ |= d.dim == Dimension::kUser;
    memo_.assign(static_cast<size_t>(catalog.next_id()), kUnknown);
  }

  // AddRollupRow() — a row of SelectSql(): bucket, series, values.
  Status AddRollupRow(const StmtUse& use) {
    Result<int32_t> slot = Slot(use.Int64(1));
    if (!slot.ok()) return slot.status();
    if (*slot < 0) return OkStatus();
    const size_t cell = Cell(*slot, BucketOf(use.Int64(0) * kUs));
    return ReadRollup(use, spec_.histograms, &cells_[cell].acc);
  }

  // AddSample() — REQUIRES: the sample is inside the range being read.
  Status AddSample(const StoredRecord& s) {
    Result<int32_t> slot = Slot(s.series);
    if (!slot.ok()) return slot.status();
    if (*slot < 0) return OkStatus();
    if (has_user_filter_ && !Contains(user_values_, s.user)) return OkStatus();
    const int32_t group = user_grouping_ ? UserGroup(*slot, s.user) : *slot;
    cells_[Cell(group, BucketOf(s.start_us))].acc.Add(s, spec_.histograms);
    return OkStatus();
  }

  std::vector<AggGroup> Finish() { return std::move(cells_); }

 private:
  static constexpr int32_t kUnknown = -2;
  static constexpr int32_t kExcluded = -1;

  int64_t BucketOf(int64_t start_us) const {
    return spec_.bucket_s == 0 ? 0 : FloorTo(start_us, spec_.bucket_s * kUs);
  }

  // Slot() — the series' group (its keys without users), kExcluded when a
  // filter rejects it. Computed once per series per query.
  Result<int32_t> Slot(int64_t series) {
    if (series < 0) return IoError("corrupt store: negative series id");
    if (static_cast<size_t>(series) >= memo_.size())
      memo_.resize(static_cast<size_t>(series) + 1, kUnknown);
    int32_t& m = memo_[static_cast<size_t>(series)];
    if (m != kUnknown) return m;
    const SeriesInfo* info = catalog_.Get(series);
    if (info == nullptr)
      return IoError("corrupt store: series " + std::to_string(series) + " is not in `series`");
    for (const DimFilter& f : series_filters_)
      if (!Contains(f.values, info->Value(f.dim))) return m = kExcluded;
    key_.clear();
    std::vector<std::string> keys;
    keys.reserve(spec_.group_by.size());
    for (const DimensionRef& d : spec_.group_by) {
      std::string_view v = d.dim == Dimension::kUser ? std::string_view() : info->Value(d);
      keys.emplace_back(v);
      PackPart(&key_, v);
    }
    auto [it, inserted] = slot_index_.try_emplace(key_, static_cast<int32_t>(slot_keys_.size()));
    if (inserted) slot_keys_.push_back(std::move(keys));
    return m = it->second;
  }

  // UserGroup() — the group of (slot, user) when grouping by user.
  int32_t UserGroup(int32_t slot, std::string_view user) {
    key_.assign(reinterpret_cast<const char*>(&slot), sizeof slot);
    key_.append(user);
    auto [it, inserted] = user_groups_.try_emplace(key_, static_cast<int32_t>(group_keys_.size()));
    if (inserted) {
      std::vector<std::string> keys = slot_keys_[static_cast<size_t>(slot)];
      for (size_t i = 0; i < spec_.group_by.size(); ++i)
        if (spec_.group_by[i].dim == Dimension::kUser) keys[i] = std::string(user);
      group_keys_.push_back(std::move(keys));
    }
    return it->second;
  }

  const std::vector<std::string>& KeysOf(int32_t group) const {
    return user_grouping_ ? group_keys_[static_cast<size_t>(group)]
                          : slot_keys_[static_cast<size_t>(group)];
  }

  size_t Cell(int32_t group, int64_t bucket_us) {
    if (spec_.bucket_s == 0) {
      if (static_cast<size_t>(group) >= cell_of_group_.size())
        cell_of_group_.resize(static_cast<size_t>(group) + 1, -1);
      int64_t& c = cell_of_group_[static_cast<size_t>(group)];
      if (c < 0) c = NewCell(group, 0);
      return static_cast<size_t>(c);
    }
    auto [it, inserted] = cell_index_.try_emplace(CellKey{group, bucket_us}, 0);
    if (inserted) it->second = static_cast<size_t>(NewCell(group, bucket_us));
    return it->second;
  }

  int64_t NewCell(int32_t group, int64_t bucket_us) {
    cells_.push_back(AggGroup{KeysOf(group), bucket_us, {}});
    return static_cast<int64_t>(cells_.size()) - 1;
  }

  const AggSpec& spec_;
  const SeriesCatalog& catalog_;
  std::vector<DimFilter> series_filters_;
  bool has_user_filter_ = false;
  std::vector<std::string> user_values_;
  bool user_grouping_ = false;

  std::vector<int32_t> memo_;  // series id -> slot, kUnknown, kExcluded
  std::unordered_map<std::string, int32_t> slot_index_;
  std::vector<std::vector<std::string>> slot_keys_;
  std::unordered_map<std::string, int32_t> user_groups_;
  std::vector<std::vector<std::string>> group_keys_;             // when grouping by user
  std::vector<int64_t> cell_of_group_;                           // without buckets
  std::unordered_map<CellKey, size_t, CellKeyHash> cell_index_;  // with buckets
  std::vector<AggGroup> cells_;
  std::string key_;  // scratch
};

// ---- results ----

Distribution MakeDistribution(uint64_t n, double sum, double wsum, const LogHistogram& h) {
  Distribution d;
  d.n = n;
  if (n == 0) {
    d.mean = d.p50 = d.p90 = d.p99 = d.est_total = kNaN;
    return d;
  }
  d.mean = sum / static_cast<double>(n);
  d.est_total = wsum;
  d.p50 = h.Quantile(0.50);
  d.p90 = h.Quantile(0.90);
  d.p99 = h.Quantile(0.99);
  return d;
}

QueryRow MakeRow(AggGroup& g) {
  const RollupAcc& a = g.acc;
  QueryRow row;
  row.keys = std::move(g.keys);
  row.bucket_start_us = g.bucket_start_us;
  row.samples = a.samples;
  row.est_requests = a.weight;
  row.instructions = MakeDistribution(a.instr_n, a.instr_sum, a.instr_wsum, a.h_instr);
  row.cycles = MakeDistribution(a.cycles_n, a.cycles_sum, a.cycles_wsum, a.h_cycles);
  row.cpu_ns = MakeDistribution(a.samples, a.cpu_ns_sum, a.cpu_ns_wsum, a.h_cpu_ns);
  row.wall_us = MakeDistribution(a.samples, a.wall_us_sum, a.wall_us_wsum, a.h_wall_us);
  if (a.samples > 0) {
    const double n = static_cast<double>(a.samples);
    row.db_us_mean = a.db_us_sum / n;
    row.db_calls_mean = a.db_calls_sum / n;
    row.cache_us_mean = a.cache_us_sum / n;
    row.cache_calls_mean = a.cache_calls_sum / n;
  }
  return row;
}

}  // namespace

// ---- connections ----

Result<std::unique_ptr<ReadConn>> ReadConn::Open(const std::string& path) {
  Result<Db> db = Db::Open(path, /*read_only=*/false);
  if (!db.ok()) return db.status();
  auto conn = std::make_unique<ReadConn>();
  conn->db = std::move(*db);
  if (Status s = ConfigureConnection(conn->db, /*writer=*/false); !s.ok()) return s;
  auto prepare = [&](Stmt* st, const std::string& sql) -> Status {
    Result<Stmt> p = conn->db.Prepare(sql);
    if (!p.ok()) return p.status();
    *st = std::move(*p);
    return OkStatus();
  };
  Status s = prepare(&conn->meta, "SELECT key, value FROM meta");
  if (s.ok())
    s = prepare(&conn->series_since, std::string("SELECT ") + kSeriesColumns +
                                         " FROM series WHERE id >= ?1 ORDER BY id");
  for (Tier t : kAllTiers) {
    if (s.ok()) s = prepare(&conn->tier_rows[static_cast<size_t>(t)], SelectSql(t, true));
    if (s.ok()) s = prepare(&conn->tier_sums[static_cast<size_t>(t)], SelectSql(t, false));
  }
  if (s.ok())
    s = prepare(&conn->chunks,
                "SELECT minute, data FROM raw_chunks WHERE minute >= ?1 AND minute < ?2"
                " ORDER BY minute, id");
  if (s.ok())
    s = prepare(&conn->tally_requests,
                "SELECT minute, endpoint, sum(requests) FROM tally_endpoints"
                " WHERE service = ?1 AND minute >= ?2 AND minute < ?3 GROUP BY minute, endpoint");
  if (s.ok())
    s = prepare(&conn->tally_hll,
                "SELECT hll, hll_precision FROM tallies WHERE service = ?1 AND minute = ?2");
  if (s.ok())
    s = prepare(&conn->deploys_all,
                "SELECT service, cluster, commit_id, first_seen_us, last_seen_us, samples"
                " FROM deploys ORDER BY first_seen_us DESC, last_seen_us DESC, service, cluster,"
                " commit_id");
  if (s.ok())
    s = prepare(&conn->deploys_service,
                "SELECT service, cluster, commit_id, first_seen_us, last_seen_us, samples"
                " FROM deploys WHERE service = ?1 ORDER BY first_seen_us DESC,"
                " last_seen_us DESC, cluster, commit_id");
  if (!s.ok()) return s;
  return conn;
}

Result<ReaderPool::Lease> ReaderPool::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<ReadConn> conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
  }
  Result<std::unique_ptr<ReadConn>> conn = ReadConn::Open(path_);
  if (!conn.ok()) return conn.status();
  return Lease(this, std::move(*conn));
}

void ReaderPool::Release(std::unique_ptr<ReadConn> conn) {
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(conn));
}

// ---- sessions ----

Status ValidateDimensions(const std::vector<DimensionRef>& group_by,
                          const std::vector<Filter>& filters) {
  auto check = [](const DimensionRef& d) -> Status {
    if (d.dim == Dimension::kFlag && d.flag.empty())
      return InvalidArgument("a flag dimension needs a flag name (flag:NAME)");
    if (static_cast<uint8_t>(d.dim) > static_cast<uint8_t>(Dimension::kUser))
      return InvalidArgument("unknown dimension");
    return OkStatus();
  };
  for (const DimensionRef& d : group_by)
    if (Status s = check(d); !s.ok()) return s;
  for (const Filter& f : filters)
    if (Status s = check(f.dim); !s.ok()) return s;
  return OkStatus();
}

Status ReadSession::Begin() {
  Result<ReaderPool::Lease> lease = pool_.Acquire();
  if (!lease.ok()) return lease.status();
  lease_ = std::make_unique<ReaderPool::Lease>(std::move(*lease));
  ReadConn& c = conn();
  txn_ = std::make_unique<Txn>(c.db);
  if (Status s = txn_->Begin(Txn::kDeferred); !s.ok()) return s;

  // The first read fixes the snapshot; everything below is from it.
  {
    StmtUse use(c.meta);
    for (;;) {
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      meta_.emplace_back(std::string(use.Text(0)), use.Int64(1));
    }
  }
  for (Tier t : kTiers) sealed_[static_cast<size_t>(t)] = meta(TierWatermarkKey(t));

  // Series committed by the writer but not yet in the catalog.
  std::vector<SeriesInfo> fresh;
  {
    StmtUse use(c.series_since);
    use.Bind(1, catalog_.next_id());
    for (;;) {
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Result<SeriesInfo> info = SeriesFromRow(use);
      if (!info.ok()) return info.status();
      fresh.push_back(std::move(*info));
    }
  }
  if (!fresh.empty()) catalog_.Extend(std::move(fresh));
  return OkStatus();
}

int64_t ReadSession::meta(std::string_view key) const {
  for (const auto& [k, v] : meta_)
    if (k == key) return v;
  return 0;
}

Result<Aggregation> ReadSession::Aggregate(const AggSpec& spec) {
  if (Status s = ValidateDimensions(spec.group_by, spec.filters); !s.ok()) return s;
  Aggregation out;
  const int64_t from = std::clamp<int64_t>(spec.from_us, 0, kMaxUs);
  const int64_t to = std::clamp<int64_t>(spec.to_us, 0, kMaxUs);
  if (from >= to) return out;

  bool uses_user = false, uses_host = false;
  auto note = [&](const DimensionRef& d) {
    uses_user |= d.dim == Dimension::kUser;
    uses_host |=
        d.dim == Dimension::kHost || d.dim == Dimension::kCluster || d.dim == Dimension::kRegion;
  };
  for (const DimensionRef& d : spec.group_by) note(d);
  for (const Filter& f : spec.filters) note(f.dim);

  const Plan plan =
      MakePlan(from, to, sealed_, /*rollups=*/!uses_user, /*coarse=*/!uses_host, spec.bucket_s);
  Aggregator agg(spec, catalog_);
  ReadConn& c = conn();

  for (const TierRange& r : plan.tiers) {
    Stmt& st = spec.histograms ? c.tier_rows[static_cast<size_t>(r.tier)]
                               : c.tier_sums[static_cast<size_t>(r.tier)];
    StmtUse use(st);
    use.Bind(1, r.from_s);
    use.Bind(2, r.to_s);
    for (;;) {
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (Status s = agg.AddRollupRow(use); !s.ok()) return s;
    }
    out.used_rollups = true;
  }

  for (const auto& [lo, hi] : plan.raw) {
    StmtUse use(c.chunks);
    use.Bind(1, FloorTo(lo, kMinuteUs) / kUs);
    use.Bind(2, CeilTo(hi, kMinuteUs) / kUs);
    for (;;) {
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Status inner;
      Status s = ForEachSample(use.Blob(1), use.Int64(0), [&](const StoredRecord& sample) {
        if (!inner.ok() || sample.start_us < lo || sample.start_us >= hi) return;
        inner = agg.AddSample(sample);
      });
      if (!s.ok()) return s;
      if (!inner.ok()) return inner;
    }
  }
  out.groups = agg.Finish();
  return out;
}

// ---- Query results ----

QueryResult ToQueryResult(Aggregation agg, const QuerySpec& spec) {
  std::vector<QueryRow> rows;
  rows.reserve(agg.groups.size());
  for (AggGroup& g : agg.groups) rows.push_back(MakeRow(g));
  QueryResult result = RankQueryRows(std::move(rows), spec);
  result.used_rollups = agg.used_rollups;
  return result;
}

// ---- Efficiency ----

namespace {

EfficiencyCell CellOf(const RollupAcc& a) {
  return {a.samples, a.instr_n, a.weight, a.instr_weight, a.instr_wsum, a.cpu_ns_wsum};
}

// ActiveUsers() — `eff`'s peak minute's active users: the merged HyperLogLogs
// of its tallies, else (none) the distinct user keys of its samples.
Status ActiveUsers(ReadSession& session, ServiceEfficiency& eff) {
  ReadConn& c = session.conn();
  if (eff.from_tallies) {
    std::vector<HllSketch> sketches;
    StmtUse use(c.tally_hll);
    use.Bind(1, eff.service);
    use.Bind(2, eff.peak_minute_unix);
    for (;;) {
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (use.IsNull(0)) continue;
      sketches.push_back({std::string(use.Blob(0)), static_cast<int>(use.Int64(1))});
    }
    if (!sketches.empty()) {
      Result<double> users = MergedUsers(sketches);
      if (!users.ok()) return users.status();
      SetActiveUsers(*users, true, &eff);
      return OkStatus();
    }
  }
  // Distinct user keys of the peak minute's samples: an undercount.
  AggSpec users;
  users.group_by = {DimensionRef{Dimension::kUser, {}}};
  users.filters = {Filter{DimensionRef{Dimension::kService, {}}, eff.service}};
  users.from_us = eff.peak_minute_unix * kUs;
  users.to_us = users.from_us + kMinuteUs;
  users.histograms = false;
  Result<Aggregation> u = session.Aggregate(users);
  if (!u.ok()) return u.status();
  double n = 0;
  for (const AggGroup& g : u->groups)
    if (!g.keys[0].empty()) n += 1;
  SetActiveUsers(n, false, &eff);
  return OkStatus();
}

}  // namespace

Result<std::vector<ServiceEfficiency>> ComputeEfficiency(ReadSession& session,
                                                         const EfficiencySpec& spec) {
  std::vector<ServiceEfficiency> out;
  const auto [lo_s, hi_s] = EfficiencyMinutes(spec);
  if (lo_s >= hi_s) return out;

  AggSpec agg_spec;
  agg_spec.group_by = {DimensionRef{Dimension::kService, {}},
                       DimensionRef{Dimension::kEndpoint, {}}};
  if (!spec.service.empty())
    agg_spec.filters.push_back(Filter{DimensionRef{Dimension::kService, {}}, spec.service});
  agg_spec.from_us = lo_s * kUs;
  agg_spec.to_us = hi_s * kUs;
  agg_spec.bucket_s = 60;
  agg_spec.histograms = false;
  Result<Aggregation> agg = session.Aggregate(agg_spec);
  if (!agg.ok()) return agg.status();

  std::map<std::string, ServiceWindow> services;
  for (const AggGroup& g : agg->groups)
    services[g.keys[0]].samples[g.bucket_start_us / kUs][g.keys[1]] = CellOf(g.acc);

  ReadConn& c = session.conn();
  // Services with tallies but no samples count too.
  {
    Result<Stmt> st =
        c.db.Prepare("SELECT DISTINCT service FROM tallies WHERE minute >= ?1 AND minute < ?2");
    if (!st.ok()) return st.status();
    StmtUse use(*st);
    use.Bind(1, lo_s);
    use.Bind(2, hi_s);
    for (;;) {
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      std::string name(use.Text(0));
      if (spec.service.empty() || name == spec.service) services.try_emplace(name);
    }
  }

  for (auto& [service, window] : services) {
    // Tallies: minute -> endpoint -> unsampled requests.
    StmtUse use(c.tally_requests);
    use.Bind(1, service);
    use.Bind(2, lo_s);
    use.Bind(3, hi_s);
    for (;;) {
      Result<bool> row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      window.tallies[use.Int64(0)][std::string(use.Text(1))] += static_cast<double>(use.Int64(2));
    }
    ServiceEfficiency eff = PeakMinute(service, window);
    if (Status s = ActiveUsers(session, eff); !s.ok()) return s;
    out.push_back(std::move(eff));
  }
  return out;
}

}  // namespace cpuledger::store::sqlite
