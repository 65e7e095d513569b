// The detectors' side of the SQLite store (store/detection.h): raw samples
// with their dimensions, function moments, effect history and alerts.
#include <algorithm>
#include <map>
#include <optional>
#include <unordered_map>

#include "store/sqlite/raw_chunk.h"
#include "store/sqlite/sqlite_store.h"

namespace cpuledger::store {

std::string SampleSet::UnitOf(const std::string& service) const {
  for (const auto& [name, unit] : units)
    if (name == service) return unit;
  return "cpu_ns";
}

namespace sqlite {
namespace {

constexpr int64_t kUs = 1'000'000;

}  // namespace

Result<SampleSet> SqliteStore::Samples(const SampleQuery& query) {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  ReadConn& c = session.conn();

  struct Raw {
    int64_t series, start_us;
    bool has_instructions;
    double instructions, cpu_ns, rate;
  };
  std::vector<Raw> raw;
  std::unordered_map<int64_t, bool> wanted;  // store series id -> in the slice
  auto in_slice = [&](int64_t id) {
    auto [it, added] = wanted.try_emplace(id, false);
    if (added) {
      const SeriesInfo* info = catalog_.Get(id);
      it->second = info != nullptr && (!query.service || info->service == *query.service) &&
                   (!query.endpoint || info->endpoint == *query.endpoint);
    }
    return it->second;
  };
  StmtUse use(c.chunks);
  use.Bind(1, FloorTo(query.from_us, 60 * kUs) / kUs);
  const int64_t last = INT64_MAX - 60 * kUs;  // CeilTo must not overflow
  use.Bind(2, CeilTo(std::min(query.to_us, last), 60 * kUs) / kUs);
  Status inner;
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    Status chunk = ForEachSample(u.Blob(1), u.Int64(0), [&](const StoredRecord& x) {
      if (!inner.ok() || x.start_us < query.from_us || x.start_us >= query.to_us ||
          !in_slice(x.series))
        return;
      if (raw.size() >= query.max_samples) {
        inner = ResourceExhausted("more than " + std::to_string(query.max_samples) +
                                  " samples in the range: narrow it");
        return;
      }
      raw.push_back({x.series, x.start_us, x.has_instructions, static_cast<double>(x.instructions),
                     static_cast<double>(x.cpu_ns), x.sample_rate});
    });
    return chunk.ok() ? inner : chunk;
  });
  if (!s.ok()) return s;
  std::sort(raw.begin(), raw.end(),
            [](const Raw& a, const Raw& b) { return a.start_us < b.start_us; });

  // The unit per service: instructions when at least half its samples have them.
  SampleSet out;
  std::map<std::string, std::pair<size_t, size_t>> counts;  // service -> (with, all)
  for (const Raw& r : raw) {
    auto& [with, all] = counts[catalog_.Get(r.series)->service];
    with += r.has_instructions;
    ++all;
  }
  std::map<std::string, bool> instructions;
  for (const auto& [service, n] : counts) {
    out.units.emplace_back(service, CostUnit(n.first, n.second));
    instructions[service] = out.units.back().second == "instructions";
  }
  std::unordered_map<int64_t, uint32_t> index;  // store series id -> out.series index
  out.samples.reserve(raw.size());
  for (const Raw& r : raw) {
    const SeriesInfo* info = catalog_.Get(r.series);
    const bool use_instr = instructions[info->service];
    if (use_instr && !r.has_instructions) continue;
    auto [it, added] = index.try_emplace(r.series, static_cast<uint32_t>(out.series.size()));
    if (added) {
      out.series.push_back({info->service, info->endpoint, info->method, info->host, info->cluster,
                            info->region, info->commit, static_cast<int>(info->status),
                            info->flags});
    }
    out.samples.push_back({it->second, r.start_us, use_instr ? r.instructions : r.cpu_ns, r.rate});
  }
  return out;
}

