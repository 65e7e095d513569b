// src/server/api.h — the HTTP surface of `cpuledger serve`, defined in one
// route table (api.cc, kRoutes). The only place that maps StatusCode to HTTP.
//
//   POST /v1/ingest               protobuf (application/x-protobuf) or NDJSON
//                                 (application/x-ndjson) Batch
//   GET  /v1/query/breakdown      group_by=D1,D2 & since=1h | from=&to= (unix s)
//                                 & where=DIM=VALUE (repeatable) & bucket= & limit=
//   GET  /v1/query/timeseries     the same, bucket defaults to minute
//   GET  /v1/query/efficiency     since= | from=&to= & service=
//   GET  /v1/query/deploys        service=
//   GET  /v1/query/functions      function entities; /v1/query/diff: two commits
//   GET  /v1/query/tree           the slice's merged call-path tree (flame graphs);
//                                 format=collapsed|speedscope|pprof|pstats: a file
//   POST /v1/detect               since= & at= : runs every detector once
//                                 (detect::ToJson of the report, + "opened")
//   GET  /v1/alerts               since= | from=&to= & service= & state= & limit=,
//                                 or id= (one alert, whenever it opened)
//   GET  /v1/alerts/ID            one alert and its events (the lifecycle)
//   POST /v1/alerts/ID            {"state": "acknowledged"|"resolved", "by", "note"}:
//                                 404 unknown id, 409 a transition not allowed
//   GET  /healthz                 200 "ok" once the store is open (no token needed)
//   GET  /metrics                 Prometheus text
//   GET  /, /app.js, /app.css     the dashboard (static_assets.h; no token needed)
//
// Every route but /healthz requires `Authorization: Bearer TOKEN` when the
// server has a token. Errors are JSON: {"error": "what is wrong"}.
#pragma once

#include <functional>
#include <string>

#include "detect/detect.h"
#include "server/alert_sink.h"
#include "server/http/http_server.h"
#include "server/ingest_writer.h"
#include "server/metrics.h"
#include "store/store.h"

namespace cpuledger::server {

// ApiContext — what the handlers share; owned by Server.
struct ApiContext {
  store::Store* store = nullptr;
  IngestWriter* writer = nullptr;
  Metrics* metrics = nullptr;
  std::string token;            // empty: open
  AlertSinks* sinks = nullptr;  // its counters go on /metrics
  // detect(now_us, window_us (0: default), &opened) — one detector run, kept
  // and sent to the sinks; unset: /v1/detect answers 503.
  std::function<Result<detect::DetectReport>(int64_t, int64_t, size_t*)> detect;
  size_t max_body_bytes = 0;  // 0: no limit of our own (the HTTP layer's applies)
  // http_stats() — the HTTP layer's counters for /metrics; unset: not shown.
  std::function<http::HttpStats()> http_stats;
};

// MakeHttpService() — kRoutes as the HTTP layer's service: the auth check and
// the announced body length in admit (before any body byte is read), the
// route handlers in handle (on the HTTP layer's workers), the layer's own
// refusals answered in JSON. `context` must outlive the server using it.
http::HttpService MakeHttpService(ApiContext& context);

// HttpStatusFor() — the HTTP status of a non-OK Status.
int HttpStatusFor(const Status& status);

}  // namespace cpuledger::server
