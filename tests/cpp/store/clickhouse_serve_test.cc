// tests/cpp/store/clickhouse_serve_test.cc — `store = "clickhouse"` in a
// server config: the keys are checked, and a real server started from a TOML
// file creates the schema on the two-shard 18.16 cluster (ctest's
// clickhouse_cluster fixture), ingests over HTTP exactly once and answers
// queries from ClickHouse.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "server/config.h"
#include "server/server.h"
#include "store/clickhouse/http.h"
#include "temp_dir.h"

namespace cpuledger::server {
namespace {

Status LoadText(const test_support::TempDir& dir, const std::string& text, ServerConfig& c) {
  std::ofstream(dir.File("cpuledger.toml")) << text;
  return LoadServerConfigFile(dir.File("cpuledger.toml"), c);
}

TEST(ClickHouseConfigTest, StoreKeysAreChecked) {
  test_support::TempDir dir;
  ServerConfig c;
  ASSERT_TRUE(LoadText(dir,
                       "store = \"clickhouse\"\n"
                       "clickhouse_urls = [\"http://10.0.0.1:8123\", \"http://10.0.0.2:8123\"]\n"
                       "clickhouse_user = \"ledger\"\nclickhouse_password = \"pw\"\n"
                       "clickhouse_database = \"books\"\nclickhouse_cluster = \"fleet\"\n",
                       c)
                  .ok());
  EXPECT_EQ(c.store, "clickhouse");
  EXPECT_EQ(c.clickhouse_urls.size(), 2u);
  EXPECT_EQ(c.clickhouse_user, "ledger");
  EXPECT_EQ(c.clickhouse_password, "pw");
  EXPECT_EQ(c.clickhouse_database, "books");
  EXPECT_EQ(c.clickhouse_cluster, "fleet");

  const char* bad[] = {
      "store = \"duckdb\"\n",
      "store = \"clickhouse\"\n",  // no URLs
      "store = \"clickhouse\"\nclickhouse_urls = [\"10.0.0.1:8123\"]\n",
      "store = \"clickhouse\"\nclickhouse_urls = [\"http://h:1/path\"]\n",
      "store = \"clickhouse\"\nclickhouse_urls = [\"http://h:1\"]\n"
      "clickhouse_database = \"books; DROP\"\n",
      "clickhouse_urls = \"http://h:1\"\n",  // not an array
  };
  for (const char* text : bad) {
    ServerConfig d;
    Status s = LoadText(dir, text, d);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(d.store, "sqlite") << "a bad file leaves the config as it was";
  }
}

// FreePort() — a loopback port nothing listens on now (the server wants 1..65535).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string ClusterUrls() {
  const char* path = std::getenv("CPULEDGER_CLICKHOUSE_CLUSTER");
  if (path == nullptr) return "";
  std::ifstream in(path);
  nlohmann::json state = nlohmann::json::parse(in, nullptr, false);
  if (state.is_discarded()) return "";
  std::string urls;
  for (const auto& u : state["http_urls"])
    urls += (urls.empty() ? "\"" : ", \"") + u.get<std::string>() + "\"";
  return urls;
}

TEST(ClickHouseServeTest, AServerIngestsOnceAndQueriesFromTheCluster) {
  const std::string urls = ClusterUrls();
  if (urls.empty())
    GTEST_SKIP() << "no ClickHouse cluster: ctest starts one (fixture clickhouse_cluster)";
  test_support::TempDir dir;
  const std::string database = "serve_" + std::to_string(::getpid());
  ServerConfig c;
  ASSERT_TRUE(LoadText(dir,
                       "data_dir = \"" + dir.path() + "\"\nstore = \"clickhouse\"\n" +
                           "clickhouse_urls = [" + urls + "]\nclickhouse_database = \"" + database +
                           "\"\ndetect_every = \"off\"\n",
                       c)
                  .ok());
  c.port = FreePort();
  for (int start = 0; start < 2; ++start) {  // the second start finds the schema there
    Result<std::unique_ptr<Server>> server = Server::Start(c);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    httplib::Client client("127.0.0.1", (*server)->port());
    record::Batch b;
    b.set_sender("worker-1");
    b.set_sequence(1);
    const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    for (int i = 0; i < 5; ++i) {
      record::RequestRecord* r = b.add_records();
      r->set_start_time_unix_us(now_us - 60'000'000 - i);
      r->set_service("shop");
      r->set_endpoint("cart");
      r->set_method("GET");
      r->set_status(200);
      r->set_sample_rate(0.5);
      r->set_wall_us(1000);
      r->mutable_cpu()->set_cpu_ns(1'000'000);
      r->mutable_cpu()->set_counter_source("thread_cputime");
    }
    httplib::Result res =
        client.Post("/v1/ingest", b.SerializeAsString(), "application/x-protobuf");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(nlohmann::json::parse(res->body)["duplicate"], start == 1) << res->body;

    res = client.Get("/v1/query/breakdown?group_by=service&since=2h");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    nlohmann::json body = nlohmann::json::parse(res->body);
    ASSERT_EQ(body["rows"].size(), 1u) << res->body;
    EXPECT_EQ(body["rows"][0]["samples"], 5) << res->body;
  }
  for (const std::string& url : c.clickhouse_urls) {
    store::clickhouse::ShardOptions o;
    o.url = url;
    store::clickhouse::ShardClient(o).Run("DROP DATABASE " + database).status().IgnoreError();
  }
}

}  // namespace
}  // namespace cpuledger::server
