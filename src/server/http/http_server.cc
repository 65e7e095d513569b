#include "server/http/http_server.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

namespace cpuledger::server::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;

// kLingerTimeout — how long a closing connection's unread input is drained, so
// that the client reads the answer rather than a reset.
constexpr std::chrono::seconds kLingerTimeout{2};
// kAcceptRetry — the pause after a failed accept (EMFILE: out of descriptors).
constexpr std::chrono::milliseconds kAcceptRetry{50};
// kIdleBufferBytes — a connection's read buffer is shrunk back to nothing
// between requests when it grew beyond this.
constexpr size_t kIdleBufferBytes = 16u << 10;

// kBodyReadBytes — the read buffer's room while a large body is read.
constexpr size_t kBodyReadBytes = 64u << 10;
// kBodyLowWater — the most body bytes a read waits for (SO_RCVLOWAT).
constexpr uint64_t kBodyLowWater = 256u << 10;
// kTrimAfter — the quiet after the last large body before malloc_trim() (Impl::TrimSoon).
constexpr std::chrono::seconds kTrimAfter{1};

constexpr std::string_view kTimeoutAnswer =
    "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::chrono::microseconds Us(int64_t us) { return std::chrono::microseconds(us); }

bool IEquals(beast::string_view a, beast::string_view b) { return beast::iequals(a, b); }

// ToRequest() — the beast message as the handlers' value type (path decoded,
// query parsed as httplib does); the body is moved, not copied.
Request ToRequest(bhttp::request<bhttp::string_body>& m) {
  Request r;
  r.method = std::string(m.method_string());
  r.version = m.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
  r.target = std::string(m.target());
  const size_t q = r.target.find('?');
  r.path = httplib::detail::decode_url(r.target.substr(0, q), false);
  if (q != std::string::npos) httplib::detail::parse_query_text(r.target.substr(q + 1), r.params);
  for (const auto& field : m) r.headers.emplace(std::string(field.name_string()), field.value());
  r.body = std::move(m.body());
  return r;
}

}  // namespace

class Session;

struct HttpServer::Impl {
  Impl(const HttpOptions& o, HttpService s)
      : options(o),
        service(std::move(s)),
        acceptor(asio::make_strand(ioc)),
        accept_retry(acceptor.get_executor()),
        workers(static_cast<size_t>(std::max(1, o.worker_threads))) {}

  void Accept();
  void Forget(uint64_t id) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    sessions.erase(id);
  }
  // ReserveBody() — takes `bytes` of max_body_bytes_in_flight; false when it would pass.
  bool ReserveBody(size_t bytes) {
    size_t now = body_bytes_in_flight.load();
    do {
      if (now + bytes > options.max_body_bytes_in_flight && now > 0) return false;
    } while (!body_bytes_in_flight.compare_exchange_weak(now, now + bytes));
    return true;
  }
  void ReleaseBody(size_t bytes) { body_bytes_in_flight.fetch_sub(bytes); }
  // TrimSoon() — malloc_trim() once no large body has ended for kTrimAfter:
  // a burst of large bodies gives its heap back when it is over. Trimming
  // during steady load gave back the heap the next requests then faulted in
  // again (half the server's CPU at 2,000 profiled records a second when it
  // ran after every body). Thread-safe.
  void TrimSoon() {
    if (stopping.load()) return;
    asio::post(trim_timer.get_executor(), [this] {
      trim_timer.expires_after(kTrimAfter);  // a wait still pending ends as aborted
      trim_timer.async_wait([](ErrorCode ec) {
        if (!ec) malloc_trim(0);
      });
    });
  }

  void Fill(int status, const std::string& reason, Response& res) const {
    if (service.refuse) {
      service.refuse(status, reason, res);
    } else {
      res.status = status;
      res.set_content(reason + "\n", "text/plain");
    }
    if (res.status < 0) res.status = status;
  }

  // Declaration order is destruction order reversed: the workers' queued
  // handlers (holding sessions) go first, then the io_context's, while the
  // session table they deregister from is still there.
  HttpOptions options;
  HttpService service;
  std::mutex sessions_mu;
  std::map<uint64_t, std::weak_ptr<Session>> sessions;  // guarded by sessions_mu
  uint64_t next_id = 0;                                 // guarded by sessions_mu
  std::atomic<bool> stopping{false};
  std::atomic<size_t> body_bytes_in_flight{0};
  std::atomic<uint64_t> accepted{0}, timed_out{0}, refused{0}, requests{0};
  std::once_flag stopped;
  int port = 0;

  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry;
  asio::steady_timer trim_timer{asio::make_strand(ioc)};
  std::vector<std::thread> io_threads;
  asio::thread_pool workers;
};

