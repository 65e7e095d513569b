// tests/cpp/store/backends.h — the Store backends the conformance suites run
// on, each fresh for one test: SQLite (a file in a temp dir) and ClickHouse
// (a database of its own on the cluster that ctest's clickhouse_cluster
// fixture starts, tests/clickhouse/cluster.py; CPULEDGER_CLICKHOUSE_CLUSTER
// names its cluster.json).
//
//   if (!ClickHouseClusterConfigured()) GTEST_SKIP() << kNoClusterMessage;
//   SqliteBackend sqlite;  ClickHouseBackend ch;
//   ASSERT_TRUE(sqlite.s && ch.s);   // null: the open failed (a test failure is recorded)
//
// NOTE: a failed open records a non-fatal gtest failure and leaves `s` null.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/clickhouse/clickhouse_store.h"
#include "store/clickhouse/http.h"
#include "store/store.h"
#include "temp_dir.h"

namespace cpuledger::test_support {

inline constexpr const char* kNoClusterMessage =
    "no ClickHouse cluster: ctest starts one (fixture clickhouse_cluster), or set "
    "CPULEDGER_CLICKHOUSE_CLUSTER to a tests/clickhouse/cluster.py cluster.json";

// ClickHouseClusterConfigured() — whether CPULEDGER_CLICKHOUSE_CLUSTER is set.
inline bool ClickHouseClusterConfigured() {
  return std::getenv("CPULEDGER_CLICKHOUSE_CLUSTER") != nullptr;
}

struct Backend {
  virtual ~Backend() = default;
  virtual store::Store& store() = 0;
};

struct SqliteBackend : Backend {
  TempDir dir;
  std::unique_ptr<store::Store> s;
  explicit SqliteBackend(std::optional<std::set<std::string>> profile_flags = std::nullopt) {
    Result<std::unique_ptr<store::Store>> r =
        store::OpenSqliteStore({.path = dir.File("ledger.sqlite"), .profile_flags = profile_flags});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (r.ok()) s = std::move(*r);
  }
  store::Store& store() override { return *s; }
};

// ClickHouseBackend — a database of its own on the shared cluster, dropped
// after: "<prefix>_<pid>_<serial>", so tests and concurrent test binaries
// never share one.
struct ClickHouseBackend : Backend {
  std::vector<store::clickhouse::ShardOptions> shards;
  std::string database;
  std::unique_ptr<store::Store> s;
  explicit ClickHouseBackend(std::optional<std::set<std::string>> profile_flags = std::nullopt,
                             const std::string& prefix = "conformance") {
    const char* path = std::getenv("CPULEDGER_CLICKHOUSE_CLUSTER");
    if (path == nullptr) return;
    std::ifstream in(path);
    nlohmann::json state = nlohmann::json::parse(in, nullptr, false);
    if (state.is_discarded()) return;
    for (const auto& url : state["http_urls"]) {
      store::clickhouse::ShardOptions o;
      o.url = url.get<std::string>();
      shards.push_back(o);
    }
    static int serial = 0;
    database = prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++serial);
    Result<std::unique_ptr<store::Store>> r =
        store::OpenClickHouseStore({.shards = shards,
                                    .database = database,
                                    .cluster = state["cluster"].get<std::string>(),
                                    .profile_flags = profile_flags});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (r.ok()) s = std::move(*r);
  }
  ~ClickHouseBackend() override {
    s.reset();
    for (const auto& o : shards) {
      store::clickhouse::ShardClient c(o);
      c.Run("DROP DATABASE IF EXISTS " + database).status().IgnoreError();
    }
  }
  store::Store& store() override { return *s; }
};

}  // namespace cpuledger::test_support