// FunctionCodesOf(): the rows are written in the append's transaction (no
// checkpoint to wait for); key order is bytewise, as std::string's.
Result<std::vector<FunctionCode>> SqliteStore::FunctionCodesOf(const FunctionCodesQuery& query) {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  Result<Stmt> st = session.conn().db.Prepare(
      "SELECT f.key, c.code_hash FROM function_codes c JOIN functions f ON f.id = c.function"
      " WHERE c.service = ?1 AND c.commit_id = ?2 ORDER BY f.key");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  use.Bind(1, std::string_view(query.service));
  use.Bind(2, std::string_view(query.commit));
  std::vector<FunctionCode> out;
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    out.push_back({std::string(u.Text(0)), static_cast<uint64_t>(u.Int64(1))});
    return OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::vector<FunctionMoments>> SqliteStore::FunctionMomentsOf(
    const FunctionMomentsQuery& query) {
  if (Status s = Checkpoint(); !s.ok()) return s;
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  Db& db = session.conn().db;
  const auto [lo, hi] = HourBuckets(query.from_us, query.to_us);
  // ?6: the flag; "" selects the all-requests slices.
  static constexpr const char* kWhere =
      " WHERE x.bucket >= ?1 AND x.bucket < ?2 AND x.slice IN (SELECT id FROM profile_slices"
      " WHERE flag = ?6 AND (?3 IS NULL OR service = ?3) AND (?4 IS NULL OR endpoint = ?4)"
      " AND (?5 IS NULL OR commit_id = ?5))";
  const std::string flag = query.flag.value_or("");  // bound without a copy: must outlive the uses
  auto bind = [&](StmtUse& use) {
    use.Bind(1, lo);
    use.Bind(2, hi);
    BindOptional(use, 3, query.service);
    BindOptional(use, 4, query.endpoint);
    BindOptional(use, 5, query.commit);
    use.Bind(6, std::string_view(flag));
  };
  std::unordered_map<int64_t, double> requests;  // slice id -> profiled requests
  {
    Result<Stmt> st = db.Prepare(std::string("SELECT x.slice, sum(x.requests) FROM"
                                             " profile_requests x") +
                                 kWhere + " GROUP BY x.slice");
    if (!st.ok()) return st.status();
    StmtUse use(*st);
    bind(use);
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      requests[u.Int64(0)] = u.Double(1);
      return OkStatus();
    });
    if (!s.ok()) return s;
  }
  std::vector<FunctionMoments> out;
  Result<Stmt> st = db.Prepare(
      std::string("SELECT x.slice, s.service, s.endpoint, s.commit_id, s.unit, s.flag_value,"
                  " f.key, sum(x.sum), sum(x.sum_sq), sum(x.share_sum), sum(x.share_sq)"
                  " FROM function_moments x JOIN profile_slices s ON s.id = x.slice"
                  " JOIN functions f ON f.id = x.function") +
      kWhere +
      " GROUP BY x.slice, x.function"
      " ORDER BY s.service, s.endpoint, s.commit_id, s.unit, s.flag_value, f.key");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  bind(use);
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    FunctionMoments m;
    m.service = u.Text(1);
    m.endpoint = u.Text(2);
    m.commit = u.Text(3);
    m.unit = u.Text(4);
    m.flag = flag;
    m.flag_value = u.Text(5);
    m.function = u.Text(6);
    m.sum = u.Double(7);
    m.sum_sq = u.Double(8);
    m.share_sum = u.Double(9);
    m.share_sq = u.Double(10);
    m.requests = requests[u.Int64(0)];
    out.push_back(std::move(m));
    return OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