// Session — one connection. Every member is touched only on the socket's
// strand, except while state_ is kHandling, when only the worker touches
// budget_ (the hand-over is ordered by the posts between them).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl* server, tcp::socket socket, uint64_t id)
      : server_(server),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(server->options.max_header_bytes + (64u << 10)),
        id_(id) {}
  ~Session() {
    server_->ReleaseBody(budget_);
    server_->Forget(id_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  auto executor() { return socket_.get_executor(); }

  void Start() {
    ErrorCode ec;
    socket_.set_option(tcp::no_delay(true), ec);
    WaitForRequest();
  }

  // OnStop() — the server stops: a connection with no request being handled
  // or written closes now; the others after their answer.
  void OnStop() {
    if (state_ == State::kHandling || state_ == State::kWriting) {
      close_after_write_ = true;
    } else if (state_ != State::kClosed) {
      Close();
    }
  }

 private:
  enum class State { kIdle, kHeader, kBody, kHandling, kWriting, kLingering, kClosed };

  const HttpOptions& options() const { return server_->options; }

  // Arm() — the one timer of the connection, for whatever the state waits on;
  // a new Arm() replaces the last (the generation drops a stale completion).
  void Arm(Clock::time_point at) {
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this(), gen = ++timer_gen_](ErrorCode ec) {
      if (!ec && gen == self->timer_gen_) self->OnTimer();
    });
  }
  void Disarm() {
    ++timer_gen_;
    timer_.cancel();
  }

  void OnTimer() {
    switch (state_) {
      case State::kIdle:
      case State::kLingering:
        Close();
        return;
      case State::kHeader:
        return TimeOut();
      case State::kBody: {
        const auto now = Clock::now();
        if (now >= deadline_) return TimeOut();
        const double window_s = std::chrono::duration<double>(now - checked_at_).count();
        if (static_cast<double>(body_bytes_ - checked_bytes_) <
            static_cast<double>(options().min_body_bytes_per_s) * window_s)
          return TimeOut();
        checked_bytes_ = body_bytes_;
        checked_at_ = now;
        Arm(std::min(deadline_, now + Us(options().rate_window_us)));
        return;
      }
      case State::kWriting:
        server_->timed_out++;
        Close();
        return;
      case State::kHandling:
      case State::kClosed:
        return;
    }
  }

  // TimeOut() — a read deadline passed: a best-effort 408 (never waits on
  // the client), then the connection is closed.
  void TimeOut() {
    server_->timed_out++;
    ErrorCode ec;
    socket_.non_blocking(true, ec);
    socket_.write_some(asio::buffer(kTimeoutAnswer.data(), kTimeoutAnswer.size()), ec);
    Close();
  }

  void ReleaseBudget() {
    server_->ReleaseBody(budget_);
    budget_ = 0;
  }

  void Close() {
    ReleaseBudget();
    state_ = State::kClosed;
    Disarm();
    ErrorCode ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  // Linger() — after an answer that ends the connection: half-close, then
  // drain what the client still sends for a moment, so that its unread
  // body does not turn into a reset that destroys the answer in flight.
  void Linger() {
    state_ = State::kLingering;
    ErrorCode ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    Arm(Clock::now() + kLingerTimeout);
    Drain();
  }
  void Drain() {
    socket_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](ErrorCode ec, size_t) {
                              if (self->state_ != State::kLingering) return;
                              if (ec) return self->Close();
                              self->Drain();
                            });
  }

  void WaitForRequest() {
    if (server_->stopping.load()) return Close();
    if (buffer_.size() > 0) return ReadHeader();  // pipelined: the next request is here
    if (buffer_.capacity() > kIdleBufferBytes) buffer_.shrink_to_fit();
    state_ = State::kIdle;
    Arm(Clock::now() + Us(options().idle_timeout_us));
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](ErrorCode ec) {
      if (self->state_ != State::kIdle) return;
      if (ec) return self->Close();
      self->ReadHeader();
    });
  }

  void ReadHeader() {
    state_ = State::kHeader;
    request_start_ = Clock::now();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options().max_header_bytes));
    // The limit is set once admitted, so that auth answers first. (Not
    // boost::none: Beast 1.74 compares a length against it as "greater".)
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    Arm(request_start_ + Us(options().header_timeout_us));
    bhttp::async_read_header(socket_, buffer_, *parser_,
                             [self = shared_from_this()](ErrorCode ec, size_t) {
                               if (self->state_ == State::kHeader) self->OnHeader(ec);
                             });
  }

  void OnHeader(ErrorCode ec) {
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof) return Close();
    if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
      return Refuse(431, "request headers larger than " +
                             std::to_string(options().max_header_bytes) + " bytes");
    if (ec == bhttp::error::bad_content_length)
      return Refuse(400, "Content-Length is not a byte count");
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category())
      return Refuse(400, "malformed request: " + ec.message());
    if (ec) return Close();  // reset, or closed by a deadline

    Request head = ToRequest(parser_->get());
    Response res;
    if (server_->service.admit && !server_->service.admit(head, res)) {
      if (res.status < 0) res.status = 403;
      return Answer(std::move(res), !parser_->is_done() || !parser_->get().keep_alive());
    }
    if (parser_->is_done()) return Dispatch();

    // The body's share of max_body_bytes_in_flight: the announced length, or
    // the whole limit for a chunked body.
    const size_t max_body = options().max_body_bytes;
    const size_t want = parser_->content_length() ? static_cast<size_t>(*parser_->content_length())
                                                  : (max_body > 0 ? max_body : 1);
    if (max_body > 0 && parser_->content_length() && want > max_body)
      return Refuse(413, "request body of " + std::to_string(want) +
                             " bytes is larger than max_body_bytes (" + std::to_string(max_body) +
                             ")");
    if (!server_->ReserveBody(want))
      return Refuse(503, "the server is reading too many large bodies; retry later");
    budget_ = want;
    if (max_body > 0) parser_->body_limit(max_body);

    state_ = State::kBody;
    deadline_ = request_start_ + Us(options().request_timeout_us);
    body_bytes_ = checked_bytes_ = 0;
    checked_at_ = Clock::now();
    Arm(std::min(deadline_, checked_at_ + Us(options().rate_window_us)));
    if (IEquals(parser_->get()[bhttp::field::expect], "100-continue")) {
      asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](ErrorCode ec, size_t) {
                          if (self->state_ != State::kBody) return;
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  // SetLowWater() — SO_RCVLOWAT: the socket reads as ready once `bytes` are
  // queued (1: any). Best effort: the socket works the same without it.
  void SetLowWater(uint64_t bytes) {
    const int want = static_cast<int>(std::max<uint64_t>(1, bytes));
    if (want == low_water_) return;
    ErrorCode ec;
    socket_.set_option(asio::socket_base::receive_low_watermark(want), ec);
    if (!ec) low_water_ = want;
  }

  void ReadBody() {
    if (parser_->is_done()) {
      SetLowWater(1);
      return Dispatch();
    }
    // Wake for the body only when a good part of it has arrived: a client
    // slower than the server otherwise costs an epoll_wait and a recv per
    // few kilobytes (seen: 1.6 KB a read, 111k reads in 5 s). The deadline
    // and minimum-rate timers still cut a client that stops short.
    if (const auto length = parser_->content_length(); length && *length > body_bytes_) {
      SetLowWater(std::min<uint64_t>(*length - body_bytes_, kBodyLowWater));
      // Beast reads as much as the buffer has room for: a buffer grown only
      // to the header's size reads the body 1.5 KB at a time.
      if (*length > kIdleBufferBytes && buffer_.capacity() < kBodyReadBytes)
        buffer_.reserve(std::min(kBodyReadBytes, buffer_.max_size()));
    }
    bhttp::async_read_some(
        socket_, buffer_, *parser_, [self = shared_from_this()](ErrorCode ec, size_t n) {
          if (self->state_ != State::kBody) return;
          if (ec == bhttp::error::body_limit)
            return self->Refuse(413, "request body larger than max_body_bytes (" +
                                         std::to_string(self->options().max_body_bytes) + ")");
          if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category())
            return self->Refuse(400, "malformed body: " + ec.message());
          if (ec) return self->Close();
          self->body_bytes_ += n;
          self->ReadBody();
        });
  }

  // Dispatch() — the request is complete: to a worker with it.
  void Dispatch() {
    if (server_->stopping.load()) return Refuse(503, "the server is stopping");
    state_ = State::kHandling;
    Disarm();
    const bool keep_alive = parser_->get().keep_alive();
    head_request_ = parser_->get().method() == bhttp::verb::head;
    auto req = std::make_shared<Request>(ToRequest(parser_->get()));
    parser_.reset();
    server_->requests++;
    asio::post(server_->workers, [self = shared_from_this(), req, keep_alive]() mutable {
      HttpServer::Impl& server = *self->server_;
      Response res;
      try {
        server.service.handle(*req, res);
      } catch (const std::exception& e) {  // a bug, not the client's: say so, keep serving
        res = Response();
        server.Fill(500, std::string("internal error: ") + e.what(), res);
      }
      const size_t body_bytes = req->body.size();
      req.reset();  // the body goes before the answer waits for the client
      server.ReleaseBody(self->budget_);
      self->budget_ = 0;
      if (server.options.trim_after_body_bytes > 0 &&
          body_bytes >= server.options.trim_after_body_bytes)
        server.TrimSoon();
      auto executor = self->executor();
      asio::post(executor, [self = std::move(self), res = std::move(res), keep_alive]() mutable {
        self->Answer(std::move(res), !keep_alive);
      });
    });
  }

  // Refuse() — an answer of the HTTP layer itself; the connection ends with it.
  void Refuse(int status, const std::string& reason) {
    ReleaseBudget();
    server_->refused++;
    Response res;
    server_->Fill(status, reason, res);
    if (status == 503) res.set_header("Retry-After", "1");
    Answer(std::move(res), true);
  }

  // Answer() — writes `res`; then the next request, or the end when `close`.
  void Answer(Response res, bool close) {
    if (state_ == State::kClosed) return;
    close = close || close_after_write_ || server_->stopping.load() ||
            IEquals(res.get_header_value("Connection"), "close");
    response_.emplace();
    bhttp::response<bhttp::string_body>& out = *response_;
    out.version(11);
    out.result(static_cast<unsigned>(res.status < 0 ? 200 : res.status));
    for (const auto& [name, value] : res.headers)
      if (!IEquals(name, "Content-Length") && !IEquals(name, "Connection") &&
          !IEquals(name, "Transfer-Encoding"))
        out.insert(name, value);
    out.keep_alive(!close);
    if (head_request_) {
      out.content_length(res.body.size());  // what a GET would get; no body
    } else {
      out.body() = std::move(res.body);
      out.prepare_payload();
    }
    head_request_ = false;
    state_ = State::kWriting;
    Arm(Clock::now() + Us(options().write_timeout_us));
    bhttp::async_write(socket_, out, [self = shared_from_this(), close](ErrorCode ec, size_t) {
      if (self->state_ != State::kWriting) return;
      self->response_.reset();
      if (ec) return self->Close();
      if (self->server_->stopping.load()) return self->Close();  // no lingering on the way out
      if (close || self->close_after_write_) return self->Linger();
      self->parser_.reset();
      self->WaitForRequest();
    });
  }

  HttpServer::Impl* server_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  uint64_t timer_gen_ = 0;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> response_;  // while being written
  char drain_[4096];
  State state_ = State::kIdle;
  Clock::time_point request_start_;  // the current request's first byte
  Clock::time_point deadline_;       // request_start_ + request_timeout_us
  Clock::time_point checked_at_;     // the last rate check
  size_t body_bytes_ = 0;            // read so far
  int low_water_ = 1;                // the socket's SO_RCVLOWAT
  size_t checked_bytes_ = 0;         // body_bytes_ at checked_at_
  size_t budget_ = 0;                // held of max_body_bytes_in_flight
  bool close_after_write_ = false;
  bool head_request_ = false;  // the answer being made is to a HEAD
  uint64_t id_;
};

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](ErrorCode ec, tcp::socket socket) {
    if (stopping.load() || ec == asio::error::operation_aborted) return;
    if (ec) {  // out of descriptors, most likely: pause rather than spin
      accept_retry.expires_after(kAcceptRetry);
      accept_retry.async_wait([this](ErrorCode wait_ec) {
        if (!wait_ec && !stopping.load()) Accept();
      });
      return;
    }
    accepted++;
    std::shared_ptr<Session> session;
    {
      std::lock_guard<std::mutex> lock(sessions_mu);
      if (sessions.size() < options.max_connections) {
        const uint64_t id = next_id++;
        session = std::make_shared<Session>(this, std::move(socket), id);
        sessions.emplace(id, session);
      }
    }
    if (session) {
      asio::post(session->executor(), [session] { session->Start(); });
    } else {
      ErrorCode close_ec;
      socket.close(close_ec);
    }
    Accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options,
                                                      HttpService service) {
  if (!service.handle) return InvalidArgument("HttpServer needs a handle function");
  if (options.io_threads < 1 || options.worker_threads < 1)
    return InvalidArgument("HttpServer needs at least one io and one worker thread");
  auto impl = std::make_shared<Impl>(options, std::move(service));
  const std::string where = options.bind + ":" + std::to_string(options.port);
  const Status cannot_listen =
      Unavailable("cannot listen on " + where + " (in use, or not an address of this machine)");
  ErrorCode ec;
  tcp::resolver resolver(impl->ioc);
  auto endpoints = resolver.resolve(options.bind, std::to_string(options.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) return cannot_listen;
  bool bound = false;
  for (const auto& entry : endpoints) {
    ErrorCode e;
    tcp::acceptor& a = impl->acceptor;
    if (a.is_open()) a.close(e);
    a.open(entry.endpoint().protocol(), e);
    if (!e) a.set_option(asio::socket_base::reuse_address(true), e);
    if (!e) a.bind(entry.endpoint(), e);
    if (!e) a.listen(asio::socket_base::max_listen_connections, e);
    if (!e) {
      bound = true;
      break;
    }
  }
  if (!bound) return cannot_listen;
  impl->port = impl->acceptor.local_endpoint(ec).port();
  impl->work.emplace(impl->ioc.get_executor());
  asio::post(impl->acceptor.get_executor(), [raw = impl.get()] { raw->Accept(); });
  for (int i = 0; i < options.io_threads; ++i) {
    impl->io_threads.emplace_back([raw = impl.get()] {
      for (;;) {
        try {
          raw->ioc.run();
          return;
        } catch (const std::exception& e) {  // keep serving the other connections
          fprintf(stderr, "cpuledger: http io thread: %s\n", e.what());
        }
      }
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::Stop() {
  Impl& impl = *impl_;
  std::call_once(impl.stopped, [&impl] {
    impl.stopping.store(true);
    asio::post(impl.acceptor.get_executor(), [&impl] {
      ErrorCode ec;
      impl.acceptor.close(ec);
      impl.accept_retry.cancel();
    });
    asio::post(impl.trim_timer.get_executor(), [&impl] { impl.trim_timer.cancel(); });
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard<std::mutex> lock(impl.sessions_mu);
      for (auto& [id, weak] : impl.sessions)
        if (auto s = weak.lock()) live.push_back(std::move(s));
    }
    for (std::shared_ptr<Session>& s : live) {
      auto executor = s->executor();
      asio::post(executor, [s = std::move(s)] { s->OnStop(); });
    }
    impl.workers.join();  // handlers in flight finish; their answers are posted
    impl.work.reset();    // the io threads end once the last answer is out
    for (std::thread& t : impl.io_threads) t.join();
  });
}

HttpServer::~HttpServer() { Stop(); }

int HttpServer::port() const { return impl_->port; }

HttpStats HttpServer::stats() const {
  HttpStats s;
  {
    std::lock_guard<std::mutex> lock(impl_->sessions_mu);
    s.connections_open = impl_->sessions.size();
  }
  s.connections_accepted = impl_->accepted.load();
  s.timed_out = impl_->timed_out.load();
  s.refused = impl_->refused.load();
  s.requests = impl_->requests.load();
  s.body_bytes_in_flight = impl_->body_bytes_in_flight.load();
  return s;
}

}  // namespace cpuledger::server::http
