// src/server/http/http_server.h — the HTTP/1.1 front end of `cpuledger serve`:
// Boost.Beast on a small Asio io pool reads requests, a separate worker pool
// runs the handlers. A slow or silent client holds a socket and a few KiB,
// never a worker.
//
//   HttpService service;
//   service.admit = [](const Request& head, Response& res) { return true; };
//   service.handle = [](const Request& req, Response& res) { res.body = "ok"; };
//   Result<std::unique_ptr<HttpServer>> http = HttpServer::Start(options, service);
//   ...                                       // serving on (*http)->port()
//   (*http)->Stop();                          // or let it go out of scope
//
// The contract, per request:
//  1. Headers (at most max_header_bytes) must be in within header_timeout_us
//     of the request's first byte; a connection with no request in flight is
//     closed after idle_timeout_us.
//  2. admit() runs on an io thread before any body byte is read (auth, the
//     announced length). A malformed request line, header or Content-Length
//     is answered 400 at once; a body larger than max_body_bytes 413 — for a
//     chunked body as soon as the chunks pass the limit; a body that would
//     pass max_body_bytes_in_flight 503 + Retry-After.
//  3. The body must arrive at min_body_bytes_per_s at least (checked every
//     rate window) and the whole request within request_timeout_us of its
//     first byte; otherwise the connection is closed (408 attempted).
//  4. handle() then runs on a worker (worker_threads of them) with the whole
//     request; the response is written by an io thread. Keep-alive is kept.
//     A HEAD request is handled as it comes; its answer goes out without body.
//
// Request and Response are cpp-httplib's value types (headers are
// case-insensitive, params are the decoded query); httplib's server is not used.
//
// Cost: a connection is a descriptor, a timer and a read buffer (shrunk between
// requests once it grew past 16 KiB); a request's body is one allocation of its
// announced length. Nothing per connection waits on a thread.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"

namespace cpuledger::server::http {

using Request = httplib::Request;
using Response = httplib::Response;

// HttpService — what the server does with requests.
struct HttpService {
  // admit(head, res) — the request line and headers only (head.body empty).
  // Return true to read the body and call handle(); false to answer `res`
  // as it is (the connection is then closed if a body was announced).
  // REQUIRES: cheap and non-blocking: it runs on an io thread. Unset: admit all.
  std::function<bool(const Request& head, Response& res)> admit;
  // handle(req, res) — the complete request; runs on a worker thread and may
  // block. An exception is answered 500 (through refuse).
  std::function<void(const Request& req, Response& res)> handle;
  // refuse(status, reason, res) — fills the answer to a refusal of the HTTP
  // layer itself (400, 408, 413, 431, 500, 503). Unset: a plain-text body.
  std::function<void(int status, const std::string& reason, Response& res)> refuse;
};

// HttpOptions — limits; each 0 means "use the default" only where stated.
struct HttpOptions {
  std::string bind = "127.0.0.1";
  int port = 0;            // 0: any free port (see HttpServer::port())
  int io_threads = 2;      // read, parse, write; never run handlers
  int worker_threads = 8;  // run handle()
  size_t max_header_bytes = 64u << 10;
  size_t max_body_bytes = 32u << 20;
  // The bodies of requests in flight (being read or handled) together: a
  // request that would pass it is answered 503 + Retry-After before its body
  // is read. Bounds the server's memory under a burst of large bodies.
  size_t max_body_bytes_in_flight = 256u << 20;
  int64_t header_timeout_us = 10'000'000;   // first byte -> end of headers
  int64_t request_timeout_us = 60'000'000;  // first byte -> end of body
  int64_t idle_timeout_us = 30'000'000;     // keep-alive wait for a request
  int64_t write_timeout_us = 30'000'000;    // a response to a client that does not read
  size_t min_body_bytes_per_s = 16u << 10;  // checked every rate_window_us
  int64_t rate_window_us = 5'000'000;
  size_t max_connections = 16384;  // beyond it, new ones are closed at once
  // Once no request with a body at least this large has ended for 1 s,
  // malloc_trim() gives the freed heap back to the system. 0: never.
  size_t trim_after_body_bytes = 1u << 20;
};

// HttpStats — counters, read at any time.
struct HttpStats {
  uint64_t connections_open = 0;
  uint64_t connections_accepted = 0;
  uint64_t timed_out = 0;             // closed by a header, body or write deadline (not idle ones)
  uint64_t refused = 0;               // answered by the HTTP layer (4xx/5xx from refuse)
  uint64_t requests = 0;              // handed to handle()
  uint64_t body_bytes_in_flight = 0;  // held of max_body_bytes_in_flight now
};

class HttpServer {
 public:
  // HttpServer::Start() — binds, listens and serves.
  // RETURNS: Unavailable "cannot listen on ADDR:PORT ..." when the address
  // cannot be bound; InvalidArgument for a bad bind address or option.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpOptions& options, HttpService service);
  ~HttpServer();  // Stop()s

  // HttpServer::Stop() — stops accepting, closes connections that are idle
  // or still reading, lets handlers in flight finish and their responses go
  // out (within write_timeout_us), joins every thread. Idempotent; thread-safe.
  void Stop();
  // HttpServer::port() — the bound port (the chosen one when options.port was 0).
  int port() const;
  HttpStats stats() const;

  struct Impl;  // internal: the state the connections share (http_server.cc)

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace cpuledger::server::http
