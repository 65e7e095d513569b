// tests/cpp/server/http_server_test.cc — the HTTP layer (server/http) against
// raw sockets on loopback: what a careless or hostile client sends is sent
// byte for byte, and each test waits for the event it expects (an answer, a
// close) with a generous socket timeout as its only bound.
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cpuledger::server::http {
namespace {

// kPatienceMs — how long a test waits for an event that must come; it
// fails, rather than hangs, when the event does not.
constexpr int kPatienceMs = 20'000;

// Conn — one client socket on 127.0.0.1:port; closed when it goes.
class Conn {
 public:
  explicit Conn(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool connected() const { return connected_; }

  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Read() — some bytes within `timeout_ms`: "" at the end of the stream or
  // on a reset, nullopt-like "\x01timeout" when nothing came.
  std::string Read(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return "\x01timeout";
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

  // Response() — one whole answer (headers, then a Content-Length body);
  // "" when the connection ends or nothing comes within kPatienceMs.
  std::string Response() {
    while (true) {
      const size_t end = pending_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const size_t cl = pending_.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::stoul(pending_.substr(cl + 16));
        if (pending_.size() >= end + 4 + length) {
          std::string one = pending_.substr(0, end + 4 + length);
          pending_.erase(0, end + 4 + length);
          return one;
        }
      }
      std::string more = Read(kPatienceMs);
      if (more.empty() || more == "\x01timeout") return "";
      pending_ += more;
    }
  }

  // WaitClosed() — true once the server has closed the connection (what it
  // said before is kept in `said`).
  bool WaitClosed(std::string* said = nullptr) {
    while (true) {
      std::string more = Read(kPatienceMs);
      if (more == "\x01timeout") return false;
      if (more.empty()) return true;
      if (said != nullptr) *said += more;
    }
  }

 private:
  int fd_;
  bool connected_ = false;
  std::string pending_;
};

int StatusOf(const std::string& response) {
  return response.size() > 12 ? std::stoi(response.substr(9, 3)) : 0;
}

// Echo — a service answering 200 with "<method> <path> <body size>".
HttpService Echo() {
  HttpService s;
  s.handle = [](const Request& req, Response& res) {
    res.set_content(req.method + " " + req.path + " " + std::to_string(req.body.size()),
                    "text/plain");
  };
  return s;
}

std::unique_ptr<HttpServer> StartOrDie(const HttpOptions& options, HttpService service) {
  Result<std::unique_ptr<HttpServer>> s = HttpServer::Start(options, std::move(service));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

TEST(HttpServerTest, AnswersRequestsOnOneKeptAliveConnection) {
  auto server = StartOrDie(HttpOptions{}, Echo());
  ASSERT_TRUE(server);
  Conn c(server->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("GET /a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string first = c.Response();
  EXPECT_EQ(StatusOf(first), 200);
  EXPECT_NE(first.find("GET /a 0"), std::string::npos) << first;
  ASSERT_TRUE(c.Send("POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"));
  std::string second = c.Response();
  EXPECT_NE(second.find("POST /b 5"), std::string::npos) << second;
  EXPECT_EQ(server->stats().connections_accepted, 1u);
}

TEST(HttpServerTest, ABindFailureSaysCannotListen) {
  auto first = StartOrDie(HttpOptions{}, Echo());
  ASSERT_TRUE(first);
  HttpOptions same;
  same.port = first->port();
  Result<std::unique_ptr<HttpServer>> second = HttpServer::Start(same, Echo());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("cannot listen on 127.0.0.1:"), std::string::npos);
}

TEST(HttpServerTest, ASlowHeaderClientIsCutOffAtTheHeaderDeadline) {
  HttpOptions options;
  options.header_timeout_us = 1'000'000;
  auto server = StartOrDie(options, Echo());
  ASSERT_TRUE(server);
  Conn c(server->port());
  ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "));  // and nothing more
  std::string said;
  ASSERT_TRUE(c.WaitClosed(&said));
  EXPECT_EQ(StatusOf(said), 408) << said;
  EXPECT_EQ(server->stats().timed_out, 1u);
}

TEST(HttpServerTest, ASlowBodyIsCutOffAtTheRequestDeadline) {
  HttpOptions options;
  options.request_timeout_us = 1'000'000;
  auto server = StartOrDie(options, Echo());
  ASSERT_TRUE(server);
  Conn c(server->port());
  ASSERT_TRUE(c.Send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab"));
  ASSERT_TRUE(c.WaitClosed());
  EXPECT_EQ(server->stats().timed_out, 1u);
  EXPECT_EQ(server->stats().requests, 0u);
}

TEST(HttpServerTest, ABodySlowerThanTheMinimumRateIsCutOff) {
  HttpOptions options;
  options.min_body_bytes_per_s = 1000;
  options.rate_window_us = 200'000;  // 200 bytes a window, far below the request deadline
  auto server = StartOrDie(options, Echo());
  ASSERT_TRUE(server);
  Conn c(server->port());
  ASSERT_TRUE(c.Send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nab"));
  ASSERT_TRUE(c.WaitClosed());
  EXPECT_EQ(server->stats().timed_out, 1u);
}

TEST(HttpServerTest, AHeadRequestGetsTheLengthWithoutTheBody) {
  auto server = StartOrDie(HttpOptions{}, Echo());
  ASSERT_TRUE(server);
  Conn c(server->port());
  ASSERT_TRUE(c.Send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string head = c.Read(kPatienceMs);
  EXPECT_EQ(StatusOf(head), 200) << head;
  EXPECT_NE(head.find("Content-Length: 9\r\n"), std::string::npos) << head;  // "HEAD /h 0"
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n") << head;
  ASSERT_TRUE(c.Send("GET /g HTTP/1.1\r\nHost: t\r\n\r\n"));  // and the connection goes on
  EXPECT_NE(c.Response().find("GET /g 0"), std::string::npos);
}

TEST(HttpServerTest, AChunkedBodyIsReadWithinTheLimitAndRefusedPastIt) {
  HttpOptions options;
  options.max_body_bytes = 1000;
  auto server = StartOrDie(options, Echo());
  ASSERT_TRUE(server);
  const std::string head = "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  {
    Conn c(server->port());
    ASSERT_TRUE(c.Send(head + "5\r\nhello\r\n3\r\n, w\r\n0\r\n\r\n"));
    std::string r = c.Response();
    EXPECT_NE(r.find("POST /c 8"), std::string::npos) << r;
  }
  Conn c(server->port());
  const std::string chunk(600, 'x');
  ASSERT_TRUE(c.Send(head + "258\r\n" + chunk + "\r\n258\r\n" + chunk + "\r\n"));  // 2 x 600
  std::string said;
  ASSERT_TRUE(c.WaitClosed(&said));
  EXPECT_EQ(StatusOf(said), 413) << said;
  EXPECT_EQ(server->stats().requests, 1u);  // only the first
}

TEST(HttpServerTest, AnUnusableContentLengthIs400AtOnce) {
  auto server = StartOrDie(HttpOptions{}, Echo());
  ASSERT_TRUE(server);
  for (const char* length : {"-1", "12x", "", "99999999999999999999999"}) {
    Conn c(server->port());
    ASSERT_TRUE(c.Send(std::string("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: ") + length +
                       "\r\n\r\n"));
    std::string said;
    ASSERT_TRUE(c.WaitClosed(&said)) << length;
    EXPECT_EQ(StatusOf(said), 400) << length << ": " << said;
  }
}

TEST(HttpServerTest, AnAnnouncedBodyOverTheLimitIs413BeforeItIsRead) {
  HttpOptions options;
  options.max_body_bytes = 1000;
  auto server = StartOrDie(options, Echo());
  ASSERT_TRUE(server);
  Conn c(server->port());
  ASSERT_TRUE(c.Send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"));
  std::string said;
  ASSERT_TRUE(c.WaitClosed(&said));
  EXPECT_EQ(StatusOf(said), 413) << said;
}

TEST(HttpServerTest, BodiesPastTheInFlightBudgetWaitOutside) {
  HttpOptions options;
  options.max_body_bytes = 100;
  options.max_body_bytes_in_flight = 100;
  auto server = StartOrDie(options, Echo());
  ASSERT_TRUE(server);
  const std::string head = "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 80\r\n\r\n";
  Conn first(server->port());
  ASSERT_TRUE(first.Send(head + "half"));  // holds 80 of the 100 while its body comes
  for (int waited_ms = 0; server->stats().body_bytes_in_flight < 80 && waited_ms < kPatienceMs;
       ++waited_ms)
    usleep(1000);
  ASSERT_EQ(server->stats().body_bytes_in_flight, 80u);
  Conn second(server->port());
  ASSERT_TRUE(second.Send(head));
  std::string refused = second.Response();
  EXPECT_EQ(StatusOf(refused), 503) << refused;
  EXPECT_NE(refused.find("Retry-After: 1"), std::string::npos) << refused;
  ASSERT_TRUE(first.Send(std::string(76, 'x')));
  EXPECT_NE(first.Response().find("POST /p 80"), std::string::npos);
  EXPECT_EQ(server->stats().body_bytes_in_flight, 0u);  // given back with the body
  Conn third(server->port());
  ASSERT_TRUE(third.Send(head + std::string(80, 'y')));
  EXPECT_NE(third.Response().find("POST /p 80"), std::string::npos);
}

TEST(HttpServerTest, AdmitAnswersBeforeTheBodyIsRead) {
  HttpService s = Echo();
  s.admit = [](const Request& head, Response& res) {
    if (head.get_header_value("Authorization") == "Bearer ok") return true;
    res.status = 401;
    res.set_content("no", "text/plain");
    return false;
  };
  auto server = StartOrDie(HttpOptions{}, s);
  ASSERT_TRUE(server);
  Conn c(server->port());
  // The body is announced but never sent: the answer must not wait for it.
  ASSERT_TRUE(c.Send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"));
  EXPECT_EQ(StatusOf(c.Response()), 401);
  ASSERT_TRUE(c.WaitClosed());
}

// A handler that blocks holds a worker, never an io thread: the io threads
// go on reading and refusing while every worker is busy.
TEST(HttpServerTest, BlockedHandlersDoNotStopTheReading) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> blocked{0};
  HttpService s = Echo();
  s.admit = [](const Request& head, Response& res) {
    if (head.path != "/refused") return true;
    res.status = 403;
    return false;
  };
  s.handle = [&](const Request&, Response& res) {
    blocked++;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    res.set_content("done", "text/plain");
  };
  HttpOptions options;
  options.io_threads = 1;
  options.worker_threads = 1;
  auto server = StartOrDie(options, s);
  ASSERT_TRUE(server);
  Conn held(server->port());
  ASSERT_TRUE(held.Send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n"));
  for (int waited_ms = 0; blocked.load() == 0 && waited_ms < kPatienceMs; ++waited_ms) usleep(1000);
  ASSERT_EQ(blocked.load(), 1);  // the only worker is held
  Conn other(server->port());
  ASSERT_TRUE(other.Send("GET /refused HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(StatusOf(other.Response()), 403);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(StatusOf(held.Response()), 200);
}

// RaiseOpenFileLimit() — the soft limit up to the hard one (1,000 client
// and 1,000 server sockets live in this one process).
void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

TEST(HttpServerTest, AThousandSlowConnectionsDoNotHoldANormalRequest) {
  RaiseOpenFileLimit();
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur < 2200) GTEST_SKIP() << "needs 2,200 descriptors, has " << limit.rlim_cur;
  HttpOptions options;
  options.worker_threads = 8;
  options.header_timeout_us = options.request_timeout_us = 120'000'000;  // all held throughout
  auto server = StartOrDie(options, Echo());
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<Conn>> slow;
  for (int i = 0; i < 1000; ++i) {
    auto c = std::make_unique<Conn>(server->port());
    ASSERT_TRUE(c->connected()) << i;
    // Half stall in the headers, half in an announced body.
    ASSERT_TRUE(c->Send(i % 2 == 0 ? "POST / HTTP/1.1\r\nHost: t\r\nX-Slow: a"
                                   : "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nx"));
    slow.push_back(std::move(c));
  }
  for (int round = 0; round < 3; ++round) {
    Conn normal(server->port());
    ASSERT_TRUE(normal.Send("POST /v1/ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"));
    std::string r = normal.Response();
    EXPECT_EQ(StatusOf(r), 200) << r;
  }
  EXPECT_GE(server->stats().connections_open, 1000u);  // the slow ones, all still held
  EXPECT_EQ(server->stats().timed_out, 0u);
}

TEST(HttpServerTest, StopClosesIdleConnectionsAndFinishesRequestsInFlight) {
  std::atomic<bool> entered{false};
  HttpService s = Echo();
  s.handle = [&](const Request&, Response& res) {
    entered = true;
    usleep(200'000);  // still running when Stop() is called
    res.set_content("finished", "text/plain");
  };
  auto server = StartOrDie(HttpOptions{}, s);
  ASSERT_TRUE(server);
  Conn idle(server->port());
  Conn busy(server->port());
  ASSERT_TRUE(busy.Send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  while (!entered) usleep(1000);
  server->Stop();
  std::string said;
  ASSERT_TRUE(busy.WaitClosed(&said));
  EXPECT_NE(said.find("finished"), std::string::npos) << said;
  EXPECT_TRUE(idle.WaitClosed());
}

}  // namespace
}  // namespace cpuledger::server::http
