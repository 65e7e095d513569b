// tests/cpp/server/alert_sink_test.cc — AlertSinks against real HTTP servers
// on loopback (httplib::Server, and httplib::SSLServer with a certificate
// made by the openssl command), real refused ports, and a real slow hook.
// Back-offs are milliseconds here so that the whole file runs in seconds.
#include "server/alert_sink.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace cpuledger::server {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Received — one request as the hook saw it.
struct Received {
  std::string body, authorization, content_type;
};

// Hook — a webhook receiver on 127.0.0.1: answers POST /hook with the
// scripted statuses in turn (the last one repeats), or with `respond` when set.
class Hook {
 public:
  explicit Hook(std::vector<int> statuses, httplib::Server* server = nullptr)
      : statuses_(std::move(statuses)), server_(server ? server : &own_) {
    server_->Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      size_t n;
      {
        std::lock_guard<std::mutex> lock(mu_);
        received_.push_back({req.body, req.get_header_value("Authorization"),
                             req.get_header_value("Content-Type")});
        n = received_.size();
      }
      if (respond) return respond(req, res);
      res.status = statuses_[std::min(n - 1, statuses_.size() - 1)];
      res.set_content(res.status == 200 ? "ok" : "no", "text/plain");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(1ms);
  }
  ~Hook() {
    server_->stop();
    thread_.join();
  }

  std::string url(const std::string& scheme = "http") const {
    return scheme + "://127.0.0.1:" + std::to_string(port_) + "/hook";
  }
  std::vector<Received> received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  size_t hits() const { return received().size(); }

  std::function<void(const httplib::Request&, httplib::Response&)> respond;  // set before use

 private:
  std::vector<int> statuses_;
  httplib::Server own_;
  httplib::Server* server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Received> received_;
};

// FreePort() — a loopback port with nobody listening: bound, then closed.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// WaitFor() — polls `done` until it holds or `limit` passes; RETURNS whether it held.
bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return done();
}

// LogLines — a thread-safe capture of what AlertSinks logs.
struct LogLines {
  std::mutex mu;
  std::vector<std::string> lines;
  std::function<void(std::string_view)> Sink() {
    return [this](std::string_view l) {
      std::lock_guard<std::mutex> lock(mu);
      lines.emplace_back(l);
    };
  }
  bool Contains(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu);
    for (const std::string& l : lines)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }
};

AlertSinkOptions FastOptions(std::vector<std::string> urls, LogLines& log) {
  AlertSinkOptions o;
  o.urls = std::move(urls);
  o.attempts = 6;
  o.initial_backoff = 5ms;
  o.max_backoff = 40ms;
  o.connect_timeout = 500ms;
  o.request_timeout = 1000ms;
  o.stop_grace = 300ms;
  o.log = log.Sink();
  return o;
}

// SampleAlert() — alert 7 opened by the detector.
detect::AlertChange SampleAlert() {
  detect::AlertChange change;
  change.alert_id = 7;
  change.change = "opened";
  change.state = "open";
  change.by = "detector";
  detect::Finding& f = change.finding;
  f.kind = "rollout";
  f.service = "shop";
  f.endpoint = "/checkout/";
  f.cause = "commit b7e41d0 vs 9f3c2a1";
  f.effect.estimate = 0.031;
  f.effect.lo = 0.02;
  f.effect.hi = 0.042;
  f.effect.confidence = 0.9;
  f.effect.ok = true;
  f.threshold = 0.01;
  f.alert = true;
  detect::Culprit c;
  c.function = "cart.py:88:total";
  c.added = 1200.5;
  f.top_functions = {c};
  return change;
}

