// SqliteStore's reads: Query(), Efficiency(), Deploys(), Stats() and
// SealPoints(), each on a pooled read connection in one transaction.
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "store/sqlite/sqlite_store.h"

namespace cpuledger::store::sqlite {

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

Result<TierSealPoints> SqliteStore::SealPoints() {
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  return session.sealed();
}

}  // namespace cpuledger::store::sqlite
