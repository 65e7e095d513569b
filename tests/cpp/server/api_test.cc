// tests/cpp/server/api_test.cc — the route table of src/server/api.cc behind
// the real HTTP layer on loopback, over a real SQLite store: what ingest
// answers when it accepts and when it refuses (and that a refused batch is
// neither stored nor lost), what a bad query parameter is told, and the
// bearer-token check. tests/python/test_server.py drives the whole binary
// (NDJSON mistakes, the route list under a token); this file holds the C++
// contracts: reply shapes, status codes, counters, Retry-After.
#include "server/api.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/duration.h"
#include "profile/call_tree.h"
#include "record/codec.h"
#include "server/api_json.h"
#include "server/static_assets.h"
#include "temp_dir.h"

namespace cpuledger::server {
namespace {

constexpr const char* kProtobuf = "application/x-protobuf";

// Api — a store, a writer, the service and an HTTP server on a free port.
class Api {
 public:
  explicit Api(std::string token = "", size_t max_pending = 16, size_t max_body_bytes = 0,
               AlertSinks* sinks = nullptr) {
    store::SqliteOptions options;
    options.path = dir_.File("cpuledger.sqlite");
    Result<std::unique_ptr<store::Store>> opened = store::OpenSqliteStore(options);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(*opened);
    writer_ = std::make_unique<IngestWriter>(*store_, metrics, max_pending,
                                             /*retention_every_us=*/3'600'000'000);
    context_.store = store_.get();
    context_.writer = writer_.get();
    context_.metrics = &metrics;
    context_.token = std::move(token);
    context_.max_body_bytes = max_body_bytes;
    context_.sinks = sinks;
    http::HttpOptions http_options;
    http_options.port = 0;
    Result<std::unique_ptr<http::HttpServer>> http =
        http::HttpServer::Start(http_options, MakeHttpService(context_));
    EXPECT_TRUE(http.ok()) << http.status().ToString();
    http_ = std::move(*http);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", http_->port());
  }

  httplib::Result Post(const std::string& path, const std::string& body, const char* type,
                       const std::string& authorization = "") {
    return client_->Post(path, Headers(authorization), body, type);
  }
  httplib::Result Get(const std::string& path, const std::string& authorization = "") {
    return client_->Get(path, Headers(authorization));
  }

  // Samples() — sampled requests stored in the last two hours (a breakdown).
  int64_t Samples(const std::string& authorization = "") {
    httplib::Result res = Get("/v1/query/breakdown?group_by=service&since=2h", authorization);
    if (!res || res->status != 200) return -1;
    const nlohmann::json body = nlohmann::json::parse(res->body);
    int64_t n = 0;
    for (const nlohmann::json& row : body["rows"]) n += row["samples"].get<int64_t>();
    return n;
  }

  store::Store& store() { return *store_; }
  httplib::Client& client() { return *client_; }
  Metrics metrics;

 private:
  static httplib::Headers Headers(const std::string& authorization) {
    if (authorization.empty()) return {};
    return {{"Authorization", authorization}};
  }

  test_support::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<IngestWriter> writer_;
  ApiContext context_;
  std::unique_ptr<http::HttpServer> http_;
  std::unique_ptr<httplib::Client> client_;
};

record::RequestRecord Record(int i) {
  record::RequestRecord r;
  r.set_start_time_unix_us(NowUnixUs() - 60'000'000 - i);
  r.set_wall_us(1000 + i);
  r.set_service("shop");
  r.set_endpoint("/cart/");
  r.set_method("GET");
  r.set_status(200);
  r.set_sample_rate(1);
  r.mutable_cpu()->set_cpu_ns(500'000 + i);
  r.mutable_cpu()->set_counter_source("thread_cputime");
  return r;
}

// Batch() — `n` valid records from `sender`, as protobuf.
std::string Batch(int n, const std::string& sender = "w1", uint64_t sequence = 1) {
  record::Batch b;
  b.set_sender(sender);
  b.set_sequence(sequence);
  for (int i = 0; i < n; ++i) *b.add_records() = Record(i);
  return b.SerializeAsString();
}

nlohmann::json Json(const httplib::Result& res) { return nlohmann::json::parse(res->body); }

std::string Error(const httplib::Result& res) { return Json(res)["error"].get<std::string>(); }

TEST(ApiIngest, AcceptsABatchAndSaysWhatItStored) {
  Api api;
  httplib::Result res = api.Post("/v1/ingest", Batch(3), kProtobuf);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(Json(res), nlohmann::json({{"accepted", 3}, {"tallies", 0}, {"duplicate", false}}));
  EXPECT_EQ(api.metrics.batches_accepted, 1u);
  EXPECT_EQ(api.metrics.records_accepted, 3u);
  EXPECT_EQ(api.Samples(), 3);
}

TEST(ApiIngest, AReplayedBatchIsAcknowledgedAsADuplicateAndStoredOnce) {
  Api api;
  ASSERT_EQ(api.Post("/v1/ingest", Batch(3, "w1", 7), kProtobuf)->status, 200);
  httplib::Result again = api.Post("/v1/ingest", Batch(3, "w1", 7), kProtobuf);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);  // acknowledged, so the recorder stops re-sending it
  EXPECT_EQ(Json(again), nlohmann::json({{"accepted", 0}, {"tallies", 0}, {"duplicate", true}}));
  EXPECT_EQ(api.metrics.batches_duplicate, 1u);
  EXPECT_EQ(api.metrics.records_duplicate, 3u);
  EXPECT_EQ(api.Samples(), 3);
}

TEST(ApiIngest, AFullWriterQueueRefusesWith503AndRetryAfterAndStoresNothing) {
  Api full(/*token=*/"", /*max_pending=*/0);
  httplib::Result res = full.Post("/v1/ingest", Batch(4), kProtobuf);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);  // retryable: the recorder keeps the batch (spool) and retries
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  EXPECT_NE(Error(res).find("ingest queue full"), std::string::npos) << res->body;
  EXPECT_EQ(full.metrics.batches_overloaded, 1u);
  EXPECT_EQ(full.metrics.records_dropped, 4u);
  EXPECT_EQ(full.metrics.records_accepted, 0u);
  EXPECT_EQ(full.Samples(), 0);
}

TEST(ApiIngest, OneBadRecordRefusesTheWholeBatchNamingIt) {
  Api api;
  record::Batch b;
  b.set_sender("w1");
  b.set_sequence(1);
  *b.add_records() = Record(0);
  record::RequestRecord bad = Record(1);
  bad.set_sample_rate(0);
  *b.add_records() = bad;
  httplib::Result res = api.Post("/v1/ingest", b.SerializeAsString(), kProtobuf);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);  // not retryable: the client must not spool it forever
  EXPECT_NE(Error(res).find("sample_rate"), std::string::npos) << res->body;
  EXPECT_EQ(api.metrics.batches_malformed, 1u);
  EXPECT_EQ(api.Samples(), 0);  // all or nothing: the good record is not stored either
  // The same sender's next batch is not taken for a replay of the refused one.
  EXPECT_EQ(Json(api.Post("/v1/ingest", Batch(2, "w1", 1), kProtobuf))["duplicate"], false);
  EXPECT_EQ(api.Samples(), 2);
}

TEST(ApiIngest, ABodyOverTheLimitIsRefusedBeforeItIsRead) {
  Api api(/*token=*/"", /*max_pending=*/16, /*max_body_bytes=*/64);
  const std::string body = Batch(5);
  ASSERT_GT(body.size(), 64u);
  httplib::Result res = api.Post("/v1/ingest", body, kProtobuf);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_NE(Error(res).find("larger than max_body_bytes (64)"), std::string::npos) << res->body;
  EXPECT_EQ(api.metrics.batches_too_large, 1u);
  EXPECT_EQ(api.metrics.records_accepted, 0u);
}

TEST(ApiIngest, AnUnknownContentTypeNamesTheAcceptedOnes) {
  Api api;
  httplib::Result res = api.Post("/v1/ingest", Batch(1), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);
  EXPECT_NE(Error(res).find("application/x-protobuf"), std::string::npos) << res->body;
  EXPECT_NE(Error(res).find("application/x-ndjson"), std::string::npos) << res->body;
  EXPECT_EQ(api.metrics.batches_bad_type, 1u);
}

TEST(ApiQuery, EachBadParameterIsA400NamingIt) {
  Api api;
  struct Case {
    std::string path, needle;
  };
  const std::vector<Case> cases = {
      {"/v1/query/breakdown?group_by=nosuch", "group_by"},
      {"/v1/query/breakdown?since=yesterday", "since"},
      {"/v1/query/breakdown?from=100&to=100", "time range is empty"},
      {"/v1/query/breakdown?from=-5", "from '-5' must be unix seconds"},
      {"/v1/query/timeseries?to=soon", "to 'soon' must be unix seconds"},
      {"/v1/query/breakdown?limit=0", "limit '0' must be an integer in 1..100000"},
      {"/v1/query/breakdown?where=service", "where 'service' must be DIMENSION=VALUE"},
      {"/v1/query/breakdown?where=nosuch%3Dx", "where"},
      {"/v1/query/timeseries?bucket=fortnight", "fortnight"},
      {"/v1/query/functions?sort=loudest", "loudest"},
      {"/v1/alerts?state=closed", "state 'closed' must be open, acknowledged or resolved"},
      {"/v1/alerts?id=x1", "alert id 'x1' must be a positive integer"},
      {"/v1/alerts/0", "alert id '0' must be a positive integer"},
  };
  for (const Case& c : cases) {
    httplib::Result res = api.Get(c.path);
    ASSERT_TRUE(res) << c.path;
    EXPECT_EQ(res->status, 400) << c.path << ": " << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json") << c.path;
    EXPECT_NE(Error(res).find(c.needle), std::string::npos) << c.path << ": " << res->body;
  }
  EXPECT_EQ(api.metrics.query_errors, cases.size());
  EXPECT_EQ(api.metrics.queries, 0u);
}

TEST(ApiQuery, DetectionNotConfiguredIsUnavailableAndUnknownRoutesAre404) {
  Api api;
  httplib::Result detect = api.Post("/v1/detect", "", "application/json");
  ASSERT_TRUE(detect);
  EXPECT_EQ(detect->status, 503);
  EXPECT_NE(Error(detect).find("detection is not configured"), std::string::npos);

  httplib::Result nothing = api.Get("/v1/nothing");
  ASSERT_TRUE(nothing);
  EXPECT_EQ(nothing->status, 404);
  EXPECT_EQ(Error(nothing), "no route GET /v1/nothing");
  httplib::Result wrong_method = api.Post("/v1/alerts", "", "application/json");
  ASSERT_TRUE(wrong_method);
  EXPECT_EQ(wrong_method->status, 404);
}

TEST(ApiAuth, OnlyTheExactTokenPassesAndTheSchemeIsCaseInsensitive) {
  Api api("s3cret");
  struct Case {
    std::string authorization;
    int status;
  };
  const std::vector<Case> cases = {
      {"", 401},
      {"Bearer s3cret", 200},
      {"bearer s3cret", 200},  // RFC 9110: the scheme is case-insensitive
      {"BEARER s3cret", 200},
      {"Bearer S3CRET", 401},  // the token is not
      {"Bearer s3cre", 401},
      {"Bearer s3cretX", 401},
      {"Bearer  s3cret", 401},
      {"Basic s3cret", 401},
      {"s3cret", 401},
  };
  size_t refused = 0;
  for (const Case& c : cases) {
    httplib::Result res = api.Get("/v1/alerts", c.authorization);
    ASSERT_TRUE(res) << c.authorization;
    EXPECT_EQ(res->status, c.status) << "'" << c.authorization << "'";
    if (c.status == 401) {
      ++refused;
      EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer");
      EXPECT_NE(Error(res).find("bearer token"), std::string::npos);
    }
  }
  EXPECT_EQ(api.metrics.unauthorized, refused);
}

TEST(ApiAuth, AnUnauthorizedBatchIsNotStoredAndHealthzNeedsNoToken) {
  Api api("s3cret");
  httplib::Result res = api.Post("/v1/ingest", Batch(3), kProtobuf, "Bearer wrong!");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(api.metrics.batches_accepted + api.metrics.batches_malformed, 0u);
  EXPECT_EQ(api.Samples("Bearer s3cret"), 0);

  httplib::Result health = api.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");
}

// ProfiledBatch() — `n` records of /cart/ at commit A whose profile is
// view -> work (self `work` each); the first `with_flag` carry new_feed=on
// and call extra (self 9000) from view, the others carry new_feed=off.
std::string ProfiledBatch(int n, int with_flag, uint64_t sequence = 1) {
  record::Batch b;
  b.set_sender("w1");
  b.set_sequence(sequence);
  for (int i = 0; i < n; ++i) {
    record::RequestRecord* r = b.add_records();
    *r = Record(i);
    r->set_commit("A");
    const bool on = i < with_flag;
    (*r->mutable_flags())["new_feed"] = on ? "on" : "off";
    profile::CallTree t("cpu_ns", "test", "exact");
    const profile::NodeId view = t.Child(profile::kRoot, t.Intern({"app.py", 1, "view"}));
    const profile::NodeId work = t.Child(view, t.Intern({"app.py", 2, "work"}));
    t.AddCall(work, 100, 100, true);
    uint64_t extra_cost = 0;
    if (on) {
      extra_cost = 9000;
      t.AddCall(t.Child(view, t.Intern({"app.py", 3, "extra"})), extra_cost, extra_cost, true);
    }
    t.AddCall(view, 10, 110 + extra_cost, true);
    t.ToProto(r->mutable_profile());
  }
  return b.SerializeAsString();
}

// The profile routes slice by a flag's value: the tree of new_feed=on holds
// its requests only, the diff off -> on names the function the flag adds.
TEST(ApiProfiles, TreeAndDiffSliceByAFlagsValue) {
  Api api;
  ASSERT_EQ(api.Post("/v1/ingest", ProfiledBatch(6, 2), kProtobuf)->status, 200);

  httplib::Result on = api.Get("/v1/query/tree?since=2h&flag=new_feed&flag_value=on");
  ASSERT_TRUE(on);
  ASSERT_EQ(on->status, 200) << on->body;
  EXPECT_EQ(Json(on)["profiled_requests"], 2);
  EXPECT_EQ(Json(on)["root"]["total"], 2 * (110 + 9000));
  httplib::Result all = api.Get("/v1/query/tree?since=2h");
  ASSERT_TRUE(all);
  EXPECT_EQ(Json(all)["profiled_requests"], 6);

  httplib::Result diff =
      api.Get("/v1/query/diff?since=2h&flag=new_feed&base_value=off&target_value=on&commit=A");
  ASSERT_TRUE(diff);
  ASSERT_EQ(diff->status, 200) << diff->body;
  const nlohmann::json d = Json(diff);
  EXPECT_EQ(d["base"]["flag_value"], "off");
  EXPECT_EQ(d["base"]["profiled_requests"], 4);
  EXPECT_EQ(d["target"]["flag"], "new_feed");
  EXPECT_EQ(d["target"]["commit"], "A");
  ASSERT_FALSE(d["functions"].empty());
  EXPECT_EQ(d["functions"][0]["name"], "extra");
  EXPECT_DOUBLE_EQ(d["functions"][0]["delta_self"].get<double>(), 9000);

  httplib::Result missing =
      api.Get("/v1/query/diff?since=2h&flag=new_feed&base_value=off&target_value=maybe");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(Error(missing).find("flag new_feed = 'maybe'"), std::string::npos) << missing->body;
}

// A tree trimmed by max_nodes keeps the heaviest paths and one frame for
// the rest, so the widths still add up to the whole.
TEST(ApiProfiles, ATreeTrimmedToMaxNodesKeepsItsWidths) {
  Api api;
  ASSERT_EQ(api.Post("/v1/ingest", ProfiledBatch(3, 1), kProtobuf)->status, 200);
  httplib::Result whole = api.Get("/v1/query/tree?since=2h");
  ASSERT_TRUE(whole);
  EXPECT_EQ(Json(whole)["nodes"], 3);
  EXPECT_EQ(Json(whole)["nodes_shown"], 3);

  httplib::Result res = api.Get("/v1/query/tree?since=2h&max_nodes=2");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const nlohmann::json t = Json(res);
  EXPECT_EQ(t["nodes"], 3);
  EXPECT_EQ(t["nodes_shown"], 2);
  const nlohmann::json& view = t["root"]["children"][0];
  EXPECT_EQ(view["name"], "view");
  // extra (9000) kept; work (3 x 100) trimmed into one frame.
  std::map<std::string, int64_t> children;
  for (const nlohmann::json& c : view["children"])
    children[c["name"].get<std::string>()] = c["total"].get<int64_t>();
  EXPECT_EQ(children, (std::map<std::string, int64_t>{{"extra", 9000}, {kTrimmedFrame, 300}}));
}

TEST(ApiProfiles, EachBadProfileParameterIsA400NamingIt) {
  Api api;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/v1/query/tree?flag=new_feed", "flag= and flag_value= go together"},
      {"/v1/query/functions?flag_value=on", "flag= and flag_value= go together"},
      {"/v1/query/tree?max_nodes=0", "max_nodes '0' must be an integer in 1..200000"},
      {"/v1/query/tree?format=svg", "format 'svg'"},
      {"/v1/query/diff?base_commit=A", "diff needs base_commit= and target_commit="},
      {"/v1/query/diff?base_commit=A&target_commit=B&commit=C", "not commit="},
      {"/v1/query/diff?flag=f&flag_value=on&base_value=a&target_value=b", "not flag_value="},
      {"/v1/query/diff?flag=f&base_commit=A&target_commit=B", "base_value= and target_value="},
  };
  for (const auto& [path, needle] : cases) {
    httplib::Result res = api.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 400) << path << ": " << res->body;
    EXPECT_NE(Error(res).find(needle), std::string::npos) << path << ": " << res->body;
  }
}