TEST(AlertSinks, RetriesServerErrorsThenDeliversTheSameBodyWithTheToken) {
  Hook hook({503, 503, 200});
  LogLines log;
  AlertSinkOptions o = FastOptions({hook.url()}, log);
  o.token = "hook-s3cret";
  AlertSinks sinks(std::move(o));
  const detect::AlertChange alert = SampleAlert();
  sinks.Send(alert);
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().delivered == 1; }));

  const std::vector<Received> got = hook.received();
  ASSERT_EQ(got.size(), 3u);
  for (const Received& r : got) {
    EXPECT_EQ(nlohmann::json::parse(r.body), detect::ToJson(alert));
    EXPECT_EQ(r.authorization, "Bearer hook-s3cret");
    EXPECT_EQ(r.content_type, "application/json");
  }
  const AlertSinkCounters c = sinks.counters();
  EXPECT_EQ(c.alerts, 1u);
  EXPECT_EQ(c.retried, 2u);
  EXPECT_EQ(c.failed, 0u);
  EXPECT_EQ(c.dropped, 0u);
  EXPECT_EQ(c.pending, 0u);
  // The log line names the alert for a person and carries the whole JSON.
  EXPECT_TRUE(
      log.Contains("cpuledger alert #7 opened by detector: shop /checkout/ commit b7e41d0 vs "
                   "9f3c2a1 effect "
                   "+3.1% [+2.0%, +4.2%]"));
  EXPECT_TRUE(log.Contains(detect::ToJson(alert).dump()));
}

TEST(AlertSinks, EachChangeIsOneDeliveryNamingTheAlertItsStateAndTheChange) {
  Hook hook({200});
  LogLines log;
  AlertSinks sinks(FastOptions({hook.url()}, log));
  const std::vector<std::pair<std::string, std::string>> changes = {
      {"opened", "open"},
      {"acknowledged", "acknowledged"},
      {"resolved", "resolved"},
      {"reopened", "open"}};
  uint64_t sent = 0;
  for (const auto& [change, state] : changes) {
    detect::AlertChange c = SampleAlert();
    c.change = change;
    c.state = state;
    c.by = change == "acknowledged" ? "ana" : "detector";
    if (change == "reopened") c.alert_id = 8, c.reopens = 7;
    if (change == "resolved") c.comparison = {{"effect", {{"estimate", 0.001}}}};
    sinks.Send(c);
    // One at a time: the order the hook sees is the order of the changes.
    ++sent;
    ASSERT_TRUE(WaitFor([&] { return sinks.counters().delivered == sent; }));
  }
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().delivered == 4; }));
  const std::vector<Received> got = hook.received();
  ASSERT_EQ(got.size(), 4u);
  for (size_t i = 0; i < got.size(); ++i) {
    const nlohmann::json j = nlohmann::json::parse(got[i].body);
    EXPECT_EQ(j["change"], changes[i].first);
    EXPECT_EQ(j["state"], changes[i].second);
    EXPECT_EQ(j["id"], i == 3 ? 8 : 7);
    EXPECT_EQ(j["endpoint"], "/checkout/");
  }
  EXPECT_EQ(nlohmann::json::parse(got[1].body)["by"], "ana");
  EXPECT_EQ(nlohmann::json::parse(got[2].body)["comparison"]["effect"]["estimate"], 0.001);
  EXPECT_EQ(nlohmann::json::parse(got[3].body)["reopens"], 7);
  EXPECT_TRUE(log.Contains("cpuledger alert #7 acknowledged by ana:"));
  EXPECT_EQ(sinks.counters().alerts, 4u);
}

TEST(AlertSinks, ClientErrorFailsAtOnceWithoutRetries) {
  Hook hook({400});
  LogLines log;
  AlertSinks sinks(FastOptions({hook.url()}, log));
  sinks.Send(SampleAlert());
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().failed == 1; }));
  // Failed and finished in one step under the sink's lock: nothing is left
  // queued, so no retry can come later.
  const AlertSinkCounters c = sinks.counters();
  EXPECT_EQ(c.pending, 0u);
  EXPECT_EQ(hook.hits(), 1u);
  EXPECT_EQ(c.retried, 0u);
  EXPECT_EQ(c.delivered, 0u);
  EXPECT_TRUE(log.Contains("HTTP 400"));
  EXPECT_TRUE(log.Contains("not retried"));
}

TEST(AlertSinks, TooManyRequestsIsRetried) {
  Hook hook({429, 200});
  LogLines log;
  AlertSinks sinks(FastOptions({hook.url()}, log));
  sinks.Send(SampleAlert());
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().delivered == 1; }));
  EXPECT_EQ(sinks.counters().retried, 1u);
  EXPECT_EQ(hook.hits(), 2u);
}