// The detection writes share the writer connection with AppendBatches(), so
// they serialize on write_mu_ and never meet SQLITE_BUSY from ourselves.
Status SqliteStore::AppendEffects(std::span<const EffectRecord> effects) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Txn txn(writer_);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  // The newest measurement of a (function, cause) replaces the older ones: a
  // detector re-measures the same rollout every run while it is in the window.
  Result<Stmt> del = writer_.Prepare(
      "DELETE FROM effects WHERE service = ?1 AND endpoint = ?2 AND function = ?3 AND kind = ?4"
      " AND cause = ?5");
  if (!del.ok()) return del.status();
  Result<Stmt> st = writer_.Prepare(
      "INSERT INTO effects (at_us, service, endpoint, function, kind, cause, estimate, lo, hi,"
      " alerted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  if (!st.ok()) return st.status();
  for (const EffectRecord& e : effects) {
    {
      StmtUse use(*del);
      use.Bind(1, e.service);
      use.Bind(2, e.endpoint);
      use.Bind(3, e.function);
      use.Bind(4, e.kind);
      use.Bind(5, e.cause);
      if (Status s = use.Run(); !s.ok()) return s;
    }
    StmtUse use(*st);
    use.Bind(1, e.at_us);
    use.Bind(2, e.service);
    use.Bind(3, e.endpoint);
    use.Bind(4, e.function);
    use.Bind(5, e.kind);
    use.Bind(6, e.cause);
    use.Bind(7, e.estimate);
    use.Bind(8, e.lo);
    use.Bind(9, e.hi);
    use.Bind(10, int64_t{e.alerted});
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return txn.Commit();
}

Result<std::vector<EffectRecord>> SqliteStore::EffectHistory(const EffectHistoryQuery& query) {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  Result<Stmt> st = session.conn().db.Prepare(
      "SELECT at_us, cause, estimate, lo, hi, alerted FROM effects WHERE service = ?1 AND"
      " endpoint = ?2 AND function = ?3 AND kind = ?4 AND at_us < ?5 ORDER BY at_us DESC"
      " LIMIT ?6");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  use.Bind(1, query.service);
  use.Bind(2, query.endpoint);
  use.Bind(3, query.function);
  use.Bind(4, query.kind);
  use.Bind(5, query.before_us);
  use.Bind(6, static_cast<int64_t>(query.limit));
  std::vector<EffectRecord> out;
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    EffectRecord e;
    e.at_us = u.Int64(0);
    e.service = query.service;
    e.endpoint = query.endpoint;
    e.function = query.function;
    e.kind = query.kind;
    e.cause = u.Text(1);
    e.estimate = u.Double(2);
    e.lo = u.Double(3);
    e.hi = u.Double(4);
    e.alerted = u.Int64(5) != 0;
    out.push_back(std::move(e));
    return OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

namespace {

constexpr const char* kAlertColumns =
    "id, key, service, endpoint, kind, state, opened_us, updated_us, body, reopens";

Alert AlertFromRow(StmtUse& u) {
  Alert a;
  a.id = u.Int64(0);
  a.key = u.Text(1);
  a.service = u.Text(2);
  a.endpoint = u.Text(3);
  a.kind = u.Text(4);
  a.state = u.Text(5);
  a.opened_us = u.Int64(6);
  a.updated_us = u.Int64(7);
  a.body = u.Text(8);
  a.reopens = u.Int64(9);
  return a;
}

// FindAlert() — alert `id` as `db` sees it; NotFound when there is none.
Result<Alert> FindAlert(Db& db, int64_t id) {
  Result<Stmt> st =
      db.Prepare(std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE id = ?1");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  use.Bind(1, id);
  std::optional<Alert> found;
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    found = AlertFromRow(u);
    return OkStatus();
  });
  if (!s.ok()) return s;
  if (!found) return NotFound("no alert " + std::to_string(id));
  return *found;
}

// AppendEvent() — the next event of `e.alert_id` (seq one past its last).
Status AppendEvent(Db& db, const AlertEvent& e) {
  Result<Stmt> st = db.Prepare(
      "INSERT INTO alert_events (alert_id, seq, at_us, state, by, note, detail)"
      " VALUES (?1, (SELECT coalesce(max(seq) + 1, 0) FROM alert_events WHERE alert_id = ?1),"
      " ?2, ?3, ?4, ?5, ?6)");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  use.Bind(1, e.alert_id);
  use.Bind(2, e.at_us);
  use.Bind(3, e.state);
  use.Bind(4, e.by);
  use.Bind(5, e.note);
  use.Bind(6, e.detail);
  return use.Run();
}

}  // namespace

Result<UpsertOutcome> SqliteStore::UpsertAlert(const Alert& alert) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Txn txn(writer_);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  UpsertOutcome out;
  {
    Result<Stmt> find =
        writer_.Prepare("SELECT id FROM alerts WHERE key = ?1 AND state != 'resolved'");
    if (!find.ok()) return find.status();
    StmtUse use(*find);
    use.Bind(1, alert.key);
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      out.id = u.Int64(0);
      return OkStatus();
    });
    if (!s.ok()) return s;
  }
  Result<Stmt> st = writer_.Prepare(
      out.id != 0 ? "UPDATE alerts SET body = ?2, updated_us = ?3 WHERE id = ?1"
                  : "INSERT INTO alerts (key, service, endpoint, kind, state, opened_us,"
                    " updated_us, body, reopens) VALUES (?4, ?5, ?6, ?7, 'open', ?3, ?3, ?2, ?8)");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  if (out.id != 0) use.Bind(1, out.id);
  use.Bind(2, alert.body);
  use.Bind(3, alert.updated_us);
  if (out.id == 0) {
    use.Bind(4, alert.key);
    use.Bind(5, alert.service);
    use.Bind(6, alert.endpoint);
    use.Bind(7, alert.kind);
    use.Bind(8, alert.reopens);
  }
  if (Status s = use.Run(); !s.ok()) return s;
  if (out.id == 0) {
    Result<int64_t> id = writer_.QueryInt64("SELECT last_insert_rowid()");
    if (!id.ok()) return id.status();
    out.id = *id;
    out.opened = true;
    const std::string note =
        alert.reopens != 0 ? "reopens alert " + std::to_string(alert.reopens) : "";
    if (Status s = AppendEvent(writer_,
                               AlertEvent{out.id, alert.updated_us, "open", "detector", note, ""});
        !s.ok())
      return s;
  }
  if (Status s = txn.Commit(); !s.ok()) return s;
  return out;
}