// The dashboard's files are served without the token (they hold no data);
// the API behind them is not.
TEST(ApiStatic, TheDashboardNeedsNoTokenAndItsDataDoes) {
  Api api("s3cret");
  httplib::Result page = api.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("<html"), std::string::npos);
  const StaticAsset* index = FindStaticAsset("/");
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(page->body, index->body);
  EXPECT_EQ(api.Get("/v1/query/tree?since=1h")->status, 401);
  EXPECT_EQ(api.Get("/no-such-file.js")->status, 401);  // not an asset: the API's rules
}

// Hook — a webhook receiver on loopback that keeps every body it is sent.
class Hook {
 public:
  Hook() {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      bodies_.push_back(nlohmann::json::parse(req.body));
      res.set_content("ok", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Hook() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<nlohmann::json> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<nlohmann::json> bodies_;
};

// OpenAlert() — a stored open alert as the detector opens one; its id.
int64_t OpenAlert(store::Store& store, const std::string& endpoint) {
  detect::Finding f;
  f.kind = "rollout";
  f.service = "shop";
  f.endpoint = endpoint;
  f.cause = "commit b vs a";
  f.effect = {0.05, 0.03, 0.07, 0.9, true, ""};
  f.alert = true;
  Result<store::UpsertOutcome> out = store.UpsertAlert({.id = 0,
                                                        .key = f.Key(),
                                                        .service = f.service,
                                                        .endpoint = f.endpoint,
                                                        .kind = f.kind,
                                                        .state = "open",
                                                        .opened_us = NowUnixUs(),
                                                        .updated_us = NowUnixUs(),
                                                        .body = detect::ToJson(f).dump(),
                                                        .reopens = 0});
  EXPECT_TRUE(out.ok() && out->opened);
  return out.ok() ? out->id : 0;
}

TEST(ApiAlerts, AcknowledgeThenResolveByHandEachKeptAsAnEventAndSentOnce) {
  Hook hook;
  AlertSinkOptions sink_options;
  sink_options.urls = {hook.url()};
  sink_options.log = [](std::string_view) {};
  AlertSinks sinks(std::move(sink_options));
  Api api("s3cret", 16, 0, &sinks);
  const std::string auth = "Bearer s3cret";
  const int64_t id = OpenAlert(api.store(), "/cart/");
  const std::string path = "/v1/alerts/" + std::to_string(id);
  auto post = [&](const std::string& body, const std::string& authorization) {
    return api.client().Post(path, {{"Authorization", authorization}}, body, "application/json");
  };

  httplib::Result unauthorized = post(R"({"state": "acknowledged"})", "Bearer wrong");
  ASSERT_TRUE(unauthorized);
  EXPECT_EQ(unauthorized->status, 401);

  httplib::Result ack = post(R"({"state": "acknowledged", "by": "ana", "note": "looking"})", auth);
  ASSERT_TRUE(ack);
  ASSERT_EQ(ack->status, 200) << ack->body;
  EXPECT_EQ(Json(ack)["alert"]["state"], "acknowledged");
  EXPECT_EQ(Json(ack)["alert"]["endpoint"], "/cart/");

  httplib::Result twice = post(R"({"state": "acknowledged"})", auth);
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->status, 409);
  EXPECT_NE(Error(twice).find("already acknowledged"), std::string::npos) << twice->body;

  // The live alerts list finds it by its state; id= finds it whenever it opened.
  httplib::Result acked = api.Get("/v1/alerts?state=acknowledged", auth);
  ASSERT_TRUE(acked);
  ASSERT_EQ(Json(acked)["alerts"].size(), 1u);
  EXPECT_EQ(Json(acked)["alerts"][0]["id"], id);
  httplib::Result by_id = api.Get("/v1/alerts?id=" + std::to_string(id), auth);
  ASSERT_TRUE(by_id);
  ASSERT_EQ(Json(by_id)["alerts"].size(), 1u);
  EXPECT_EQ(Json(by_id)["alerts"][0]["state"], "acknowledged");

  httplib::Result resolved = post(R"({"state": "resolved", "note": "fixed in c3"})", auth);
  ASSERT_TRUE(resolved);
  ASSERT_EQ(resolved->status, 200) << resolved->body;
  const nlohmann::json events = Json(resolved)["events"];
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["state"], "open");
  EXPECT_EQ(events[0]["by"], "detector");
  EXPECT_EQ(events[1]["state"], "acknowledged");
  EXPECT_EQ(events[1]["by"], "ana");
  EXPECT_EQ(events[1]["note"], "looking");
  EXPECT_EQ(events[2]["state"], "resolved");
  EXPECT_EQ(events[2]["by"], "api");
  EXPECT_EQ(events[2]["note"], "fixed in c3");