TEST(AlertSinks, UnreachableHookIsRetriedThenFailsAfterTheAttempts) {
  const int port = FreePort();
  ASSERT_NE(port, 0);
  LogLines log;
  AlertSinkOptions o = FastOptions({"http://127.0.0.1:" + std::to_string(port) + "/hook"}, log);
  o.attempts = 3;
  AlertSinks sinks(std::move(o));
  sinks.Send(SampleAlert());
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().failed == 1; }));
  const AlertSinkCounters c = sinks.counters();
  EXPECT_EQ(c.retried, 2u);
  EXPECT_EQ(c.delivered, 0u);
  EXPECT_EQ(c.pending, 0u);
  EXPECT_TRUE(log.Contains("after 3 tries"));
}

TEST(AlertSinks, ADeadHookDoesNotHoldUpTheOthers) {
  Hook good({200});
  const int dead_port = FreePort();
  ASSERT_NE(dead_port, 0);
  LogLines log;
  AlertSinkOptions o =
      FastOptions({"http://127.0.0.1:" + std::to_string(dead_port) + "/x", good.url()}, log);
  // The dead hook waits long between tries: the good one must not wait with it.
  o.initial_backoff = 10s;
  o.max_backoff = 10s;
  o.stop_grace = 100ms;
  auto sinks = std::make_unique<AlertSinks>(std::move(o));
  for (int i = 0; i < 3; ++i) {
    detect::AlertChange a = SampleAlert();
    a.finding.endpoint = "/e" + std::to_string(i);
    sinks->Send(a);
  }
  ASSERT_TRUE(WaitFor([&] { return sinks->counters().delivered == 3; }, 3000ms));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(nlohmann::json::parse(good.received()[i].body)["endpoint"], "/e" + std::to_string(i));
  AlertSinkCounters c = sinks->counters();
  EXPECT_EQ(c.delivered, 3u);
  EXPECT_EQ(c.pending, 3u);  // the dead hook's three, waiting to retry
  const auto start = Clock::now();
  sinks->Stop();
  EXPECT_LT(Clock::now() - start, 2s);
  c = sinks->counters();
  EXPECT_EQ(c.abandoned, 3u);
  EXPECT_EQ(c.pending, 0u);
}

TEST(AlertSinks, AFullQueueDropsAndCounts) {
  std::atomic<bool> release{false};  // before the hook: its handler reads it until the end
  Hook hook({200});
  hook.respond = [&](const httplib::Request&, httplib::Response& res) {
    while (!release) std::this_thread::sleep_for(1ms);
    res.status = 200;
  };
  LogLines log;
  AlertSinkOptions o = FastOptions({hook.url()}, log);
  o.queue_capacity = 2;
  o.request_timeout = 5000ms;
  AlertSinks sinks(std::move(o));
  sinks.Send(SampleAlert());
  ASSERT_TRUE(WaitFor([&] { return hook.hits() == 1; }));  // the first is in flight, held
  for (int i = 0; i < 4; ++i) sinks.Send(SampleAlert());   // one more fits; three do not
  AlertSinkCounters c = sinks.counters();
  EXPECT_EQ(c.alerts, 5u);
  EXPECT_EQ(c.dropped, 3u);
  EXPECT_EQ(c.pending, 2u);
  EXPECT_TRUE(log.Contains("queue full"));
  release = true;
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().delivered == 2; }));
  // Drained: it accepts again.
  sinks.Send(SampleAlert());
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().delivered == 3; }));
  EXPECT_EQ(sinks.counters().dropped, 3u);
}

TEST(AlertSinks, DestructionWhileRetryingIsQuick) {
  Hook hook({503});
  LogLines log;
  AlertSinkOptions o = FastOptions({hook.url()}, log);
  o.initial_backoff = 30s;  // without Stop() skipping waits, this would hang the test
  o.max_backoff = 30s;
  std::atomic<int> filed{0};
  o.on_filed = [&filed] { ++filed; };
  const auto start = Clock::now();
  {
    AlertSinks sinks(std::move(o));
    sinks.Send(SampleAlert());
    // The 503 is filed: the delivery waits for its retry (were it still in
    // flight, Stop() would abandon it without a last try).
    ASSERT_TRUE(WaitFor([&] { return filed == 1; }));
    ASSERT_EQ(hook.hits(), 1u);
    ASSERT_EQ(sinks.counters().pending, 1u);
  }
  EXPECT_LT(Clock::now() - start, 3s);
  // Stop() gave it one last try rather than dropping it silently.
  EXPECT_EQ(hook.hits(), 2u);
  EXPECT_TRUE(log.Contains("not retried: stopping"));
}

