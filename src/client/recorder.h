// src/client/recorder.h — getting records out of a web worker without hurting it.
//
// The request path calls Submit() (a sampled request's record) and Count()
// (every request, sampled or not); both take a short mutex and never block on
// I/O, never allocate without bound, never throw. A sender thread batches
// records (by size and by age) and POSTs protobuf Batches to
// `cpuledger serve`; per-minute WorkerTallies (unsampled request counts per
// endpoint and a HyperLogLog of active users) ride along once a minute ends.
//
// When the server is down, slow or answers 5xx, batches go to a bounded spool
// directory and are replayed in order once it answers again; every batch
// carries (sender, sequence), so a batch re-sent after a lost acknowledgement
// is stored once (store.h invariant 3). When the queue is full, or the spool
// is, records are dropped and counted; the counts ride in the next batch.
//
//   RecorderOptions o;  o.server_url = "http://127.0.0.1:8750";  o.spool_dir =
//   "/var/spool/cpuledger"; Result<std::unique_ptr<Recorder>> rec = Recorder::Start(o);
//   (*rec)->Count("/users/<id>/", "user-hash", /*sampled=*/true);
//   (*rec)->Submit(std::move(record));
//   (*rec)->Close(std::chrono::seconds(5));   // flush: to the server, else the spool
//
// Fork: a recorder inherited by a forked child has no sender thread. Call
// AfterForkInChild() in the child (the Python package does, through
// os.register_at_fork): it starts a new sender with a new sender id; records
// and tallies queued in the parent before the fork are the parent's to send.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "record/record.pb.h"

namespace cpuledger::client {

struct RecorderOptions {
  std::string server_url;  // "http://host:port"; required
  std::string token;       // bearer token; empty: none
  std::string spool_dir;   // empty: no spool (batches that fail are dropped, counted)
  uint64_t spool_max_bytes = 256ull << 20;
  size_t queue_capacity = 10000;    // records waiting for the sender; beyond: dropped
  size_t batch_max_records = 1000;  // a batch is sent when it has this many...
  std::chrono::milliseconds batch_max_delay{1000};  // ...or its oldest record is this old
  std::chrono::milliseconds http_timeout{2000};
  std::chrono::milliseconds retry_backoff_max{30000};  // while the server is down
  // Identity for the tallies (the records carry their own dimensions).
  std::string service, host, cluster, region, commit;
  std::string sender_id;  // empty: "<host>-<pid>-<random>"
};

// RecorderStats — monotonic counts since the recorder started (or forked).
struct RecorderStats {
  uint64_t submitted = 0;  // records accepted into the queue
  uint64_t sent = 0;       // records acknowledged by the server
  uint64_t spooled = 0;    // records written to the spool
  uint64_t replayed = 0;   // records acknowledged from the spool
  uint64_t dropped_queue_full = 0;
  uint64_t dropped_spool_full = 0;
  uint64_t dropped_rejected = 0;  // the server answered 4xx: the batch can never succeed
  uint64_t batches_sent = 0;
  uint64_t send_failures = 0;  // POSTs that failed (then spooled)
  uint64_t spool_bytes = 0;    // bytes in the spool now
  uint64_t counted = 0;        // requests passed to Count()
  std::string last_error;      // the most recent failure, for logs; empty if none
};

class Recorder {
 public:
  // Recorder::Start() — validates options, creates the spool dir, adopts
  // spool files left by dead processes, starts the sender thread.
  // RETURNS: InvalidArgument naming the option; Io when the spool dir cannot be made.
  static Result<std::unique_ptr<Recorder>> Start(const RecorderOptions& options);
  ~Recorder();  // Close() with a short timeout

  // Recorder::Submit() — queue one sampled record. Never blocks on I/O.
  // `profile_functions`: the ProcessFunctions ids its profile names (any
  // order, repeats allowed), when
  // the profile lists its functions in the batch (functions_in_batch); the
  // batch it goes in lists their entries. Other profiles are shared within
  // the batch (record::ShareProfileFunctions) when no record of it names ids.
  // RETURNS: false when the queue was full and the record was dropped (counted).
  // COST: one short mutex hold, a move of the record. Thread-safe.
  bool Submit(record::RequestRecord&& record, std::vector<uint32_t> profile_functions = {});

  // Recorder::Count() — count one request (sampled or not) for this minute's
  // tally: endpoint request count, and `user` (may be empty) into the
  // active-user HyperLogLog. COST: one short mutex hold, a hash. Thread-safe.
  void Count(const std::string& endpoint, const std::string& user, bool sampled);

  // Recorder::Flush() — sends what is queued now (and the current minute's
  // tally) and waits up to `timeout` for the server or the spool to take it.
  // RETURNS: OK when everything queued was sent or spooled in time.
  Status Flush(std::chrono::milliseconds timeout);

  // Recorder::Close() — Flush() then stop the sender. Idempotent.
  Status Close(std::chrono::milliseconds timeout);

  // Recorder::AfterForkInChild() — call in a forked child before using the
  // recorder: abandons the parent's thread and queue, starts afresh.
  void AfterForkInChild();

  RecorderStats stats() const;
  const std::string& sender_id() const;

 private:
  struct Impl;
  explicit Recorder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cpuledger::client