  httplib::Result again = post(R"({"state": "acknowledged"})", auth);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409);
  EXPECT_EQ(Json(again)["state"], "resolved");

  httplib::Result one = api.Get(path, auth);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->status, 200);
  EXPECT_EQ(Json(one)["alert"]["state"], "resolved");
  EXPECT_EQ(Json(one)["events"].size(), 3u);

  // One delivery per change, none for the refused ones.
  sinks.Stop();
  const std::vector<nlohmann::json> sent = hook.bodies();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0]["change"], "acknowledged");
  EXPECT_EQ(sent[0]["by"], "ana");
  EXPECT_EQ(sent[0]["id"], id);
  EXPECT_EQ(sent[1]["change"], "resolved");
  EXPECT_EQ(sent[1]["state"], "resolved");
  EXPECT_EQ(sent[1]["endpoint"], "/cart/");
}

TEST(ApiAlerts, BadRequestsGetClear4xx) {
  Api api;
  const int64_t id = OpenAlert(api.store(), "/cart/");
  const std::string path = "/v1/alerts/" + std::to_string(id);
  struct Case {
    std::string path, body;
    int status;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {path, "{not json", 400, "must be a JSON object"},
      {path, R"(["resolved"])", 400, "must be a JSON object"},
      {path, R"({"note": "x"})", 400, "state is missing"},
      {path, R"({"state": "closed"})", 400, "state 'closed' must be acknowledged or resolved"},
      {path, R"({"state": "resolved", "by": 7})", 400, "by must be a string"},
      {path, R"({"state": "open"})", 409, "cannot go back to open"},
      {"/v1/alerts/999", R"({"state": "resolved"})", 404, "no alert 999"},
      {"/v1/alerts/abc", R"({"state": "resolved"})", 400, "must be a positive integer"},
  };
  for (const Case& c : cases) {
    httplib::Result res = api.Post(c.path, c.body, "application/json");
    ASSERT_TRUE(res) << c.body;
    EXPECT_EQ(res->status, c.status) << c.body << ": " << res->body;
    EXPECT_NE(Error(res).find(c.needle), std::string::npos) << c.body << ": " << res->body;
  }
  httplib::Result missing = api.Get("/v1/alerts/999");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  // Nothing changed the alert.
  httplib::Result one = api.Get(path);
  ASSERT_TRUE(one);
  EXPECT_EQ(Json(one)["alert"]["state"], "open");
  EXPECT_EQ(Json(one)["events"].size(), 1u);
}

}  // namespace
}  // namespace cpuledger::server
