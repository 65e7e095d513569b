#include "server/alert_sink.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <iostream>

#include "base/delivery.h"
#include "base/percent_text.h"
#include "server/metrics.h"

namespace cpuledger::server {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// AlertLine() — one line a person can scan in the server log (the alert,
// its change and by whom), then the whole payload as compact JSON (`body`,
// what the webhooks get) so that nothing is lost to the summary.
std::string AlertLine(const detect::AlertChange& change, const std::string& body) {
  const detect::Finding& alert = change.finding;
  std::string line = "cpuledger alert #" + std::to_string(change.alert_id) + " " + change.change;
  if (!change.by.empty()) line += " by " + change.by;
  line += ":";
  for (const std::string* part : {&alert.service, &alert.endpoint, &alert.function, &alert.cause})
    if (!part->empty()) line += " " + *part;
  const stats::Interval& e = alert.effect;
  if (std::isfinite(e.estimate) && std::isfinite(e.lo) && std::isfinite(e.hi))
    line += " effect " + SignedPercentInterval(e.estimate, e.lo, e.hi);
  return line + " " + body;
}

void SetTimeout(milliseconds ms, const std::function<void(time_t, time_t)>& set) {
  set(static_cast<time_t>(ms.count() / 1000), static_cast<time_t>((ms.count() % 1000) * 1000));
}

}  // namespace

bool HttpsWebhooksSupported() {
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
  return true;
#else
  return false;
#endif
}

Result<WebhookUrl> ParseWebhookUrl(std::string_view url) {
  const std::string quoted = "webhook URL '" + std::string(url) + "'";
  auto bad = [&](const std::string& why) { return InvalidArgument(quoted + ": " + why); };
  for (char c : url)
    if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c)))
      return bad("contains spaces or control characters (percent-encode them)");
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return bad("needs a scheme, e.g. http://host:port/path");
  WebhookUrl out;
  const std::string scheme = Lower(url.substr(0, sep));
  if (scheme == "https") {
    if (!HttpsWebhooksSupported())
      return bad(
          "https is not supported by this build (its HTTP client has no TLS); use an http:// "
          "URL, e.g. a relay on the same host");
    out.https = true;
    out.port = 443;
  } else if (scheme != "http") {
    return bad("scheme must be http" + std::string(HttpsWebhooksSupported() ? " or https" : ""));
  }
  std::string_view rest = url.substr(sep + 3);
  if (size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const size_t path_at = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_at);
  std::string_view path = path_at == std::string_view::npos ? "" : rest.substr(path_at);
  if (authority.find('@') != std::string_view::npos)
    return bad("user:password@ is not supported; use webhook_token (Authorization: Bearer)");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected text after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port after ':'");
    }
  } else {
    const size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return bad("empty port after ':'");
    }
  }
  if (out.host.empty()) return bad("no host");
  if (!port_text.empty()) {
    int port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 || port > 65535)
      return bad("port '" + std::string(port_text) + "' is not in 1..65535");
    out.port = port;
  }
  out.path = path.empty() ? "/" : path.front() == '?' ? "/" + std::string(path) : std::string(path);
  return out;
}

AlertSinkOptions AlertSinkOptionsFrom(const ServerConfig& config) {
  AlertSinkOptions o;
  o.urls = config.webhooks;
  o.token = config.webhook_token;
  o.attempts = config.webhook_attempts;
  o.initial_backoff = milliseconds(config.webhook_backoff_us / 1000);
  o.max_backoff = milliseconds(config.webhook_max_backoff_us / 1000);
  return o;
}

std::string RenderPrometheus(const AlertSinkCounters& c) {
  return PrometheusSample(
             "cpuledger_alerts_total", "counter",
             "Alert changes (opened, reopened, acknowledged, resolved) sent to the sinks.",
             c.alerts) +
         PrometheusLabelled("cpuledger_webhook_deliveries_total", "counter",
                            "Webhook deliveries (one alert to one URL) by outcome.", "result",
                            {{"delivered", c.delivered},
                             {"failed", c.failed},
                             {"dropped", c.dropped},
                             {"abandoned", c.abandoned}}) +
         PrometheusSample("cpuledger_webhook_retries_total", "counter",
                          "Webhook tries after the first.", c.retried) +
         PrometheusSample("cpuledger_webhook_pending", "gauge",
                          "Webhook deliveries queued or in flight.", c.pending);
}

