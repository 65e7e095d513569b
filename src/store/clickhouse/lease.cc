#include "store/clickhouse/lease.h"

#include "store/clickhouse/row_binary.h"
#include "store/clickhouse/tsv.h"

namespace cpuledger::store::clickhouse {
namespace {

// Holder() — the holder of `name` at `now_us`; "" when free.
Result<std::string> Holder(ShardClient& shard, const SchemaNames& n, const std::string& name,
                           int64_t now_us) {
  Result<std::string> body = shard.Run(LeaseHolderSql(n, name, now_us));
  if (!body.ok()) return body.status();
  std::vector<TsvRow> rows = SplitTsv(*body);
  if (rows.empty()) return std::string();
  if (rows.size() != 1 || rows[0].size() != 1) return Internal("unexpected lease answer");
  return Unescape(rows[0][0]);
}

}  // namespace

std::vector<std::string> LeaseSchemaStatements(const SchemaNames& n) {
  return {"CREATE TABLE IF NOT EXISTS " + n.database +
          ".leases (name String, holder String, claimed_us Int64, expires_us Int64)"
          " ENGINE = MergeTree ORDER BY (name, claimed_us, holder)"};
}

std::string LeaseHolderSql(const SchemaNames& n, const std::string& name, int64_t now_us) {
  return "SELECT holder FROM " + n.database + ".leases WHERE name = " + Quote(name) +
         " AND expires_us > " + std::to_string(now_us) +
         " ORDER BY claimed_us, holder LIMIT 1 FORMAT TabSeparated";
}

Result<bool> HoldLease(ShardClient& shard, const SchemaNames& n, const std::string& name,
                       const std::string& holder, int64_t now_us, int64_t ttl_us) {
  Result<std::string> before = Holder(shard, n, name, now_us);
  if (!before.ok()) return before.status();
  if (!before->empty() && *before != holder) return false;  // held: no claim written
  RowBinary claim;
  claim.String(name).String(holder).Int64(now_us).Int64(now_us + ttl_us);
  if (Status s =
          shard.Insert("INSERT INTO " + n.database + ".leases FORMAT RowBinary", claim.data());
      !s.ok())
    return s;
  Result<std::string> after = Holder(shard, n, name, now_us);
  if (!after.ok()) return after.status();
  return *after == holder;
}

}  // namespace cpuledger::store::clickhouse
