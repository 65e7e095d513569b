// src/store/clickhouse/alerts.h — the alerts (store/detection.h) on a
// ClickHouse cluster: the Store's UpsertAlert, Alerts, AlertById,
// TransitionAlert and AlertEvents, over tables on the first shard.
//
//   Result<UpsertOutcome> up = UpsertAlert(*shards[0], names, alert);
//   Result<TransitionOutcome> t = TransitionAlert(*shards[0], names, {.id = up->id, ...});
//
// Layout: append-only, because 18.16 has no transactions and its ALTER
// UPDATE is an asynchronous mutation. Every change of an alert inserts one
// row into alert_versions (the whole alert, with version = the newest
// version read + 1); its transitions insert one row each into alert_events.
// At read, an alert is its rows grouped by id: the state is the furthest one
// reached (states only move forward, detection.h), body and updated_us those
// of the newest row (highest version, then furthest state). The tables live
// on every shard (SchemaStatements) but only the first shard's are written.
//
// Alert ids are derived, not allocated: (opened second << 20) | (20 bits of
// xxHash64(key)), the first such number not taken yet (probed on the first
// shard, under a process-wide mutex). Two servers collide only when they open
// alerts in the same second whose keys' hashes agree in 20 bits and both probe
// before either inserts (odds ~2^-20 per such pair). Ids stay below 2^53 (a
// JSON number) until the year 2248. NOTE: ids grow with time but are not
// dense, and alerts opened in the same microsecond are ordered by id (SQLite:
// by insertion).
//
// Not atomic (SQLite does each call in one transaction):
//  1. The read of the newest version and the insert that follows it: two
//     servers updating one alert at once may both apply (e.g. two
//     acknowledgements: two events; the state is the same either way), and
//     two servers upserting one new key at once may open two alerts. The
//     detector schedule runs on one server (HoldLease), which keeps the
//     second case to /v1/detect calls racing it.
//  2. A version row and its event are two INSERTs: a failure between them
//     leaves an alert without that event (the state change stands).
// Cost: each call is 2-4 HTTP round trips to the first shard; reads group
// all versions of the alerts in range (alerts are few: thousands, not
// millions).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "store/clickhouse/http.h"
#include "store/clickhouse/sql.h"
#include "store/detection.h"

namespace cpuledger::store::clickhouse {

// AlertSchemaStatements() — CREATE TABLE IF NOT EXISTS alert_versions,
// alert_events and leases (lease.h) (SchemaStatements() runs them on every shard).
std::vector<std::string> AlertSchemaStatements(const SchemaNames& names);

// AlertsSql() — the alerts `query` selects, newest first (opened_us, then
// id), FORMAT TabSeparated: id, key, service, endpoint, kind, state rank (0
// open, 1 acknowledged, 2 resolved), opened_us, updated_us, body, reopens,
// version. `live_only`: those not resolved. An unknown query.state selects none.
std::string AlertsSql(const SchemaNames& names, const AlertQuery& query, bool live_only = false);
// AlertByIdSql() — alert `id`'s row as AlertsSql()'s; no line when unknown.
std::string AlertByIdSql(const SchemaNames& names, int64_t id);
// AlertIdTakenSql() — 1 when some alert has id `id`, else 0.
std::string AlertIdTakenSql(const SchemaNames& names, int64_t id);
// AlertEventsSql() — alert `id`'s events oldest first: at_us, state, by,
// note, detail.
std::string AlertEventsSql(const SchemaNames& names, int64_t id);

// UpsertAlert() … AlertEvents() — the Store calls (store.h), on `shard` (the
// first one). RETURNS: as store.h's; Unavailable / Io from the shard.
Result<UpsertOutcome> UpsertAlert(ShardClient& shard, const SchemaNames& names, const Alert& alert);
Result<std::vector<Alert>> Alerts(ShardClient& shard, const SchemaNames& names,
                                  const AlertQuery& query);
Result<Alert> AlertById(ShardClient& shard, const SchemaNames& names, int64_t id);
Result<TransitionOutcome> TransitionAlert(ShardClient& shard, const SchemaNames& names,
                                          const AlertTransition& t);
Result<std::vector<AlertEvent>> AlertEvents(ShardClient& shard, const SchemaNames& names,
                                            int64_t id);

}  // namespace cpuledger::store::clickhouse
