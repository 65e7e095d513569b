// src/server/alert_sink.h — where the changes of the server's alerts go
// (opened, reopened, acknowledged, resolved: once per change, never again
// for an alert that did not change): one line each to the log, and a JSON
// POST to every configured webhook, retried with back-off on a sender
// thread of its own.
//
//   AlertSinkOptions options;
//   options.urls = {"http://hooks.internal:9000/cpuledger"};
//   options.token = "s3cret";                 // Authorization: Bearer s3cret
//   AlertSinks sinks(std::move(options));
//   sinks.Send(change);                        // never blocks the detector
//   AlertSinkCounters c = sinks.counters();   // for /metrics
//   sinks.Stop();                              // or let it go out of scope
//
// A webhook gets detect::ToJson(change): the alert as GET /v1/alerts gives
// it (finding, "id", "state", "opened", "reopens") with "change" (opened,
// reopened, acknowledged, resolved), "by", "note", "at" (unix s) and, for a
// resolve by the detector, "comparison" (the finding that showed it gone).
//
// Delivery, per alert and URL (each URL independently: a dead hook delays
// nobody else's):
//  * 2xx — delivered.
//  * connection failure, timeout, 5xx or 429 — retried after a back-off that
//    doubles from `initial_backoff` up to `max_backoff` (a longer Retry-After
//    in seconds is honoured, within `max_backoff`), `attempts` tries in all;
//    then failed.
//  * any other status (4xx, 3xx: the hook refuses this request and would
//    refuse it again) — failed at once, not retried.
// Every failure is logged with the URL and the reason. Alerts are also
// stored by the server, so a webhook that was down is a missed page, not
// lost data; that is why the queue is bounded and drops rather than blocks.
//
// URLs: http:// always; https:// when cpp-httplib was built with OpenSSL
// (Debian's is), verified against the system CA store or `ca_file`.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/status.h"
#include "detect/detect.h"
#include "server/config.h"

namespace cpuledger::server {

// WebhookUrl — a URL split the way the HTTP client wants it.
struct WebhookUrl {
  bool https = false;
  std::string host;  // "hooks.internal", "10.0.0.7", "::1" (brackets removed)
  int port = 80;     // 80 or 443 when the URL names none
  std::string path;  // "/cpuledger?team=shop"; "/" when the URL had none
};

// ParseWebhookUrl() — "http://host[:port][/path[?query]]" (or https:// where
// supported); a #fragment is dropped. RETURNS: InvalidArgument quoting the URL
// and saying what is wrong (another scheme, https without TLS support, no
// host, a bad port, user:password@, spaces).
Result<WebhookUrl> ParseWebhookUrl(std::string_view url);

// HttpsWebhooksSupported() — whether this build's HTTP client speaks TLS.
bool HttpsWebhooksSupported();

struct AlertSinkOptions {
  std::vector<std::string> urls;  // REQUIRES: each passes ParseWebhookUrl()
  std::string token;              // non-empty: sent as Authorization: Bearer <token>
  int attempts = 6;               // tries per alert and URL, the first included; >= 1
  std::chrono::milliseconds initial_backoff{2000};  // before the first retry
  std::chrono::milliseconds max_backoff{60000};     // the doubling stops here
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds request_timeout{10000};  // each of writing and reading
  // After Stop(): deliveries still queued get one last immediate try while
  // this grace lasts (no back-off waits); what is left then is abandoned.
  // Stop() returns within about grace + one request's timeouts.
  std::chrono::milliseconds stop_grace{5000};
  size_t queue_capacity = 1000;  // alerts waiting for delivery; more are dropped
  std::string ca_file;           // https only: a PEM bundle instead of the system CAs
  // One line per alert, and one per failed delivery. Empty: stderr. Called
  // from Send()'s caller and from the sender thread, never concurrently.
  std::function<void(std::string_view)> log;
  // Called on the sender thread after each try's outcome is filed (counted,
  // requeued or finished), without the lock: tests wait on it instead of
  // sleeping. Empty: nothing.
  std::function<void()> on_filed;
};

// AlertSinkCounters — totals since construction. Webhook counts are per
// delivery (one alert to one URL), so with two URLs one alert counts twice.
struct AlertSinkCounters {
  uint64_t alerts = 0;     // Send() calls (alert changes)
  uint64_t delivered = 0;  // deliveries answered 2xx
  uint64_t retried = 0;    // tries after the first (each one counted)
  uint64_t failed = 0;     // deliveries given up: refused, or out of attempts
  uint64_t dropped = 0;    // deliveries not queued because the queue was full
  uint64_t abandoned = 0;  // deliveries still undelivered when Stop()'s grace ran out
  uint64_t pending = 0;    // deliveries queued or in flight now (a gauge)
};

// AlertSinkOptionsFrom() — the webhook settings of a server config (urls,
// token, attempts, back-offs); the other options keep their defaults.
// REQUIRES: ValidateServerConfig(config) is OK.
AlertSinkOptions AlertSinkOptionsFrom(const ServerConfig& config);

// RenderPrometheus() — the counters in text exposition format, for /metrics:
// cpuledger_alerts_total, cpuledger_webhook_deliveries_total{result=
// "delivered|failed|dropped|abandoned"}, cpuledger_webhook_retries_total,
// cpuledger_webhook_pending.
std::string RenderPrometheus(const AlertSinkCounters& counters);

// AlertSinks — the log line and the webhooks. Thread-safe.
class AlertSinks {
 public:
  // Starts the sender thread only when there are URLs. An invalid URL (one
  // that ParseWebhookUrl() rejects; config validation keeps them out) is
  // logged here and skipped.
  explicit AlertSinks(AlertSinkOptions options);
  ~AlertSinks();  // Stop()s
  AlertSinks(const AlertSinks&) = delete;
  AlertSinks& operator=(const AlertSinks&) = delete;

  // AlertSinks::Send() — logs one line for `change` and queues the POST of
  // its JSON (detect::ToJson) to every URL. Returns at once; when the queue holds queue_capacity
  // alerts already, the POSTs are dropped (and counted) but the line is still logged. After Stop()
  // only the line is logged, and the deliveries count as dropped.
  void Send(const detect::AlertChange& change);

  // AlertSinks::Stop() — gives queued deliveries their last try within
  // stop_grace, abandons the rest, joins the sender. Idempotent; thread-safe.
  void Stop();

  AlertSinkCounters counters() const;
  size_t url_count() const { return targets_.size(); }

 private:
  struct Target;
  struct Delivery;
  void Run();
  void Log(std::string_view line);
  // Attempt() — one POST; RETURNS the status (0 for no response) and the
  // reason text for a failure, and the server's Retry-After when it gave one.
  struct Outcome {
    int status = 0;
    std::string error;
    std::chrono::milliseconds retry_after{0};
  };
  Outcome Attempt(Target& target, const std::string& body);

  const AlertSinkOptions options_;
  std::vector<std::unique_ptr<Target>> targets_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<Delivery> queue_;  // small; scanned for the earliest due
  size_t pending_alerts_ = 0;    // alerts with a delivery still queued or in flight
  size_t in_flight_ = 0;         // deliveries being POSTed now (0 or 1)
  bool dropping_ = false;        // the last Send() dropped: log only the first of a run
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_deadline_;
  AlertSinkCounters counters_;

  std::mutex log_mu_;  // serializes options_.log
  std::once_flag stopped_;
  std::thread sender_;  // last: started after everything it uses
};

}  // namespace cpuledger::server
