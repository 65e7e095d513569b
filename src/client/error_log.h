// src/client/error_log.h — one stderr line per kind of recorder failure per
// process, so an operator learns that something is wrong without a web
// worker's log filling up with the same line a thousand times a second.
//
//   LogOnce(ErrorKind::kUnreachable, "server http://... unreachable, spooling to ...");
//   // stderr: "cpuledger: server http://... unreachable, spooling to ..."
//
// The counts and the latest message live in RecorderStats; this is only the
// first-time notice. Thread-safety: safe from any thread. NOTE: a forked
// child inherits what its parent already logged.
#pragma once

#include <cstdint>
#include <string_view>

namespace cpuledger::client {

// ErrorKind — the kinds that get their own first-time line.
enum class ErrorKind : uint8_t {
  kUnreachable = 0,  // no HTTP answer (refused, reset, timeout)
  kServerBusy,       // 5xx / 408 / 429: retrying
  kRejected,         // 400, 413, other 4xx: batch dropped
  kUnauthorized,     // 401 / 403: the token was refused
  kInvalidItem,      // a record or tally the server would refuse, dropped before sending
  kQueueFull,        // Submit() dropped records
  kSpoolFull,        // a batch did not fit in the spool (or there is no spool)
  kSpoolIo,          // the spool could not be written or read
  kInternal,         // allocation failure, serialisation failure, a bug
  kCount,
};

// LogOnce() — writes "cpuledger: <message>\n" to stderr the first time
// `kind` is seen in this process. RETURNS: whether it wrote.
// COST: one atomic RMW; one write() the first time.
bool LogOnce(ErrorKind kind, std::string_view message);

}  // namespace cpuledger::client
