// src/client/tally.h — what one worker saw in one minute, unsampled: request
// counts per endpoint and a HyperLogLog of active users (record.proto's
// WorkerTally). The recorder keeps one MinuteTally for the current minute
// under its mutex and turns finished ones into WorkerTally messages on the
// sender thread.
//
//   MinuteTally tally(MinuteOf(now_unix_ms));
//   tally.Count("/users/<id>/", "user-hash", /*sampled=*/false);
//   record::WorkerTally wire = tally.ToProto(identity);
//
// Bounds: at most kMaxEndpoints distinct endpoint names per minute; further
// names, and names the server would refuse (empty, longer than
// record::kMaxDimensionBytes, not UTF-8), are counted under kOtherEndpoint.
// So a tally never holds more than kMaxEndpoints + 1 keys of at most
// kMaxDimensionBytes each, plus the 2^kHllPrecision-byte sketch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "record/hll.h"
#include "record/record.pb.h"

namespace cpuledger::client {

// MinuteOf() — the start of the minute holding `unix_ms`, in unix seconds (a
// multiple of 60; floors for times before 1970 too).
int64_t MinuteOf(int64_t unix_ms);

// TallyIdentity — who saw the requests; copied into every WorkerTally.
struct TallyIdentity {
  std::string service, host, cluster, region, commit;
  std::string sender;  // the recorder's sender id
};

// MinuteTally — counts for one (worker, minute). Not thread-safe: the owner
// (the recorder) serialises access.
class MinuteTally {
 public:
  static constexpr size_t kMaxEndpoints = 2000;
  static constexpr std::string_view kOtherEndpoint = "<other>";
  static constexpr int kHllPrecision = record::HyperLogLog::kDefaultPrecision;

  // REQUIRES: `minute_unix` is a multiple of 60 (MinuteOf()).
  // COST: allocates the 2^kHllPrecision-byte sketch.
  explicit MinuteTally(int64_t minute_unix);

  // MinuteTally::Count() — one request of `endpoint`; `user` (empty:
  // anonymous, not counted as a user) goes into the active-user sketch.
  // COST: one hash-map lookup, one XXH3 hash of `user`; allocates only the
  // first time a name is seen this minute. NOTE: may throw std::bad_alloc
  // (then nothing was counted); the recorder catches it.
  void Count(const std::string& endpoint, std::string_view user, bool sampled);

  int64_t minute_unix() const { return minute_unix_; }
  // MinuteTally::requests() — all requests counted, over all endpoints.
  uint64_t requests() const { return requests_; }
  bool empty() const { return requests_ == 0; }
  // MinuteTally::MoveToMinute() — reuse an empty tally for a later minute
  // without reallocating its sketch. REQUIRES: empty().
  void MoveToMinute(int64_t minute_unix) { minute_unix_ = minute_unix; }
  size_t endpoints() const { return counts_.size(); }

  // MinuteTally::ToProto() — the wire form. Endpoints are in no particular
  // order; active_users_hll is empty (and hll_precision 0) when no user was
  // counted. COST: copies the sketch and every endpoint name.
  record::WorkerTally ToProto(const TallyIdentity& identity) const;

 private:
  struct Counts {
    uint64_t requests = 0;
    uint64_t sampled = 0;
  };
  int64_t minute_unix_;
  uint64_t requests_ = 0;
  bool has_users_ = false;
  std::unordered_map<std::string, Counts> counts_;
  record::HyperLogLog users_;
};

}  // namespace cpuledger::client
