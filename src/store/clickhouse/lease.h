// src/store/clickhouse/lease.h — Store::HoldLease() on a ClickHouse cluster:
// which of several `cpuledger serve` instances runs the detector schedule.
//
//   Result<bool> mine = HoldLease(*shards[0], names, "detector", "web-1:4242:9f3c", now, ttl);
//
// Without transactions the lease is an append-only table of claims on the
// first shard (leases: name, holder, claimed_us, expires_us), and a
// deterministic winner rule: the holder of a name is the holder of its OLDEST
// unexpired claim (expires_us > now), ties by holder. A call (1) reads the
// holder; if another one holds it, answers false without writing; else (2)
// inserts a claim (holder, now, now + ttl) and (3) reads the holder back.
// Oldest rather than newest wins so that a contender whose claim lands after
// another's read-back defers to it, instead of both believing they won.
//
// Guarantee: at most one instance holds a name at a time, provided
//  - every claim timestamp is taken within the lease's order of arrival: two
//    contenders for a free lease can both win one round only when the later
//    claim to arrive carries the earlier timestamp, or the same one and the
//    smaller holder (its clock lags the other's by at least the time between
//    their claims); the next call of each sees the same oldest claim, so the
//    split lasts one round at most;
//  - clocks agree within `skew` and the holder renews at least every
//    ttl - skew (the server renews before each detector run, and its lease
//    ttl is 3 detect_every: a run must end within 2 detect_every - skew);
//  - the first shard is reachable: when it is not, no one can take or renew
//    (calls answer Unavailable, and the server skips its runs).
// Cost: 2-3 HTTP round trips per call, one row per renewal (kept: ~1,440 a
// day at detect_every 1m; small, not pruned yet).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "store/clickhouse/http.h"
#include "store/clickhouse/sql.h"

namespace cpuledger::store::clickhouse {

// LeaseSchemaStatements() — CREATE TABLE IF NOT EXISTS leases.
std::vector<std::string> LeaseSchemaStatements(const SchemaNames& names);

// LeaseHolderSql() — the holder of lease `name` at `now_us` (one line, or
// none when it is free), FORMAT TabSeparated.
std::string LeaseHolderSql(const SchemaNames& names, const std::string& name, int64_t now_us);

// HoldLease() — Store::HoldLease() (store.h) on `shard` (the first one).
// RETURNS: whether `holder` holds `name` now; Unavailable / Io from the shard.
Result<bool> HoldLease(ShardClient& shard, const SchemaNames& names, const std::string& name,
                       const std::string& holder, int64_t now_us, int64_t ttl_us);

}  // namespace cpuledger::store::clickhouse
