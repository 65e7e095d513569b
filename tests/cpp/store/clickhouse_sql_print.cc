// tests/cpp/store/clickhouse_sql_print.cc — prints the ClickHouse store's SQL
// as JSON lines {"kind": "schema"|"query", "sql": ...}: the schema and one
// query of every shape QuerySql() and the profile and efficiency reads build.
// tests/python/test_clickhouse_sql.py runs them on a current ClickHouse (chDB); the cluster tests
// run them on 18.16.
//
//   clickhouse_sql_print [DATABASE [CLUSTER]]
#include <nlohmann/json.hpp>

#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "store/clickhouse/alerts.h"
#include "store/clickhouse/lease.h"
#include "store/clickhouse/sql.h"

namespace ch = cpuledger::store::clickhouse;
using cpuledger::store::Bucket;
using cpuledger::store::Dimension;
using cpuledger::store::QuerySpec;

int main(int argc, char** argv) {
  ch::SchemaNames names;
  if (argc > 1) names.database = argv[1];
  if (argc > 2) names.cluster = argv[2];
  auto emit = [](const char* kind, const std::string& sql) {
    std::cout << nlohmann::json{{"kind", kind}, {"sql", sql}}.dump() << "\n";
  };
  for (const std::string& s : ch::SchemaStatements(names)) emit("schema", s);

  std::vector<QuerySpec> shapes(11);  // 2 and 4 read raw records only, the others rollups
  shapes[1].group_by = {{Dimension::kEndpoint, ""}};
  shapes[1].from_us = 1'764'892'800'000'000;  // 2025-12-05
  shapes[1].to_us = shapes[1].from_us + 3'600'000'000;
  shapes[2].group_by = {{Dimension::kFlag, "new_checkout"}, {Dimension::kStatus, ""}};
  shapes[2].filters = {{{Dimension::kStatus, ""}, "200"}, {{Dimension::kStatus, ""}, "500"}};
  shapes[3].group_by = {{Dimension::kService, ""}, {Dimension::kCommit, ""}};
  shapes[3].bucket = Bucket::kMinute;
  shapes[4].group_by = {{Dimension::kUser, ""}};
  shapes[4].filters = {{{Dimension::kEndpoint, ""}, "it's a \\ 'hostile' \n value"},
                       {{Dimension::kFlag, "f'; DROP TABLE x; --"}, ""}};
  shapes[5].group_by = {{Dimension::kHost, ""},
                        {Dimension::kRegion, ""},
                        {Dimension::kCluster, ""},
                        {Dimension::kMethod, ""}};
  shapes[5].bucket = Bucket::kDay;
  shapes[6].group_by = {{Dimension::kStatus, ""}};
  shapes[6].filters = {{{Dimension::kService, ""}, "shop"}};
  shapes[6].from_us = shapes[1].from_us + 1'234'567;  // sub-minute edges on both sides
  shapes[6].to_us = shapes[1].to_us + 7'654'321;
  shapes[6].bucket = Bucket::kHour;
  // Hour rollups for [01:00, 03:00), minute rollups for [00:01, 01:00) and
  // [03:00, 03:02), raw records for the sub-minute edges (coarse tier; 8 the
  // fine tier per day; 9 whole hours only; 10 as 7 with the hour rollups
  // starting at 02:00, as on a database created at version 2).
  shapes[7].group_by = {{Dimension::kService, ""}};
  shapes[7].from_us = shapes[6].from_us;
  shapes[7].to_us = shapes[1].from_us + 3 * 3'600'000'000 + 127'654'321;
  shapes[8] = shapes[7];
  shapes[8].group_by = {{Dimension::kHost, ""}};
  shapes[8].bucket = Bucket::kDay;
  shapes[9].group_by = {{Dimension::kCommit, ""}};
  shapes[9].from_us = shapes[1].to_us;
  shapes[9].to_us = shapes[1].from_us + 3 * 3'600'000'000;
  shapes[10] = shapes[7];
  const int64_t hours_from = shapes[1].from_us + 5'400'000'000;  // 01:30: the view's from 02:00
  for (size_t i = 0; i < shapes.size(); ++i)
    emit("query", ch::QuerySql(names, shapes[i], i == 10 ? hours_from : 0).sql);
  emit("query", ch::BatchIdsSql(names, {{"sender-a", 1}, {"it's", 2}}));
  for (const char* table : {"records_local", "tallies_local", "tally_users_local"})
    emit("query", ch::StoredRowsSql(names, table, {{"sender-a", 1}}));
  emit("query", ch::DeploysSql(names, ""));
  emit("query", ch::DeploysSql(names, "shop"));
  emit("query", ch::HourRollupsFromSql(names));
  cpuledger::store::SampleQuery samples;
  samples.service = "shop";
  samples.endpoint = "it's";
  emit("query", ch::SamplesSql(names, samples, 1000));
  cpuledger::store::EffectHistoryQuery effects;
  effects.service = "shop";
  effects.kind = "rollout";
  emit("query", ch::EffectHistorySql(names, effects));
  emit("query", ch::FunctionCodesSql(names, {.service = "shop", .commit = "it's \\ odd"}));
  // Function entities and moments: every slice shape, hostile values included.
  for (const char* table : {"profile_sums_local"})
    emit("query", ch::StoredRowsSql(names, table, {{"sender-a", 1}}));
  std::vector<ch::ProfileSlice> slices(3);
  slices[0].to_us = std::numeric_limits<int64_t>::max();  // every hour, all requests
  slices[1] = {.from_us = shapes[1].from_us,
               .to_us = shapes[1].to_us,
               .service = "shop",
               .endpoint = "it's",
               .commit = "b7e41d0",
               .flag = "f'; DROP TABLE x; --",
               .flag_value = "on\\"};
  slices[2] = {.from_us = shapes[1].from_us, .to_us = shapes[1].from_us + 1, .flag = "beta"};
  for (ch::ProfileSlice s : slices) {
    emit("query", ch::ProfileUnitsSql(names, s));
    s.unit = "instructions";
    emit("query", ch::ProfilePathsSql(names, s, 200'001));
    s.unit.reset();
    s.flag_value.reset();
    emit("query", ch::MomentRequestsSql(names, s));
    emit("query", ch::MomentsSql(names, s));
  }
  // The peak-minute metric: a window and one service, every service.
  const int64_t lo = shapes[1].from_us / 1'000'000, hi = lo + 3600;
  for (const std::string service : {"shop", ""}) {
    emit("query", ch::EfficiencySamplesSql(names, service, lo, hi));
    emit("query", ch::TallyRequestsSql(names, service, lo, hi));
    emit("query", ch::TallyServicesSql(names, service, lo, hi));
  }
  emit("query", ch::EfficiencySamplesSql(names, "", 0, int64_t{1} << 42));  // past DateTime
  for (const auto& [service, minute] : {std::pair<std::string, int64_t>{"it's", lo + 60},
                                        std::pair<std::string, int64_t>{"shop", lo}}) {
    emit("query", ch::TallySketchesSql(names, service, minute));
    emit("query", ch::DistinctUsersSql(names, service, minute));
  }
  emit("query", ch::PartitionsSql(names, "records_local"));
  emit("retention", ch::DropPartitionSql(names, "records_local", "2025-12-05"));
  // The alerts and the lease (alerts.h, lease.h), in this order.
  cpuledger::store::AlertQuery alerts;
  alerts.service = "it's";
  alerts.state = "acknowledged";
  alerts.key = "k\\'";
  emit("detection", ch::AlertsSql(names, {}));
  emit("detection", ch::AlertsSql(names, alerts, true));
  emit("detection", ch::AlertByIdSql(names, 42));
  emit("detection", ch::AlertIdTakenSql(names, 42));
  emit("detection", ch::AlertEventsSql(names, 42));
  emit("detection", ch::LeaseHolderSql(names, "detector'", 1'000));
  return 0;
}