TEST(AlertSinks, StopIsBoundedWhenTheHookHangs) {
  std::atomic<bool> release{false};  // before the hook: its handler reads it until the end
  Hook hook({200});
  hook.respond = [&](const httplib::Request&, httplib::Response& res) {
    const auto until = Clock::now() + 5s;
    while (!release && Clock::now() < until) std::this_thread::sleep_for(1ms);
    res.status = 200;
  };
  LogLines log;
  AlertSinkOptions o = FastOptions({hook.url()}, log);
  o.request_timeout = 200ms;
  o.stop_grace = 100ms;
  AlertSinks sinks(std::move(o));
  for (int i = 0; i < 3; ++i) sinks.Send(SampleAlert());
  ASSERT_TRUE(WaitFor([&] { return hook.hits() >= 1; }));
  const auto start = Clock::now();
  sinks.Stop();
  // Grace, plus the one request that may be in flight, plus slack for CI.
  EXPECT_LT(Clock::now() - start, 1500ms);
  const AlertSinkCounters c = sinks.counters();
  EXPECT_EQ(c.delivered, 0u);
  EXPECT_EQ(c.pending, 0u);
  EXPECT_EQ(c.abandoned + c.failed, 3u);
  sinks.Stop();  // idempotent
  release = true;
}

TEST(AlertSinks, WithoutUrlsItOnlyLogs) {
  LogLines log;
  AlertSinkOptions o;
  o.log = log.Sink();
  AlertSinks sinks(std::move(o));
  EXPECT_EQ(sinks.url_count(), 0u);
  sinks.Send(SampleAlert());
  EXPECT_TRUE(log.Contains("cpuledger alert #7 opened by detector: shop /checkout/"));
  const AlertSinkCounters c = sinks.counters();
  EXPECT_EQ(c.alerts, 1u);
  EXPECT_EQ(c.dropped + c.pending + c.delivered, 0u);
}

TEST(AlertSinks, SendAfterStopLogsAndCountsADrop) {
  Hook hook({200});
  LogLines log;
  AlertSinks sinks(FastOptions({hook.url()}, log));
  sinks.Stop();
  sinks.Send(SampleAlert());
  EXPECT_EQ(sinks.counters().dropped, 1u);
  EXPECT_TRUE(log.Contains("cpuledger alert #7 opened by detector: shop"));
  EXPECT_EQ(hook.hits(), 0u);
}

TEST(AlertSinks, InvalidUrlIsSkippedAndLogged) {
  Hook hook({200});
  LogLines log;
  AlertSinks sinks(FastOptions({"ftp://example.com/x", hook.url()}, log));
  EXPECT_EQ(sinks.url_count(), 1u);
  EXPECT_TRUE(log.Contains("ftp://example.com/x"));
  sinks.Send(SampleAlert());
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().delivered == 1; }));
}

TEST(AlertSinks, InvalidUtf8IsReplacedNotThrown) {
  Hook hook({200});
  LogLines log;
  AlertSinks sinks(FastOptions({hook.url()}, log));
  detect::AlertChange a = SampleAlert();
  a.finding.function = std::string("bad\xff name");
  sinks.Send(a);
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().delivered == 1; }));
  EXPECT_FALSE(nlohmann::json::parse(hook.received()[0].body).is_discarded());
}

TEST(AlertSinks, OptionsFromTheServerConfig) {
  ServerConfig config;
  config.webhooks = {"http://a/", "http://b/"};
  config.webhook_token = "t";
  config.webhook_attempts = 3;
  config.webhook_backoff_us = 1'500'000;
  config.webhook_max_backoff_us = 20'000'000;
  const AlertSinkOptions o = AlertSinkOptionsFrom(config);
  EXPECT_EQ(o.urls, config.webhooks);
  EXPECT_EQ(o.token, "t");
  EXPECT_EQ(o.attempts, 3);
  EXPECT_EQ(o.initial_backoff, 1500ms);
  EXPECT_EQ(o.max_backoff, 20s);
}