Result<std::vector<Alert>> SqliteStore::Alerts(const AlertQuery& query) {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  Result<Stmt> st = session.conn().db.Prepare(
      std::string("SELECT ") + kAlertColumns +
      " FROM alerts WHERE opened_us >= ?1 AND opened_us < ?2 AND (?3 IS NULL OR service = ?3)"
      " AND (?4 IS NULL OR state = ?4) AND (?6 IS NULL OR key = ?6)"
      " ORDER BY opened_us DESC, id DESC LIMIT ?5");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  use.Bind(1, query.from_us);
  use.Bind(2, query.to_us);
  BindOptional(use, 3, query.service);
  BindOptional(use, 4, query.state);
  use.Bind(5, static_cast<int64_t>(query.limit));
  BindOptional(use, 6, query.key);
  std::vector<Alert> out;
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    out.push_back(AlertFromRow(u));
    return OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Alert> SqliteStore::AlertById(int64_t id) {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  return FindAlert(session.conn().db, id);
}

Result<TransitionOutcome> SqliteStore::TransitionAlert(const AlertTransition& t) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Txn txn(writer_);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  Result<Alert> now = FindAlert(writer_, t.id);
  if (!now.ok()) return now.status();
  TransitionOutcome out;
  out.alert = std::move(*now);
  const std::optional<AlertState> from = ParseAlertState(out.alert.state);
  if (!from)
    return Internal("alert " + std::to_string(t.id) + " has state '" + out.alert.state + "'");
  out.refusal = AlertTransitionRefusal(*from, t.to);
  if (!out.refusal.empty()) return out;  // the transaction rolls back: nothing written
  const std::string state = AlertStateName(t.to);
  Result<Stmt> st = writer_.Prepare("UPDATE alerts SET state = ?2, updated_us = ?3 WHERE id = ?1");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  use.Bind(1, t.id);
  use.Bind(2, state);
  use.Bind(3, t.at_us);
  if (Status s = use.Run(); !s.ok()) return s;
  if (Status s = AppendEvent(writer_, AlertEvent{t.id, t.at_us, state, t.by, t.note, t.detail});
      !s.ok())
    return s;
  if (Status s = txn.Commit(); !s.ok()) return s;
  out.alert.state = state;
  out.alert.updated_us = t.at_us;
  out.applied = true;
  return out;
}

Result<std::vector<AlertEvent>> SqliteStore::AlertEvents(int64_t id) {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  Result<Stmt> st = session.conn().db.Prepare(
      "SELECT at_us, state, by, note, detail FROM alert_events WHERE alert_id = ?1 ORDER BY seq");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  use.Bind(1, id);
  std::vector<AlertEvent> out;
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    out.push_back(AlertEvent{id, u.Int64(0), std::string(u.Text(1)), std::string(u.Text(2)),
                             std::string(u.Text(3)), std::string(u.Text(4))});
    return OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

// One IMMEDIATE transaction: the read of the current holder and the write
// that takes or renews it cannot interleave with another server's.
Result<bool> SqliteStore::HoldLease(const std::string& name, const std::string& holder,
                                    int64_t now_us, int64_t ttl_us) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Txn txn(writer_);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  Result<Stmt> st = writer_.Prepare(
      "INSERT INTO leases (name, holder, expires_us) VALUES (?1, ?2, ?3)"
      " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_us = excluded.expires_us"
      " WHERE leases.holder = excluded.holder OR leases.expires_us <= ?4");
  if (!st.ok()) return st.status();
  {
    StmtUse use(*st);
    use.Bind(1, name);
    use.Bind(2, holder);
    use.Bind(3, now_us + ttl_us);
    use.Bind(4, now_us);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  Result<Stmt> who = writer_.Prepare("SELECT holder FROM leases WHERE name = ?1");
  if (!who.ok()) return who.status();
  bool held = false;
  StmtUse use(*who);
  use.Bind(1, name);
  Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
    held = u.Text(0) == holder;
    return OkStatus();
  });
  if (!s.ok()) return s;
  if (Status c = txn.Commit(); !c.ok()) return c;
  return held;
}

}  // namespace sqlite
}  // namespace cpuledger::store
