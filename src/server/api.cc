#include "server/api.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <string_view>

#include "base/duration.h"
#include "base/time_text.h"
#include "detect/detect.h"
#include "profile/export.h"
#include "record/codec.h"
#include "server/api_json.h"
#include "server/static_assets.h"

namespace cpuledger::server {
namespace {

using Handler = std::function<void(ApiContext&, const httplib::Request&, httplib::Response&)>;

void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  // Replace invalid UTF-8 rather than throw: a response must always go out.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

void SendError(httplib::Response& res, const Status& status) {
  SendJson(res, HttpStatusFor(status), {{"error", status.message()}});
}

// UnixSecondsParam() — a query parameter in unix seconds (fractions allowed)
// as microseconds. Up to 1e11 s (the year 5138): beyond it the microseconds
// would overflow an int64 not far on. RETURNS: InvalidArgument naming it.
Status UnixSecondsParam(const httplib::Request& req, const char* name, int64_t* out_us) {
  const std::string text = req.get_param_value(name);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(v) || v < 0 || v > 1e11)
    return InvalidArgument(std::string(name) + " '" + text + "' must be unix seconds (0 to 1e11)");
  *out_us = static_cast<int64_t>(v * 1e6);
  return OkStatus();
}

// ParseTimeRange() — since=DURATION (relative to now) or from=/to= in unix
// seconds (fractions allowed); the default is the last hour.
Status ParseTimeRange(const httplib::Request& req, int64_t* from_us, int64_t* to_us) {
  const int64_t now = NowUnixUs();
  *to_us = now + 1;  // inclusive of "now"
  *from_us = now - 3'600'000'000;
  if (req.has_param("since")) {
    Result<int64_t> since = ParseDurationUs(req.get_param_value("since"));
    if (!since.ok()) return InvalidArgument("since: " + since.status().message());
    *from_us = std::max<int64_t>(0, now - *since);
  }
  if (req.has_param("from")) {
    if (Status s = UnixSecondsParam(req, "from", from_us); !s.ok()) return s;
  }
  if (req.has_param("to")) {
    if (Status s = UnixSecondsParam(req, "to", to_us); !s.ok()) return s;
  }
  if (*from_us >= *to_us) return InvalidArgument("the time range is empty (from >= to)");
  return OkStatus();
}

// ParseCount() — NAME=N in 1..max; *count unchanged without NAME=.
Status ParseCount(const httplib::Request& req, const char* name, long max, size_t* count) {
  if (!req.has_param(name)) return OkStatus();
  const std::string text = req.get_param_value(name);
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0' || v <= 0 || v > max)
    return InvalidArgument(std::string(name) + " '" + text + "' must be an integer in 1.." +
                           std::to_string(max));
  *count = static_cast<size_t>(v);
  return OkStatus();
}

// ParseLimit() — limit=N in 1..100000; *limit unchanged without limit=.
Status ParseLimit(const httplib::Request& req, size_t* limit) {
  return ParseCount(req, "limit", 100000, limit);
}

Result<store::QuerySpec> ParseQuerySpec(const httplib::Request& req, store::Bucket default_bucket) {
  store::QuerySpec spec;
  Status range = ParseTimeRange(req, &spec.from_us, &spec.to_us);
  if (!range.ok()) return range;
  if (req.has_param("group_by")) {
    const std::string group_by = req.get_param_value("group_by");  // owns what `list` views
    std::string_view list = group_by;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view name = list.substr(0, comma);
      if (!name.empty()) {
        Result<store::DimensionRef> d = store::ParseDimension(name);
        if (!d.ok()) return InvalidArgument("group_by: " + d.status().message());
        spec.group_by.push_back(*d);
      }
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  for (size_t i = 0; i < req.get_param_value_count("where"); ++i) {
    const std::string clause = req.get_param_value("where", i);
    const size_t eq = clause.find('=');
    if (eq == std::string::npos)
      return InvalidArgument("where '" + clause + "' must be DIMENSION=VALUE");
    Result<store::DimensionRef> d = store::ParseDimension(clause.substr(0, eq));
    if (!d.ok()) return InvalidArgument("where: " + d.status().message());
    spec.filters.push_back({*d, clause.substr(eq + 1)});
  }
  spec.bucket = default_bucket;
  if (req.has_param("bucket")) {
    Result<store::Bucket> b = store::ParseBucket(req.get_param_value("bucket"));
    if (!b.ok()) return b.status();
    spec.bucket = *b;
  }
  if (Status s = ParseLimit(req, &spec.limit); !s.ok()) return s;
  return spec;
}

// kTreeNodesShown — /v1/query/tree's default max_nodes=.
constexpr size_t kTreeNodesShown = 20'000;

// ParseFunctionQuery() — the time range, service=, endpoint=, commit= (exact,
// each optional), flag= with flag_value= (both or neither; a diff names its
// flag values otherwise: flag_value_param false), limit= and sort=self|total.
Result<store::FunctionQuery> ParseFunctionQuery(const httplib::Request& req,
                                                bool flag_value_param = true) {
  store::FunctionQuery q;
  if (Status s = ParseTimeRange(req, &q.from_us, &q.to_us); !s.ok()) return s;
  if (req.has_param("service")) q.service = req.get_param_value("service");
  if (req.has_param("endpoint")) q.endpoint = req.get_param_value("endpoint");
  if (req.has_param("commit")) q.commit = req.get_param_value("commit");
  if (flag_value_param && req.has_param("flag") != req.has_param("flag_value"))
    return InvalidArgument("flag= and flag_value= go together: the requests carrying flag F = v");
  if (flag_value_param && req.has_param("flag")) {
    q.flag = req.get_param_value("flag");
    q.flag_value = req.get_param_value("flag_value");
  }
  if (Status s = ParseLimit(req, &q.limit); !s.ok()) return s;
  if (req.has_param("sort")) {
    Result<store::FunctionSort> sort = store::ParseFunctionSort(req.get_param_value("sort"));
    if (!sort.ok()) return sort.status();
    q.sort = *sort;
  }
  return q;
}

// Timed() — runs a query handler, counting it and its latency.
void Timed(ApiContext& ctx, httplib::Response& res, const std::function<Status()>& body) {
  const auto t0 = std::chrono::steady_clock::now();
  Status s = body();
  ctx.metrics->query_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (s.ok()) {
    ctx.metrics->queries++;
  } else {
    ctx.metrics->query_errors++;
    SendError(res, s);
  }
}

void HandleIngest(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Metrics& m = *ctx.metrics;
  Result<record::Encoding> encoding =
      record::EncodingForContentType(req.get_header_value("Content-Type"));
  if (!encoding.ok()) {
    m.batches_bad_type++;
    SendJson(res, 415, {{"error", encoding.status().message()}});
    return;
  }
  Result<record::ArenaBatch> batch = record::DecodeBatchOnArena(*encoding, req.body);
  if (!batch.ok()) {
    if (batch.status().code() == StatusCode::kResourceExhausted) {
      m.batches_too_large++;
      SendJson(res, 413, {{"error", batch.status().message()}});
    } else {
      m.batches_malformed++;
      SendError(res, batch.status());
    }
    return;
  }
  const size_t records = batch->batch->records_size();
  const size_t tallies = batch->batch->tallies_size();
  const uint64_t dropped_by_client = batch->batch->dropped_records();
  Result<store::AppendOutcome> outcome = ctx.writer->Submit(std::move(*batch));
  if (!outcome.ok()) {
    (outcome.status().code() == StatusCode::kResourceExhausted ? m.batches_overloaded
                                                               : m.batches_store_failed)++;
    m.records_dropped += records;
    res.set_header("Retry-After", "1");
    SendJson(res, 503, {{"error", outcome.status().message()}});
    return;
  }
  if (outcome->duplicate) {
    m.batches_duplicate++;
    m.records_duplicate += records;
  } else {
    m.batches_accepted++;
    m.records_accepted += outcome->records;
    m.tallies_accepted += outcome->tallies;
    m.client_dropped += dropped_by_client;
  }
  SendJson(res, 200,
           {{"accepted", outcome->duplicate ? 0 : records},
            {"tallies", outcome->duplicate ? 0 : tallies},
            {"duplicate", outcome->duplicate}});
}

void HandleQuery(ApiContext& ctx, const httplib::Request& req, httplib::Response& res,
                 store::Bucket default_bucket) {
  Timed(ctx, res, [&]() -> Status {
    Result<store::QuerySpec> spec = ParseQuerySpec(req, default_bucket);
    if (!spec.ok()) return spec.status();
    Result<store::QueryResult> result = ctx.store->Query(*spec);
    if (!result.ok()) return result.status();
    SendJson(res, 200, QueryResultJson(*spec, *result));
    return OkStatus();
  });
}

void HandleEfficiency(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Timed(ctx, res, [&]() -> Status {
    store::EfficiencySpec spec;
    Status range = ParseTimeRange(req, &spec.from_us, &spec.to_us);
    if (!range.ok()) return range;
    spec.service = req.get_param_value("service");
    Result<std::vector<store::ServiceEfficiency>> result = ctx.store->Efficiency(spec);
    if (!result.ok()) return result.status();
    nlohmann::json j = EfficiencyJson(*result);
    j["from_us"] = spec.from_us;
    j["to_us"] = spec.to_us;
    SendJson(res, 200, j);
    return OkStatus();
  });
}

void HandleDeploys(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Timed(ctx, res, [&]() -> Status {
    Result<std::vector<store::DeployEntry>> result =
        ctx.store->Deploys(req.get_param_value("service"));
    if (!result.ok()) return result.status();
    SendJson(res, 200, DeploysJson(*result));
    return OkStatus();
  });
}

void HandleFunctions(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Timed(ctx, res, [&]() -> Status {
    Result<store::FunctionQuery> query = ParseFunctionQuery(req);
    if (!query.ok()) return query.status();
    Result<store::FunctionReport> report = ctx.store->Functions(*query);
    if (!report.ok()) return report.status();
    SendJson(res, 200, FunctionReportJson(*query, *report));
    return OkStatus();
  });
}

// SendProfileFile() — `tree` in one of profile/export.h's formats, as a
// download. RETURNS: InvalidArgument for another format name.
Status SendProfileFile(const profile::CallTree& tree, const std::string& format,
                       httplib::Response& res) {
  std::string body, type, name;
  if (format == "collapsed") {
    body = profile::ToCollapsed(tree), type = "text/plain; charset=utf-8", name = "profile.folded";
  } else if (format == "speedscope") {
    body = profile::ToSpeedscope(tree, "cpuledger"), type = "application/json";
    name = "profile.speedscope.json";
  } else if (format == "pprof") {
    Result<std::string> pb = profile::ToPprof(tree);
    if (!pb.ok()) return pb.status();
    body = std::move(*pb), type = "application/octet-stream", name = "profile.pb";
  } else if (format == "pstats") {
    body = profile::ToPstats(tree), type = "application/octet-stream", name = "profile.pstats";
  } else {
    return InvalidArgument("format '" + format +
                           "' must be json, collapsed, speedscope, pprof or pstats");
  }
  res.set_header("Content-Disposition", "attachment; filename=\"" + name + "\"");
  res.set_content(std::move(body), type);
  return OkStatus();
}

// HandleTree() — the slice's profiles merged into one call-path tree (the
// flame graph's input; two of them, base and target, make a diff graph), as
// JSON trimmed to max_nodes= call paths (default kTreeNodesShown: a page
// cannot draw more, and a real app's day can hold 200,000) or, with format=,
// as a whole file in an export format (costs summed over the profiled
// requests, as the tree holds them).
void HandleTree(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Timed(ctx, res, [&]() -> Status {
    Result<store::FunctionQuery> query = ParseFunctionQuery(req);
    if (!query.ok()) return query.status();
    Result<profile::CallTree> tree = ctx.store->FunctionTree(*query);
    if (!tree.ok()) return tree.status();
    const std::string format = req.has_param("format") ? req.get_param_value("format") : "json";
    if (format != "json") return SendProfileFile(*tree, format, res);
    size_t max_nodes = kTreeNodesShown;
    if (Status s =
            ParseCount(req, "max_nodes", static_cast<long>(record::kMaxProfileNodes), &max_nodes);
        !s.ok())
      return s;
    SendJson(res, 200, CallTreeJson(*query, *tree, max_nodes));
    return OkStatus();
  });
}

// DiffSlices — the two slices a diff compares and how to name them.
struct DiffSlices {
  store::FunctionQuery base, target;
  DiffSide base_side, target_side;
};

// ParseDiffSlices() — base_commit= and target_commit= (commit A against B),
// or flag= with base_value= and target_value= (flag F = off against on,
// within commit= if given), over ParseFunctionQuery()'s slice.
Result<DiffSlices> ParseDiffSlices(const httplib::Request& req) {
  const bool by_flag = req.has_param("flag");
  if (by_flag && req.has_param("flag_value"))
    return InvalidArgument("a flag diff takes base_value= and target_value=, not flag_value=");
  const char* base_key = by_flag ? "base_value" : "base_commit";
  const char* target_key = by_flag ? "target_value" : "target_commit";
  if (!req.has_param(base_key) || !req.has_param(target_key))
    return InvalidArgument(
        "diff needs base_commit= and target_commit=, or flag= with base_value= and target_value=");
  if (!by_flag && req.has_param("commit"))
    return InvalidArgument("diff takes base_commit= and target_commit=, not commit=");
  Result<store::FunctionQuery> query = ParseFunctionQuery(req, /*flag_value_param=*/!by_flag);
  if (!query.ok()) return query.status();
  DiffSlices d{*query, *query, {}, {}};
  const std::string base = req.get_param_value(base_key);
  const std::string target = req.get_param_value(target_key);
  if (by_flag) {
    const std::string flag = req.get_param_value("flag");
    d.base.flag = d.target.flag = flag;
    d.base.flag_value = base;
    d.target.flag_value = target;
    d.base_side = {query->commit.value_or(""), flag, base, 0};
    d.target_side = {query->commit.value_or(""), flag, target, 0};
  } else {
    d.base.commit = base;
    d.target.commit = target;
    d.base_side = {base, "", "", 0};
    d.target_side = {target, "", "", 0};
  }
  return d;
}

// SideName() — "commit 'abc'" or "flag new_feed = 'on'", for messages.
std::string SideName(const DiffSide& side) {
  if (side.flag.empty()) return "commit '" + side.commit + "'";
  return "flag " + side.flag + " = '" + side.flag_value + "'";
}

// HandleDiff() — DiffTrees(base slice's merged tree, target's), ranked by
// added self cost per request (rank=self, the default: where the new work
// runs, so a new helper outranks the callers it makes costlier) or by added
// total cost (rank=total).
void HandleDiff(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Timed(ctx, res, [&]() -> Status {
    Result<DiffSlices> slices = ParseDiffSlices(req);
    if (!slices.ok()) return slices.status();
    Result<profile::CallTree> before = ctx.store->FunctionTree(slices->base);
    if (!before.ok()) return before.status();
    Result<profile::CallTree> after = ctx.store->FunctionTree(slices->target);
    if (!after.ok()) return after.status();
    slices->base_side.profiled_requests = before->requests();
    slices->target_side.profiled_requests = after->requests();
    for (const DiffSide* side : {&slices->base_side, &slices->target_side})
      if (side->profiled_requests == 0)
        return NotFound("no profiled requests of " + SideName(*side) +
                        " in the slice (time range, service, endpoint" +
                        (side->flag.empty() ? ")" : ", commit)"));
    if (before->unit() != after->unit())
      return InvalidArgument("the base profiles are in " + before->unit() +
                             " and the target's in " + after->unit() + "; cannot compare");
    profile::DiffOptions options;
    const std::string rank = req.has_param("rank") ? req.get_param_value("rank") : "self";
    if (rank != "self" && rank != "total")
      return InvalidArgument("rank '" + rank + "' must be self or total");
    options.rank = rank == "self" ? profile::DiffRank::kBySelf : profile::DiffRank::kByTotal;
    options.max_paths = store::kFunctionTopPaths;
    Result<std::vector<profile::FunctionDiff>> diffs = profile::DiffTrees(*before, *after, options);
    if (!diffs.ok()) return diffs.status();
    nlohmann::json body =
        DiffJson(after->unit(), slices->base_side, slices->target_side, *diffs, slices->base.limit);
    body["rank"] = rank;
    SendJson(res, 200, body);
    return OkStatus();
  });
}

// RenderHttpStats() — the HTTP layer's counters in Prometheus text.
std::string RenderHttpStats(const http::HttpStats& s) {
  std::string out;
  auto one = [&out](const char* name, const char* type, const char* help, uint64_t v) {
    out += PrometheusSample(name, type, help, v);
  };
  one("cpuledger_http_connections", "gauge", "Client connections open.", s.connections_open);
  one("cpuledger_http_body_bytes_in_flight", "gauge",
      "Request body bytes being read or handled (bounded; past it, 503).", s.body_bytes_in_flight);
  one("cpuledger_http_connections_accepted_total", "counter", "Client connections accepted.",
      s.connections_accepted);
  one("cpuledger_http_timed_out_total", "counter",
      "Connections closed by a header, body or write deadline (slow clients).", s.timed_out);
  one("cpuledger_http_refused_total", "counter",
      "Requests refused by the HTTP layer (malformed, too large, too slow, busy).", s.refused);
  return out;
}

void HandleMetrics(ApiContext& ctx, const httplib::Request&, httplib::Response& res) {
  Result<store::StoreStats> stats = ctx.store->Stats();
  std::string text = ctx.metrics->RenderPrometheus(stats.ok() ? &*stats : nullptr);
  if (ctx.sinks != nullptr) text += RenderPrometheus(ctx.sinks->counters());
  if (ctx.http_stats) text += RenderHttpStats(ctx.http_stats());
  text += PrometheusSample("cpuledger_store_writable", "gauge",
                           "1 while the store's writes succeed (/healthz).",
                           ctx.writer->Health().writable ? 1 : 0);
  text += PrometheusSample("cpuledger_ingest_queue_batches", "gauge",
                           "Batches waiting for the store writer.", ctx.writer->Queued());
  res.set_content(text, "text/plain; version=0.0.4");
}

struct Route {
  const char* method;
  const char* path;
  bool public_route;  // reachable without the token
  Handler handler;
};

// HandleDetect() — runs every detector once: window since= (default the
// server's detect window), ending at at= (unix s; default now). Keeps the
// run and sends newly opened alerts, as the schedule does.
void HandleDetect(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Timed(ctx, res, [&]() -> Status {
    if (!ctx.detect) return Unavailable("detection is not configured on this server");
    int64_t now = NowUnixUs();
    int64_t window = 0;  // 0: the server's default
    if (req.has_param("since")) {
      Result<int64_t> since = ParseDurationUs(req.get_param_value("since"));
      if (!since.ok()) return InvalidArgument("since: " + since.status().message());
      window = *since;
    }
    if (req.has_param("at")) {
      if (Status s = UnixSecondsParam(req, "at", &now); !s.ok()) return s;
    }
    size_t opened = 0;
    Result<detect::DetectReport> report = ctx.detect(now, window, &opened);
    if (!report.ok()) return report.status();
    nlohmann::json body = detect::ToJson(*report);
    body["opened"] = opened;
    SendJson(res, 200, body);
    return OkStatus();
  });
}

// ParseAlertId() — the ID of /v1/alerts/ID (or of id=). RETURNS:
// InvalidArgument for anything but a positive integer.
Result<int64_t> ParseAlertId(std::string_view text) {
  int64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || id <= 0)
    return InvalidArgument("alert id '" + std::string(text.substr(0, 32)) +
                           "' must be a positive integer");
  return id;
}

// HandleAlerts() — stored alerts, newest first: since= | from=&to= (default
// 7 days), service=, state=open|acknowledged|resolved, limit=; or id= (that
// one alert whenever it opened).
void HandleAlerts(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Timed(ctx, res, [&]() -> Status {
    nlohmann::json list = nlohmann::json::array();
    if (req.has_param("id")) {
      Result<int64_t> id = ParseAlertId(req.get_param_value("id"));
      if (!id.ok()) return id.status();
      Result<store::Alert> one = ctx.store->AlertById(*id);
      if (!one.ok()) return one.status();
      list.push_back(AlertJson(*one));
      SendJson(res, 200, {{"alerts", list}});
      return OkStatus();
    }
    store::AlertQuery q;
    if (!req.has_param("since") && !req.has_param("from")) {
      q.from_us = NowUnixUs() - 7LL * 86'400'000'000;
    } else if (Status s = ParseTimeRange(req, &q.from_us, &q.to_us); !s.ok()) {
      return s;
    }
    if (req.has_param("service")) q.service = req.get_param_value("service");
    if (req.has_param("state")) {
      const std::string state = req.get_param_value("state");
      if (!store::ParseAlertState(state))
        return InvalidArgument("state '" + state + "' must be open, acknowledged or resolved");
      q.state = state;
    }
    if (Status s = ParseLimit(req, &q.limit); !s.ok()) return s;
    Result<std::vector<store::Alert>> rows = ctx.store->Alerts(q);
    if (!rows.ok()) return rows.status();
    for (const store::Alert& a : *rows) list.push_back(AlertJson(a));
    SendJson(res, 200, {{"alerts", list}});
    return OkStatus();
  });
}

constexpr std::string_view kAlertPrefix = "/v1/alerts/";

// SendAlertWithEvents() — {"alert": AlertJson, "events": AlertEventsJson}.
Status SendAlertWithEvents(ApiContext& ctx, const store::Alert& alert, httplib::Response& res) {
  Result<std::vector<store::AlertEvent>> events = ctx.store->AlertEvents(alert.id);
  if (!events.ok()) return events.status();
  SendJson(res, 200, {{"alert", AlertJson(alert)}, {"events", AlertEventsJson(*events)}});
  return OkStatus();
}

// HandleAlert() — GET /v1/alerts/ID: one alert with its events.
void HandleAlert(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Timed(ctx, res, [&]() -> Status {
    Result<int64_t> id = ParseAlertId(std::string_view(req.path).substr(kAlertPrefix.size()));
    if (!id.ok()) return id.status();
    Result<store::Alert> alert = ctx.store->AlertById(*id);
    if (!alert.ok()) return alert.status();
    return SendAlertWithEvents(ctx, *alert, res);
  });
}

// ParseTransition() — POST /v1/alerts/ID's body: {"state": "acknowledged" |
// "resolved", "by": who (default "api"), "note": why (default "")}.
Result<store::AlertTransition> ParseTransition(int64_t id, const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return InvalidArgument(
        "the body must be a JSON object: {\"state\": \"acknowledged\" or \"resolved\","
        " \"by\": \"...\", \"note\": \"...\"}");
  for (const char* key : {"state", "by", "note"})
    if (j.contains(key) && !j[key].is_string())
      return InvalidArgument(std::string(key) + " must be a string");
  if (!j.contains("state")) return InvalidArgument("state is missing (acknowledged or resolved)");
  const std::string state = j["state"].get<std::string>();
  const std::optional<store::AlertState> to = store::ParseAlertState(state);
  if (!to) return InvalidArgument("state '" + state + "' must be acknowledged or resolved");
  store::AlertTransition t{.id = id,
                           .to = *to,
                           .at_us = NowUnixUs(),
                           .by = j.value("by", "api"),
                           .note = j.value("note", ""),
                           .detail = ""};
  if (t.by.empty()) t.by = "api";
  if (t.by.size() > 200 || t.note.size() > 4000)
    return InvalidArgument("by (200 bytes) or note (4000 bytes) is too long");
  return t;
}

// HandleAlertTransition() — POST /v1/alerts/ID: acknowledge or resolve by
// hand; 409 when the alert's state does not allow it (AlertTransitionRefusal);
// the change goes to the webhooks.
void HandleAlertTransition(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  Timed(ctx, res, [&]() -> Status {
    Result<int64_t> id = ParseAlertId(std::string_view(req.path).substr(kAlertPrefix.size()));
    if (!id.ok()) return id.status();
    Result<store::AlertTransition> t = ParseTransition(*id, req.body);
    if (!t.ok()) return t.status();
    Result<store::TransitionOutcome> out = ctx.store->TransitionAlert(*t);
    if (!out.ok()) return out.status();
    if (!out->applied) {
      SendJson(res, 409,
               {{"error", "alert " + std::to_string(*id) + " cannot become " +
                              store::AlertStateName(t->to) + ": " + out->refusal},
                {"state", out->alert.state}});
      return OkStatus();
    }
    if (ctx.sinks != nullptr) {
      Result<detect::Finding> f = detect::FindingFromJson(
          nlohmann::json::parse(out->alert.body, nullptr, /*allow_exceptions=*/false));
      detect::AlertChange change;
      change.alert_id = out->alert.id;
      change.change = out->alert.state;
      change.state = out->alert.state;
      change.by = t->by;
      change.note = t->note;
      change.at_us = t->at_us;
      change.opened_us = out->alert.opened_us;
      change.reopens = out->alert.reopens;
      if (f.ok()) change.finding = std::move(*f);
      ctx.sinks->Send(change);
    }
    return SendAlertWithEvents(ctx, out->alert, res);
  });
}

// kRoutes — the whole HTTP surface.
const Route kRoutes[] = {
    {"POST", "/v1/ingest", false, HandleIngest},
    {"GET", "/v1/query/breakdown", false,
     [](ApiContext& c, const httplib::Request& q, httplib::Response& r) {
       HandleQuery(c, q, r, store::Bucket::kNone);
     }},
    {"GET", "/v1/query/timeseries", false,
     [](ApiContext& c, const httplib::Request& q, httplib::Response& r) {
       HandleQuery(c, q, r, store::Bucket::kMinute);
     }},
    {"GET", "/v1/query/efficiency", false, HandleEfficiency},
    {"GET", "/v1/query/deploys", false, HandleDeploys},
    {"GET", "/v1/query/functions", false, HandleFunctions},
    {"GET", "/v1/query/diff", false, HandleDiff},
    {"GET", "/v1/query/tree", false, HandleTree},
    {"POST", "/v1/detect", false, HandleDetect},
    {"GET", "/v1/alerts", false, HandleAlerts},
    {"GET", "/v1/alerts/", false, HandleAlert},  // a path ending in '/': /v1/alerts/ID
    {"POST", "/v1/alerts/", false, HandleAlertTransition},
    {"GET", "/metrics", false, HandleMetrics},
    {"GET", "/healthz", true,
     [](ApiContext& c, const httplib::Request&, httplib::Response& r) {
       // Degraded (503: a load balancer sends ingest elsewhere, clients
       // spool) while the store cannot write; healthy again on its own.
       const WriteHealth health = c.writer->Health();
       if (health.writable) {
         r.set_content("ok\n", "text/plain");
         return;
       }
       r.status = 503;
       r.set_content("degraded: the store cannot write since " +
                         UtcMinute(health.failing_since_us) + ": " + health.reason + "\n",
                     "text/plain");
     }},
};

// IsPublic() — a public route, or one of the dashboard's files (they hold
// no data: the page asks the API for it with the token).
bool IsPublic(const std::string& path) {
  if (FindStaticAsset(path) != nullptr) return true;
  for (const Route& r : kRoutes)
    if (r.public_route && path == r.path) return true;
  return false;
}

// BodyRefusal — why a request's body is refused before it is read.
struct BodyRefusal {
  int http_status;  // 400 or 413
  std::string reason;
};

// RefuseBody() — an announced body length must be a plain number within the
// limit. (The HTTP layer refuses a garbled length itself, and counts a
// chunked body against the limit as its chunks arrive.) RETURNS: nullopt
// when the body may be read.
std::optional<BodyRefusal> RefuseBody(const httplib::Request& req, size_t max_body_bytes) {
  if (!req.has_header("Content-Length")) return std::nullopt;
  const std::string text = req.get_header_value("Content-Length");
  uint64_t length = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return BodyRefusal{400, "Content-Length '" + text.substr(0, 32) + "' is not a byte count"};
  if (max_body_bytes > 0 && length > max_body_bytes)
    return BodyRefusal{413, "request body of " + std::to_string(length) +
                                " bytes is larger than max_body_bytes (" +
                                std::to_string(max_body_bytes) + ")"};
  return std::nullopt;
}

// TokenMatches() — constant-time comparison of the bearer token.
bool TokenMatches(const std::string& header, const std::string& token) {
  // The scheme is case-insensitive (RFC 9110 11.1); the token is not.
  static constexpr std::string_view kPrefix = "bearer ";
  if (header.size() != kPrefix.size() + token.size()) return false;
  for (size_t i = 0; i < kPrefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != kPrefix[i]) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i)
    diff |= static_cast<unsigned char>(header[kPrefix.size() + i] ^ token[i]);
  return diff == 0;
}

}  // namespace

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kResourceExhausted:
      return 503;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kInternal:
    case StatusCode::kIo:
      return 500;
  }
  return 500;
}