// Target — one webhook and the client that only the sender thread uses.
struct AlertSinks::Target {
  std::string url;  // as configured, for log lines
  WebhookUrl parsed;
  std::unique_ptr<httplib::ClientImpl> client;
};

// AlertBody — one alert's JSON, shared by its deliveries; `remaining` counts
// the deliveries not yet finished, so the queue bound can count alerts.
struct AlertBody {
  std::string json;
  size_t remaining = 0;
};

struct AlertSinks::Delivery {
  std::shared_ptr<AlertBody> alert;
  size_t target = 0;
  int tries = 0;  // made so far
  Clock::time_point due;
};

AlertSinks::AlertSinks(AlertSinkOptions options) : options_(std::move(options)) {
  for (const std::string& url : options_.urls) {
    Result<WebhookUrl> parsed = ParseWebhookUrl(url);
    if (!parsed.ok()) {
      Log("cpuledger webhook: skipped: " + parsed.status().message());
      continue;
    }
    auto t = std::make_unique<Target>();
    t->url = url;
    t->parsed = *parsed;
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    if (parsed->https) {
      auto ssl = std::make_unique<httplib::SSLClient>(parsed->host, parsed->port);
      if (!options_.ca_file.empty()) ssl->set_ca_cert_path(options_.ca_file.c_str());
      ssl->enable_server_certificate_verification(true);
      t->client = std::move(ssl);
    }
#endif
    if (!t->client) t->client = std::make_unique<httplib::ClientImpl>(parsed->host, parsed->port);
    httplib::ClientImpl& c = *t->client;
    SetTimeout(options_.connect_timeout,
               [&c](time_t s, time_t us) { c.set_connection_timeout(s, us); });
    SetTimeout(options_.request_timeout, [&c](time_t s, time_t us) {
      c.set_read_timeout(s, us);
      c.set_write_timeout(s, us);
    });
    // A webhook is called rarely: a fresh connection each time avoids
    // retrying on a keep-alive socket the hook has long closed.
    c.set_keep_alive(false);
    if (!options_.token.empty()) c.set_bearer_token_auth(options_.token.c_str());
    targets_.push_back(std::move(t));
  }
  if (!targets_.empty()) sender_ = std::thread([this] { Run(); });
}

AlertSinks::~AlertSinks() { Stop(); }

void AlertSinks::Log(std::string_view line) {
  std::lock_guard<std::mutex> lock(log_mu_);
  if (options_.log) {
    options_.log(line);
  } else {
    std::cerr << line << '\n';
  }
}

void AlertSinks::Send(const detect::AlertChange& change) {
  // Replace, not throw, on invalid UTF-8: a function name from a profile is
  // not worth losing the alert over.
  auto body = std::make_shared<AlertBody>();
  body->json =
      detect::ToJson(change).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  Log(AlertLine(change, body->json));
  std::string dropped_line;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++counters_.alerts;
    if (targets_.empty()) return;
    if (stopping_ || pending_alerts_ >= options_.queue_capacity) {
      counters_.dropped += targets_.size();
      // One line per run of drops, not per alert: a flood must not flood the log too.
      if (!dropping_)
        dropped_line = stopping_ ? "cpuledger webhook: stopped; alert not sent"
                                 : "cpuledger webhook: queue full (" +
                                       std::to_string(options_.queue_capacity) +
                                       " alerts waiting); dropping alerts until it drains";
      dropping_ = true;
    } else {
      dropping_ = false;
      ++pending_alerts_;
      body->remaining = targets_.size();
      const Clock::time_point now = Clock::now();
      for (size_t i = 0; i < targets_.size(); ++i) queue_.push_back(Delivery{body, i, 0, now});
    }
  }
  if (!dropped_line.empty()) Log(dropped_line);
  wake_.notify_one();
}

