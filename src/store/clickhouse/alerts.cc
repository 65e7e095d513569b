#include "store/clickhouse/alerts.h"

#include <xxhash.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <utility>

#include "store/clickhouse/lease.h"
#include "store/clickhouse/row_binary.h"
#include "store/clickhouse/tsv.h"

namespace cpuledger::store::clickhouse {
namespace {

// Newest version first; between rows of one version (two servers wrote at
// once), the further state: an update racing a resolve cannot undo it.
constexpr const char* kNewest = "version * 4 + state_rank";

std::string Table(const SchemaNames& n, const char* table) { return n.database + "." + table; }

// SelectAlerts() — AlertsSql()'s columns for the alerts matching `where`
// (on version rows) and `having` (on the grouped alert).
std::string SelectAlerts(const SchemaNames& n, const std::string& where, const std::string& having,
                         size_t limit) {
  return std::string(
             "SELECT id, any(key), any(service), any(endpoint), any(kind),"
             " max(state_rank) AS top_state, min(opened_us) AS first_opened_us,"
             " argMax(updated_us, ") +
         kNewest + "), argMax(body, " + kNewest + "), any(reopens), max(version) FROM " +
         Table(n, "alert_versions") + " WHERE " + where + " GROUP BY id" +
         (having.empty() ? "" : " HAVING " + having) +
         " ORDER BY first_opened_us DESC, id DESC LIMIT " + std::to_string(limit) +
         " FORMAT TabSeparated";
}

uint8_t RankOf(AlertState s) { return static_cast<uint8_t>(s); }

// StoredAlert — an alert as read, with what the next version row needs.
struct StoredAlert {
  Alert alert;
  uint64_t version = 0;
  AlertState state = AlertState::kOpen;
};

Result<std::vector<StoredAlert>> ReadAlerts(ShardClient& shard, const std::string& sql) {
  Result<std::string> body = shard.Run(sql);
  if (!body.ok()) return body.status();
  std::vector<StoredAlert> out;
  for (const TsvRow& f : SplitTsv(*body)) {
    if (f.size() != 11) return Internal("unexpected alerts answer");
    const uint64_t rank = TsvUInt64(f[5]);
    if (rank > RankOf(AlertState::kResolved))
      return Internal("alert " + Unescape(f[0]) + " has state rank " + std::to_string(rank));
    StoredAlert s;
    s.state = static_cast<AlertState>(rank);
    Alert& a = s.alert;
    a.id = TsvInt64(f[0]);
    a.key = Unescape(f[1]);
    a.service = Unescape(f[2]);
    a.endpoint = Unescape(f[3]);
    a.kind = Unescape(f[4]);
    a.state = AlertStateName(s.state);
    a.opened_us = TsvInt64(f[6]);
    a.updated_us = TsvInt64(f[7]);
    a.body = Unescape(f[8]);
    a.reopens = TsvInt64(f[9]);
    s.version = TsvUInt64(f[10]);
    out.push_back(std::move(s));
  }
  return out;
}

Result<StoredAlert> ReadAlert(ShardClient& shard, const SchemaNames& n, int64_t id) {
  Result<std::vector<StoredAlert>> found = ReadAlerts(shard, AlertByIdSql(n, id));
  if (!found.ok()) return found.status();
  if (found->empty()) return NotFound("no alert " + std::to_string(id));
  return std::move(found->front());
}

// InsertVersion() — `a` in `state` as version `version`.
Status InsertVersion(ShardClient& shard, const SchemaNames& n, const Alert& a, AlertState state,
                     uint64_t version) {
  RowBinary row;
  row.Int64(a.id)
      .UInt64(version)
      .String(a.key)
      .String(a.service)
      .String(a.endpoint)
      .String(a.kind)
      .UInt8(RankOf(state))
      .Int64(a.opened_us)
      .Int64(a.updated_us)
      .String(a.body)
      .Int64(a.reopens);
  return shard.Insert("INSERT INTO " + Table(n, "alert_versions") + " FORMAT RowBinary",
                      row.data());
}

Status InsertEvent(ShardClient& shard, const SchemaNames& n, const AlertEvent& e,
                   AlertState state) {
  RowBinary row;
  row.Int64(e.alert_id)
      .Int64(e.at_us)
      .UInt8(RankOf(state))
      .String(e.by)
      .String(e.note)
      .String(e.detail);
  return shard.Insert("INSERT INTO " + Table(n, "alert_events") + " FORMAT RowBinary", row.data());
}

// NewAlertId() — the first free id from (opened second << 20) | hash bits
// (alerts.h). REQUIRES: the caller holds IdMutex().
Result<int64_t> NewAlertId(ShardClient& shard, const SchemaNames& n, const Alert& a) {
  const int64_t second = std::max<int64_t>(0, a.updated_us / 1'000'000);
  int64_t id =
      (second << 20) | static_cast<int64_t>(XXH64(a.key.data(), a.key.size(), 0) & 0xFFFFF);
  id = std::max<int64_t>(id, 1);  // ids are positive (the API refuses 0)
  for (int tries = 0; tries < 1000; ++tries, ++id) {
    Result<std::string> taken = shard.Run(AlertIdTakenSql(n, id));
    if (!taken.ok()) return taken.status();
    if (TsvUInt64(*taken) == 0) return id;
  }
  return Internal("no free alert id near " + std::to_string(id));
}

std::mutex& IdMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

std::vector<std::string> AlertSchemaStatements(const SchemaNames& n) {
  std::vector<std::string> out = {
      "CREATE TABLE IF NOT EXISTS " + Table(n, "alert_versions") +
          " (id Int64, version UInt64, key String, service String, endpoint String, kind String,"
          " state_rank UInt8, opened_us Int64, updated_us Int64, body String, reopens Int64)"
          " ENGINE = MergeTree ORDER BY (id, version)",
      "CREATE TABLE IF NOT EXISTS " + Table(n, "alert_events") +
          " (alert_id Int64, at_us Int64, state_rank UInt8, actor String, note String,"
          " detail String) ENGINE = MergeTree ORDER BY (alert_id, at_us, state_rank)",
  };
  for (std::string& lease : LeaseSchemaStatements(n)) out.push_back(std::move(lease));
  return out;
}

std::string AlertsSql(const SchemaNames& n, const AlertQuery& q, bool live_only) {
  std::string where =
      "opened_us >= " + std::to_string(q.from_us) + " AND opened_us < " + std::to_string(q.to_us);
  if (q.service) where += " AND service = " + Quote(*q.service);
  if (q.key) where += " AND key = " + Quote(*q.key);
  std::string having;
  if (q.state) {
    const std::optional<AlertState> s = ParseAlertState(*q.state);
    having = s ? "top_state = " + std::to_string(RankOf(*s)) : "0";
  }
  if (live_only)
    having += (having.empty() ? "" : " AND ") + std::string("top_state < ") +
              std::to_string(RankOf(AlertState::kResolved));
  return SelectAlerts(n, where, having, q.limit);
}

std::string AlertByIdSql(const SchemaNames& n, int64_t id) {
  return SelectAlerts(n, "id = " + std::to_string(id), "", 1);
}

std::string AlertIdTakenSql(const SchemaNames& n, int64_t id) {
  return "SELECT count() > 0 FROM " + Table(n, "alert_versions") +
         " WHERE id = " + std::to_string(id) + " FORMAT TabSeparated";
}

std::string AlertEventsSql(const SchemaNames& n, int64_t id) {
  return "SELECT at_us, state_rank, actor, note, detail FROM " + Table(n, "alert_events") +
         " WHERE alert_id = " + std::to_string(id) +
         " ORDER BY at_us, state_rank FORMAT TabSeparated";
}

Result<UpsertOutcome> UpsertAlert(ShardClient& shard, const SchemaNames& n, const Alert& alert) {
  std::lock_guard<std::mutex> lock(IdMutex());
  AlertQuery by_key;
  by_key.key = alert.key;
  by_key.limit = 1;
  Result<std::vector<StoredAlert>> live = ReadAlerts(shard, AlertsSql(n, by_key, true));
  if (!live.ok()) return live.status();
  if (!live->empty()) {
    StoredAlert& now = live->front();
    now.alert.body = alert.body;
    now.alert.updated_us = alert.updated_us;
    if (Status s = InsertVersion(shard, n, now.alert, now.state, now.version + 1); !s.ok())
      return s;
    return UpsertOutcome{.id = now.alert.id, .opened = false};
  }
  Alert opened = alert;
  Result<int64_t> id = NewAlertId(shard, n, alert);
  if (!id.ok()) return id.status();
  opened.id = *id;
  opened.opened_us = alert.updated_us;
  if (Status s = InsertVersion(shard, n, opened, AlertState::kOpen, 1); !s.ok()) return s;
  const std::string note =
      alert.reopens != 0 ? "reopens alert " + std::to_string(alert.reopens) : "";
  if (Status s = InsertEvent(shard, n, {*id, alert.updated_us, "open", "detector", note, ""},
                             AlertState::kOpen);
      !s.ok())
    return s;
  return UpsertOutcome{.id = *id, .opened = true};
}

Result<std::vector<Alert>> Alerts(ShardClient& shard, const SchemaNames& n,
                                  const AlertQuery& query) {
  Result<std::vector<StoredAlert>> found = ReadAlerts(shard, AlertsSql(n, query));
  if (!found.ok()) return found.status();
  std::vector<Alert> out;
  out.reserve(found->size());
  for (StoredAlert& s : *found) out.push_back(std::move(s.alert));
  return out;
}

Result<Alert> AlertById(ShardClient& shard, const SchemaNames& n, int64_t id) {
  Result<StoredAlert> found = ReadAlert(shard, n, id);
  if (!found.ok()) return found.status();
  return std::move(found->alert);
}

Result<TransitionOutcome> TransitionAlert(ShardClient& shard, const SchemaNames& n,
                                          const AlertTransition& t) {
  std::lock_guard<std::mutex> lock(IdMutex());  // this server's changes, one at a time
  Result<StoredAlert> now = ReadAlert(shard, n, t.id);
  if (!now.ok()) return now.status();
  TransitionOutcome out;
  out.alert = now->alert;
  out.refusal = AlertTransitionRefusal(now->state, t.to);
  if (!out.refusal.empty()) return out;
  out.alert.state = AlertStateName(t.to);
  out.alert.updated_us = t.at_us;
  if (Status s = InsertVersion(shard, n, out.alert, t.to, now->version + 1); !s.ok()) return s;
  if (Status s =
          InsertEvent(shard, n, {t.id, t.at_us, out.alert.state, t.by, t.note, t.detail}, t.to);
      !s.ok())
    return s;
  out.applied = true;
  return out;
}

Result<std::vector<AlertEvent>> AlertEvents(ShardClient& shard, const SchemaNames& n, int64_t id) {
  Result<std::string> body = shard.Run(AlertEventsSql(n, id));
  if (!body.ok()) return body.status();
  std::vector<AlertEvent> out;
  for (const TsvRow& f : SplitTsv(*body)) {
    if (f.size() != 5) return Internal("unexpected alert events answer");
    const uint64_t rank = std::min<uint64_t>(TsvUInt64(f[1]), RankOf(AlertState::kResolved));
    out.push_back(AlertEvent{id, TsvInt64(f[0]), AlertStateName(static_cast<AlertState>(rank)),
                             Unescape(f[2]), Unescape(f[3]), Unescape(f[4])});
  }
  return out;
}

}  // namespace cpuledger::store::clickhouse