http::HttpService MakeHttpService(ApiContext& context) {
  ApiContext* ctx = &context;
  http::HttpService service;
  // Runs once the headers are in and before any body is read: a request
  // without the token, or with a body it may not send, costs no body bytes.
  service.admit = [ctx](const httplib::Request& req, httplib::Response& res) {
    if (!ctx->token.empty() && !IsPublic(req.path) &&
        !TokenMatches(req.get_header_value("Authorization"), ctx->token)) {
      ctx->metrics->unauthorized++;
      res.set_header("WWW-Authenticate", "Bearer");
      SendJson(res, 401,
               {{"error", "missing or wrong bearer token (Authorization: Bearer TOKEN)"}});
      return false;
    }
    if (std::optional<BodyRefusal> refused = RefuseBody(req, ctx->max_body_bytes)) {
      res.set_header("Connection", "close");  // the unread body must not pass for a request
      if (refused->http_status == 413) ctx->metrics->batches_too_large++;
      SendJson(res, refused->http_status, {{"error", refused->reason}});
      return false;
    }
    return true;
  };
  // Answers the HTTP layer's own refusals (400, 408, 413, 431, 503) in JSON too.
  service.refuse = [ctx](int status, const std::string& reason, httplib::Response& res) {
    if (status == 413) ctx->metrics->batches_too_large++;
    SendJson(res, status, {{"error", reason}});
  };
  service.handle = [ctx](const httplib::Request& req, httplib::Response& res) {
    for (const Route& route : kRoutes) {
      const bool head_of_get = req.method == "HEAD" && std::string_view(route.method) == "GET";
      // A route path ending in '/' takes one more segment (an id) after it.
      const std::string_view path = route.path;
      const bool matches = path.back() == '/'
                               ? req.path.size() > path.size() &&
                                     req.path.compare(0, path.size(), path) == 0 &&
                                     req.path.find('/', path.size()) == std::string::npos
                               : req.path == path;
      if (!matches || (req.method != route.method && !head_of_get)) continue;
      try {
        route.handler(*ctx, req, res);
      } catch (const std::exception& e) {  // a bug, not the client's fault: say so, keep serving
        res = httplib::Response();
        SendJson(res, 500, {{"error", std::string("internal error: ") + e.what()}});
      }
      return;
    }
    const StaticAsset* asset = FindStaticAsset(req.path);
    if (asset != nullptr && (req.method == "GET" || req.method == "HEAD")) {
      // Revalidated on every load, so a new binary's page is never mixed with
      // an old cached bundle.
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_content(std::string(asset->body), std::string(asset->content_type));
      return;
    }
    SendJson(res, 404, {{"error", "no route " + req.method + " " + req.path}});
  };
  return service;
}

}  // namespace cpuledger::server