void AlertSinks::Stop() {
  std::call_once(stopped_, [this] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      stop_deadline_ = Clock::now() + options_.stop_grace;
    }
    wake_.notify_all();
    if (sender_.joinable()) sender_.join();
  });
}

AlertSinkCounters AlertSinks::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  AlertSinkCounters c = counters_;
  c.pending = queue_.size() + in_flight_;
  return c;
}

AlertSinks::Outcome AlertSinks::Attempt(Target& target, const std::string& body) {
  Outcome out;
  httplib::Headers headers = {{"User-Agent", "cpuledger"}};
  httplib::Result res =
      target.client->Post(target.parsed.path.c_str(), headers, body, "application/json");
  if (!res) {
    out.error = httplib::to_string(res.error());
    return out;
  }
  out.status = res->status;
  out.retry_after = delivery::ParseRetryAfter(res->get_header_value("Retry-After"),
                                              std::chrono::system_clock::now());
  if (out.status < 200 || out.status > 299) {
    std::string excerpt = res->body.substr(0, 200);
    std::replace(excerpt.begin(), excerpt.end(), '\n', ' ');
    out.error = "HTTP " + std::to_string(out.status) + (excerpt.empty() ? "" : ": " + excerpt);
  }
  return out;
}

// Run() — the sender: takes the earliest due delivery, POSTs it unlocked,
// and files the outcome. While stopping, back-off waits are skipped: each
// delivery gets one last try until the grace runs out.
void AlertSinks::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  auto finish = [this](Delivery& d) {
    if (--d.alert->remaining == 0) --pending_alerts_;
  };
  for (;;) {
    if (queue_.empty()) {
      if (stopping_) return;
      wake_.wait(lock);
      continue;
    }
    const Clock::time_point now = Clock::now();
    if (stopping_ && now >= stop_deadline_) {
      const size_t left = queue_.size();
      counters_.abandoned += left;
      for (Delivery& d : queue_) finish(d);
      queue_.clear();
      lock.unlock();
      Log("cpuledger webhook: stopped; abandoned " + std::to_string(left) +
          " undelivered webhook call(s)");
      return;
    }
    auto next =
        std::min_element(queue_.begin(), queue_.end(),
                         [](const Delivery& a, const Delivery& b) { return a.due < b.due; });
    if (!stopping_ && next->due > now) {
      wake_.wait_until(lock, next->due);
      continue;
    }
    Delivery d = std::move(*next);
    queue_.erase(next);
    if (d.tries > 0) ++counters_.retried;
    ++in_flight_;
    lock.unlock();

    Target& target = *targets_[d.target];
    Outcome out = Attempt(target, d.alert->json);
    ++d.tries;
    std::string line;

    lock.lock();
    --in_flight_;
    const bool retry = delivery::Classify(out.status) == delivery::Verdict::kRetry;
    if (out.error.empty()) {
      ++counters_.delivered;
      finish(d);
    } else if (retry && d.tries < options_.attempts && !stopping_) {
      const delivery::Backoff backoff{options_.initial_backoff, options_.max_backoff};
      d.due = Clock::now() + backoff.Delay(d.tries, out.retry_after);
      queue_.push_back(std::move(d));
    } else if (retry && d.tries < options_.attempts) {
      ++counters_.abandoned;
      finish(d);
      line = "cpuledger webhook: " + target.url + ": " + out.error + " (try " +
             std::to_string(d.tries) + "); not retried: stopping";
    } else {
      ++counters_.failed;
      finish(d);
      line = "cpuledger webhook: " + target.url + ": failed: " + out.error +
             (retry ? " (after " + std::to_string(d.tries) + " tries)" : " (refused; not retried)");
    }
    if (!line.empty() || options_.on_filed) {
      lock.unlock();
      if (!line.empty()) Log(line);
      if (options_.on_filed) options_.on_filed();
      lock.lock();
    }
  }
}

}  // namespace cpuledger::server