TEST(AlertSinks, PrometheusText) {
  AlertSinkCounters c;
  c.alerts = 4;
  c.delivered = 3;
  c.failed = 1;
  c.retried = 2;
  c.pending = 5;
  const std::string text = RenderPrometheus(c);
  EXPECT_NE(text.find("cpuledger_alerts_total 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("cpuledger_webhook_deliveries_total{result=\"delivered\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("cpuledger_webhook_deliveries_total{result=\"failed\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("cpuledger_webhook_deliveries_total{result=\"dropped\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("cpuledger_webhook_retries_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE cpuledger_webhook_pending gauge\ncpuledger_webhook_pending 5\n"),
            std::string::npos);
}

TEST(ParseWebhookUrl, SplitsAndDefaults) {
  Result<WebhookUrl> u = ParseWebhookUrl("http://hooks.internal:9000/cpuledger?team=shop#frag");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_FALSE(u->https);
  EXPECT_EQ(u->host, "hooks.internal");
  EXPECT_EQ(u->port, 9000);
  EXPECT_EQ(u->path, "/cpuledger?team=shop");

  u = ParseWebhookUrl("HTTP://example.com");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->path, "/");

  u = ParseWebhookUrl("http://example.com?x=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->path, "/?x=1");

  u = ParseWebhookUrl("http://[::1]:8080/h");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8080);

  u = ParseWebhookUrl("https://hooks.example.com/x");
  EXPECT_EQ(u.ok(), HttpsWebhooksSupported());
  if (u.ok()) {
    EXPECT_TRUE(u->https);
    EXPECT_EQ(u->port, 443);
  } else {
    EXPECT_NE(u.status().message().find("https is not supported"), std::string::npos);
  }
}

TEST(ParseWebhookUrl, RejectsWithAReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ftp://example.com/x", "scheme must be http"},
      {"example.com/x", "needs a scheme"},
      {"http:///x", "no host"},
      {"http://example.com:0/x", "not in 1..65535"},
      {"http://example.com:99999/x", "not in 1..65535"},
      {"http://example.com:80a/x", "not in 1..65535"},
      {"http://example.com:/x", "empty port"},
      {"http://user:pw@example.com/x", "user:password@"},
      {"http://example.com/a b", "spaces"},
      {"http://[::1/x", "unclosed"},
  };
  for (const auto& [url, why] : cases) {
    Result<WebhookUrl> u = ParseWebhookUrl(url);
    ASSERT_FALSE(u.ok()) << url;
    EXPECT_NE(u.status().message().find(why), std::string::npos) << u.status().message();
    EXPECT_NE(u.status().message().find(url), std::string::npos) << u.status().message();
  }
}

#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
// An https hook with a self-signed certificate for 127.0.0.1: refused while
// it is not trusted (verification is on), delivered once ca_file trusts it.
TEST(AlertSinks, HttpsVerifiesTheCertificate) {
  test_support::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string cert = dir.File("cert.pem"), key = dir.File("key.pem");
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "the openssl command is not available";
  httplib::SSLServer tls(cert.c_str(), key.c_str());
  ASSERT_TRUE(tls.is_valid());
  Hook hook({200}, &tls);

  LogLines log;
  AlertSinkOptions untrusted = FastOptions({hook.url("https")}, log);
  untrusted.attempts = 1;
  {
    AlertSinks sinks(std::move(untrusted));
    sinks.Send(SampleAlert());
    ASSERT_TRUE(WaitFor([&] { return sinks.counters().failed == 1; }));
    EXPECT_EQ(sinks.counters().delivered, 0u);
  }
  AlertSinkOptions trusted = FastOptions({hook.url("https")}, log);
  trusted.ca_file = cert;
  trusted.token = "t";
  AlertSinks sinks(std::move(trusted));
  sinks.Send(SampleAlert());
  ASSERT_TRUE(WaitFor([&] { return sinks.counters().delivered == 1; }));
  EXPECT_EQ(hook.received().back().authorization, "Bearer t");
  EXPECT_EQ(nlohmann::json::parse(hook.received().back().body), detect::ToJson(SampleAlert()));
}
#endif

}  // namespace
}  // namespace cpuledger::server
