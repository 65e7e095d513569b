#include "client/recorder.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "base/duration.h"
#include "base/spool.h"
#include "client/error_log.h"
#include "client/ingest_client.h"
#include "client/process_functions.h"
#include "client/recorder_testing.h"
#include "client/tally.h"
#include "record/codec.h"

namespace cpuledger::client {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// kIdleWake — the sender wakes at least this often with nothing to do, so a
// wall clock that jumps (or a test's fake one) is noticed within a second.
constexpr auto kIdleWake = std::chrono::seconds(1);
// kMaxFinishedTallies — finished minutes waiting for the sender. It drains
// them every round, so this is only reached when the sender is stuck for
// many minutes; the oldest is dropped then, keeping Count() bounded.
constexpr size_t kMaxFinishedTallies = 16;
constexpr size_t kMaxSenderIdBytes = 128;

int64_t SystemNowUnixMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsPathSafe(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

// GenerateSenderId() — "<host>-<pid>-<8 hex>": unique per process (the pid
// alone repeats across restarts and containers), and a plain file name.
std::string GenerateSenderId(const std::string& host) {
  std::string name = host;
  if (name.empty()) {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) == 0) name = buf;
  }
  if (name.size() > 64) name.resize(64);
  for (char& c : name)
    if (!IsPathSafe(c)) c = '_';
  if (name.empty() || name[0] == '.') name.insert(name.begin(), 'w');
  uint32_t random = 0;
  try {
    std::random_device device;
    random = device();
  } catch (const std::exception&) {
    random = static_cast<uint32_t>(SteadyClock::now().time_since_epoch().count());
  }
  char suffix[48];
  std::snprintf(suffix, sizeof suffix, "-%ld-%08x", static_cast<long>(::getpid()), random);
  return name + suffix;
}

Status ValidateOptions(const RecorderOptions& o) {
  if (o.server_url.empty()) return InvalidArgument("server_url is required");
  if (o.service.empty())
    return InvalidArgument("service is required (the per-minute tallies are kept per service)");
  if (o.queue_capacity == 0) return InvalidArgument("queue_capacity must be at least 1");
  if (o.batch_max_records == 0 || o.batch_max_records > record::kMaxRecordsPerBatch)
    return InvalidArgument("batch_max_records must be in 1.." +
                           std::to_string(record::kMaxRecordsPerBatch));
  if (o.batch_max_delay <= milliseconds(0))
    return InvalidArgument("batch_max_delay must be positive");
  if (o.http_timeout <= milliseconds(0)) return InvalidArgument("http_timeout must be positive");
  if (o.retry_backoff_max <= milliseconds(0))
    return InvalidArgument("retry_backoff_max must be positive");
  if (!o.spool_dir.empty() && o.spool_max_bytes == 0)
    return InvalidArgument("spool_max_bytes must be positive when spool_dir is set");
  if (!o.sender_id.empty()) {
    if (o.sender_id.size() > kMaxSenderIdBytes || o.sender_id[0] == '.' ||
        !std::all_of(o.sender_id.begin(), o.sender_id.end(), IsPathSafe))
      return InvalidArgument("sender_id '" + o.sender_id + "' must be 1.." +
                             std::to_string(kMaxSenderIdBytes) +
                             " characters of [A-Za-z0-9._-], not starting with '.'");
  }
  return OkStatus();
}

// FlushWaiter — one Flush() call; the sender fills it in when the round that
// took everything queued before the call is over.
struct FlushWaiter {
  bool done = false;
  Status status;
};

// Queued — a submitted record, with the ProcessFunctions ids its profile names.
struct Queued {
  record::RequestRecord record;
  std::vector<uint32_t> profile_functions;
};

// OutBatch — a serialized batch and the counts its bookkeeping needs.
struct OutBatch {
  std::string bytes;
  uint64_t sequence = 0;
  uint64_t records = 0;
  uint64_t dropped = 0;
};

// The testing hooks (recorder_testing.h).
std::mutex g_hooks_mu;
std::optional<testing::RecorderHooks> g_hooks;

}  // namespace

namespace testing {

ScopedRecorderHooks::ScopedRecorderHooks(RecorderHooks hooks) {
  std::lock_guard lk(g_hooks_mu);
  g_hooks = std::move(hooks);
}

ScopedRecorderHooks::~ScopedRecorderHooks() {
  std::lock_guard lk(g_hooks_mu);
  g_hooks.reset();
}

RecorderHooks CurrentRecorderHooks() {
  std::lock_guard lk(g_hooks_mu);
  return g_hooks ? *g_hooks : RecorderHooks{};
}

}  // namespace testing

// Recorder::Impl — the state of one recorder. Three groups of members, by
// who may touch them:
//   - fixed after Create(): read by anyone, also by a forked child;
//   - under mu_: shared by the request threads and the sender;
//   - the sender thread's own: the spool, the HTTP client, retry timing.
// Lock order: close_mu_ before mu_. No I/O is ever done while holding mu_.
struct Recorder::Impl {
  Impl(const RecorderOptions& options, testing::RecorderHooks hooks, std::string sender_id);
  ~Impl();

  static Result<std::unique_ptr<Impl>> Create(const RecorderOptions& options,
                                              const testing::RecorderHooks& hooks);
  // CreateInChild() — never fails: without the spool if it cannot be had,
  // and as a closed recorder (drops and counts) as a last resort.
  static std::unique_ptr<Impl> CreateInChild(const RecorderOptions& options,
                                             const testing::RecorderHooks& hooks);

  bool Submit(record::RequestRecord&& record, std::vector<uint32_t> profile_functions);
  void Count(const std::string& endpoint, const std::string& user, bool sampled);
  Status Flush(milliseconds timeout);
  Status Close(milliseconds timeout);
  RecorderStats Stats() const;
  void AbandonInChild();

 private:
  // Round — what the sender took from the shared state in one go.
  struct Round {
    std::vector<MinuteTally> tallies;
    std::vector<std::shared_ptr<FlushWaiter>> waiters;
    uint64_t drops = 0;           // unreported drops, to ride in the first batch
    uint64_t queue_full_new = 0;  // Submit() drops since the previous round
    uint64_t tallies_lost = 0;    // finished minutes dropped at kMaxFinishedTallies
    bool flushing = false;        // a Flush() is waiting for this round
    bool stopping = false;        // Close(): last round
  };

  void Run();
  bool RotateTallyLocked(int64_t minute);
  void WaitForWorkLocked(std::unique_lock<std::mutex>& lk);
  void TakeWorkLocked(Round& round);
  Status ProcessRound(Round& round);
  void ReportLosses(const Round& round);
  void DropRefusedRecords();
  std::vector<record::WorkerTally> CheckedTallies(const Round& round);
  Status SerializeBatch(std::vector<record::WorkerTally>* tallies, uint64_t drops, size_t& next,
                        OutBatch& out);
  Status DeliverNew(const OutBatch& batch);
  Status SpoolOrDrop(const OutBatch& batch);
  void ServeSpool();
  void ReplayOldest();
  void ScheduleRetry(const PostResult& result);
  void ResetBackoff();
  void NoteFailure(const PostResult& result, bool new_batch);
  void NoteError(ErrorKind kind, const std::string& message);
  bool ReplayDue(SteadyClock::time_point now) const;
  void StopAndJoin();

 public:
  // --- fixed after Create() ---
  const RecorderOptions options_;  // as given (sender_id may be empty)
  const testing::RecorderHooks hooks_;
  const std::function<int64_t()> now_ms_;
  const std::string sender_id_;
  const TallyIdentity identity_;
  const size_t batch_records_;      // min(batch_max_records, queue_capacity)
  void* abandoned_next_ = nullptr;  // the list of Impls left behind by forks

 private:
  // --- shared, under mu_ ---
  mutable std::mutex mu_;
  std::condition_variable wake_;     // the sender waits here for work
  std::condition_variable flushed_;  // Flush() waits here for its round
  std::vector<Queued> queue_;
  // When the first record of the queue's last (partial) batch arrived.
  SteadyClock::time_point batch_started_;
  MinuteTally tally_;
  std::vector<MinuteTally> finished_;
  std::vector<std::shared_ptr<FlushWaiter>> waiters_;
  uint64_t drops_unreported_ = 0;  // dropped records not yet carried by a batch
  uint64_t queue_full_reported_ = 0;
  uint64_t tallies_lost_ = 0;
  bool stop_ = false;    // the sender should run its last round and exit
  bool closed_ = false;  // Submit() refuses, Flush() returns at once
  RecorderStats stats_;
  std::atomic<uint64_t> error_drops_{0};  // Submit() calls that threw (counted without mu_)

  // --- the sender thread's own ---
  std::optional<Spool> spool_;
  std::unique_ptr<IngestClient> client_;
  uint64_t sequence_ = 0;
  std::vector<Queued> taken_;
  int failures_ = 0;  // consecutive failed tries: the back-off's exponent
  SteadyClock::time_point next_replay_{};
  bool probing_ = false;  // the last failure had no HTTP answer: probe /healthz
  SteadyClock::time_point next_probe_{};
  uint64_t error_drops_carried_ = 0;

  std::thread thread_;
  std::mutex close_mu_;
  bool close_done_ = false;
  Status close_status_;
};

namespace {
// Impls abandoned by AfterForkInChild(): kept reachable so leak checkers do
// not flag them, never destroyed (their mutex may be locked, their thread
// object is joinable but has no thread).
// (void*: Recorder::Impl is private to Recorder.)
std::atomic<void*> g_abandoned{nullptr};
}  // namespace

Recorder::Impl::Impl(const RecorderOptions& options, testing::RecorderHooks hooks,
                     std::string sender_id)
    : options_(options),
      hooks_(std::move(hooks)),
      now_ms_(hooks_.now_unix_ms ? hooks_.now_unix_ms : std::function<int64_t()>(SystemNowUnixMs)),
      sender_id_(std::move(sender_id)),
      identity_{options.service, options.host,   options.cluster,
                options.region,  options.commit, sender_id_},
      batch_records_(std::min(options.batch_max_records, options.queue_capacity)),
      tally_(MinuteOf(now_ms_())) {
  queue_.reserve(std::min<size_t>(batch_records_, 4096));
}

Recorder::Impl::~Impl() { StopAndJoin(); }

Result<std::unique_ptr<Recorder::Impl>> Recorder::Impl::Create(
    const RecorderOptions& options, const testing::RecorderHooks& hooks) {
  Status valid = ValidateOptions(options);
  if (!valid.ok()) return valid;
  const std::string sender_id =
      options.sender_id.empty() ? GenerateSenderId(options.host) : options.sender_id;
  auto impl = std::make_unique<Impl>(options, hooks, sender_id);

  // The identity must pass the server's tally check, or every tally (and
  // the records riding with it) would be refused.
  Status identity = record::ValidateTally(impl->tally_.ToProto(impl->identity_));
  if (!identity.ok()) return InvalidArgument("recorder identity: " + identity.message());

  Result<std::unique_ptr<IngestClient>> client =
      IngestClient::Create(options.server_url, options.token, options.http_timeout);
  if (!client.ok()) return client.status();
  impl->client_ = std::move(*client);

  if (!options.spool_dir.empty()) {
    Result<Spool> spool = Spool::Open(options.spool_dir, sender_id, options.spool_max_bytes);
    if (!spool.ok()) {
      if (spool.status().code() == StatusCode::kUnavailable)
        return InvalidArgument("sender_id '" + sender_id + "' is in use by a live process (" +
                               spool.status().message() + ")");
      return spool.status();
    }
    impl->spool_.emplace(std::move(*spool));
    impl->sequence_ = impl->spool_->max_own_sequence();
    impl->stats_.spool_bytes = impl->spool_->bytes();
    impl->next_replay_ = SteadyClock::now();  // files left by the dead: replay at once
  }
  // A chosen sender id outlives the process: continue above any sequence a
  // previous process with this id may have used (the server remembers them),
  // by starting from the wall clock in microseconds, which only moves on.
  if (!options.sender_id.empty())
    impl->sequence_ = std::max<uint64_t>(impl->sequence_, static_cast<uint64_t>(NowUnixUs()));

  try {
    impl->thread_ = std::thread([p = impl.get()] { p->Run(); });
  } catch (const std::system_error& e) {
    return Unavailable(std::string("cannot start the sender thread: ") + e.what());
  }
  return impl;
}

std::unique_ptr<Recorder::Impl> Recorder::Impl::CreateInChild(const RecorderOptions& options,
                                                              const testing::RecorderHooks& hooks) {
  try {
    Result<std::unique_ptr<Impl>> impl = Create(options, hooks);
    if (impl.ok()) return std::move(*impl);
    const std::string why = impl.status().message();
    RecorderOptions no_spool = options;
    no_spool.spool_dir.clear();
    impl = Create(no_spool, hooks);
    if (impl.ok()) {
      (*impl)->NoteError(ErrorKind::kSpoolIo,
                         "after fork: " + why + "; this worker continues without a spool");
      return std::move(*impl);
    }
    // Last resort: a recorder that refuses everything and counts it.
    auto closed = std::make_unique<Impl>(
        options, hooks, options.sender_id.empty() ? "unstarted" : options.sender_id);
    closed->stop_ = closed->closed_ = closed->close_done_ = true;
    closed->close_status_ = impl.status();
    closed->stats_.last_error = "after fork: " + impl.status().message();
    LogOnce(ErrorKind::kInternal, closed->stats_.last_error);
    return closed;
  } catch (const std::exception&) {
    return nullptr;
  }
}

void Recorder::Impl::AbandonInChild() {
  // Only fixed-after-Create members are touched: the parent's sender may
  // have been anywhere when fork() copied this memory.
  if (spool_) spool_->CloseInheritedLocks();
  abandoned_next_ = g_abandoned.load();
  while (!g_abandoned.compare_exchange_weak(abandoned_next_, this)) {
  }
}

// --- the request path ---

bool Recorder::Impl::Submit(record::RequestRecord&& record,
                            std::vector<uint32_t> profile_functions) {
  try {
    size_t n;
    {
      std::lock_guard lk(mu_);
      if (closed_ || queue_.size() >= options_.queue_capacity) {
        stats_.dropped_queue_full++;
        drops_unreported_++;
        return false;
      }
      // The record at a batch boundary starts the age clock of that batch.
      if (queue_.size() % batch_records_ == 0) batch_started_ = SteadyClock::now();
      // grows at most to queue_capacity
      queue_.push_back(Queued{std::move(record), std::move(profile_functions)});
      stats_.submitted++;
      n = queue_.size();
    }
    // The sender learns of a new deadline (first record) or a full batch.
    if (n == 1 || n % batch_records_ == 0) wake_.notify_one();
    return true;
  } catch (...) {  // std::bad_alloc from the queue growing, std::system_error from the lock
    error_drops_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
}

void Recorder::Impl::Count(const std::string& endpoint, const std::string& user, bool sampled) {
  try {
    const int64_t minute = MinuteOf(now_ms_());
    bool rotated;
    {
      std::lock_guard lk(mu_);
      stats_.counted++;
      if (closed_) return;
      rotated = RotateTallyLocked(minute);
      tally_.Count(endpoint, user, sampled);
    }
    if (rotated) wake_.notify_one();
  } catch (...) {  // a new endpoint key could not be allocated: the count is lost
  }
}

// RotateTallyLocked() — starts `minute`'s tally when the clock has moved past
// the current one. RETURNS: true when a finished tally is waiting now.
bool Recorder::Impl::RotateTallyLocked(int64_t minute) {
  if (minute <= tally_.minute_unix()) return false;  // same minute, or the clock went back
  if (tally_.empty()) {
    tally_.MoveToMinute(minute);
    return false;
  }
  if (finished_.size() >= kMaxFinishedTallies) {
    finished_.erase(finished_.begin());
    tallies_lost_++;
  }
  finished_.push_back(std::move(tally_));
  tally_ = MinuteTally(minute);
  return true;
}

// --- Flush and Close ---

Status Recorder::Impl::Flush(milliseconds timeout) {
  auto waiter = std::make_shared<FlushWaiter>();
  std::unique_lock lk(mu_);
  if (closed_) return OkStatus();  // nothing can be queued any more
  waiters_.push_back(waiter);
  wake_.notify_one();
  if (!flushed_.wait_for(lk, timeout, [&] { return waiter->done; }))
    return Unavailable("flush did not finish within " + std::to_string(timeout.count()) +
                       " ms (the sender is still busy with " + options_.server_url + ")");
  return waiter->status;
}

Status Recorder::Impl::Close(milliseconds timeout) {
  std::lock_guard close_lk(close_mu_);
  if (close_done_) return close_status_;
  close_status_ = Flush(timeout);
  StopAndJoin();
  // Releases the spool lock (and removes the own directory when empty).
  spool_.reset();
  client_.reset();
  close_done_ = true;
  return close_status_;
}

void Recorder::Impl::StopAndJoin() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    closed_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

RecorderStats Recorder::Impl::Stats() const {
  std::lock_guard lk(mu_);
  RecorderStats s = stats_;
  s.dropped_queue_full += error_drops_.load(std::memory_order_relaxed);
  return s;
}

void Recorder::Impl::NoteError(ErrorKind kind, const std::string& message) {
  {
    std::lock_guard lk(mu_);
    stats_.last_error = message;
  }
  LogOnce(kind, message);
}

// --- the sender thread ---

void Recorder::Impl::Run() {
  for (;;) {
    Round round;
    {
      std::unique_lock lk(mu_);
      WaitForWorkLocked(lk);
      TakeWorkLocked(round);
    }
    Status status;
    try {
      status = ProcessRound(round);
    } catch (const std::exception& e) {
      // Memory ran out while batching: what was taken is lost; count it.
      const uint64_t lost = taken_.size();
      taken_.clear();
      {
        std::lock_guard lk(mu_);
        stats_.dropped_queue_full += lost;
        drops_unreported_ += lost + round.drops;
      }
      status = Internal(std::string("batching failed: ") + e.what());
      NoteError(ErrorKind::kInternal, status.message());
    }
    if (!round.waiters.empty()) {
      {
        std::lock_guard lk(mu_);
        for (const auto& w : round.waiters) {
          w->done = true;
          w->status = status;
        }
      }
      flushed_.notify_all();
    }
    if (round.stopping) return;
    try {
      ServeSpool();
    } catch (const std::exception& e) {
      NoteError(ErrorKind::kInternal, std::string("spool replay failed: ") + e.what());
    }
  }
}

bool Recorder::Impl::ReplayDue(SteadyClock::time_point now) const {
  if (!spool_ || spool_->empty()) return false;
  return now >= next_replay_ || (probing_ && now >= next_probe_);
}

void Recorder::Impl::WaitForWorkLocked(std::unique_lock<std::mutex>& lk) {
  for (;;) {
    const SteadyClock::time_point now = SteadyClock::now();
    const int64_t now_ms = now_ms_();
    RotateTallyLocked(MinuteOf(now_ms));
    if (stop_ || !waiters_.empty() || !finished_.empty()) return;
    const size_t n = queue_.size();
    if (n >= batch_records_) return;
    const SteadyClock::time_point batch_due = batch_started_ + options_.batch_max_delay;
    if (n > 0 && now >= batch_due) return;
    if (ReplayDue(now)) return;

    SteadyClock::time_point deadline = now + kIdleWake;
    if (n > 0) deadline = std::min(deadline, batch_due);
    const int64_t to_next_minute_ms = (MinuteOf(now_ms) + 60) * 1000 - now_ms;
    deadline = std::min(deadline, now + milliseconds(std::max<int64_t>(to_next_minute_ms, 1)));
    if (spool_ && !spool_->empty()) {
      deadline = std::min(deadline, next_replay_);
      if (probing_) deadline = std::min(deadline, next_probe_);
    }
    if (hooks_.on_sender_wait) hooks_.on_sender_wait(n);
    wake_.wait_until(lk, deadline);
  }
}

void Recorder::Impl::TakeWorkLocked(Round& round) {
  const SteadyClock::time_point now = SteadyClock::now();
  round.stopping = stop_;
  round.waiters.swap(waiters_);
  round.flushing = !round.waiters.empty();
  const size_t n = queue_.size();
  const bool take_all = round.stopping || round.flushing ||
                        (n > 0 && now >= batch_started_ + options_.batch_max_delay);
  const size_t full = n / batch_records_ * batch_records_;
  if (take_all || full == n) {
    taken_.swap(queue_);  // O(1); queue_ gets taken_'s (cleared) capacity back
  } else if (full > 0) {
    // Full batches go now; the partial one stays, keeping its batch_started_
    // (its first record sits at a batch boundary, so it set it).
    taken_.assign(std::make_move_iterator(queue_.begin()),
                  std::make_move_iterator(queue_.begin() + static_cast<ptrdiff_t>(full)));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(full));
  }
  if (round.flushing || round.stopping) {
    // The server sums tallies per (worker, minute): send what this minute has
    // so far and keep counting it in a fresh tally.
    if (!tally_.empty()) {
      finished_.push_back(std::move(tally_));
      tally_ = MinuteTally(finished_.back().minute_unix());
    }
  }
  round.tallies.swap(finished_);
  round.drops = drops_unreported_;
  drops_unreported_ = 0;
  round.queue_full_new = stats_.dropped_queue_full - queue_full_reported_;
  queue_full_reported_ = stats_.dropped_queue_full;
  round.tallies_lost = tallies_lost_;
  tallies_lost_ = 0;
  // Submit() failures that never reached mu_ ride along too.
  const uint64_t error_drops = error_drops_.load(std::memory_order_relaxed);
  round.drops += error_drops - error_drops_carried_;
  error_drops_carried_ = error_drops;
}

// ProcessRound() — the records and tallies one round took, checked, in
// batches, each delivered or spooled. RETURNS: the first failure, if any.
Status Recorder::Impl::ProcessRound(Round& round) {
  ReportLosses(round);
  DropRefusedRecords();
  std::vector<record::WorkerTally> tallies = CheckedTallies(round);
  Status result;
  const uint64_t drops = round.drops;
  const bool send_drops_alone = drops > 0 && (round.flushing || round.stopping);
  size_t next = 0;
  bool first = true;  // the first batch carries the tallies and the drop count
  while (next < taken_.size() || (first && (!tallies.empty() || send_drops_alone))) {
    OutBatch out;
    Status s = SerializeBatch(first ? &tallies : nullptr, first ? drops : 0, next, out);
    first = false;
    if (s.ok()) s = DeliverNew(out);
    if (!s.ok() && result.ok()) result = s;
  }
  taken_.clear();
  if (first && drops > 0) {  // no batch this round: the count waits for the next one
    std::lock_guard lk(mu_);
    drops_unreported_ += drops;
  }
  return result;
}

// ReportLosses() — what the request threads lost since the last round.
void Recorder::Impl::ReportLosses(const Round& round) {
  if (round.queue_full_new > 0)
    NoteError(ErrorKind::kQueueFull,
              "queue full (queue_capacity " + std::to_string(options_.queue_capacity) +
                  "): dropped " + std::to_string(round.queue_full_new) +
                  " record(s); the server is slow or the sender cannot keep up");
  if (round.tallies_lost > 0)
    NoteError(ErrorKind::kInternal, "the sender fell " + std::to_string(kMaxFinishedTallies) +
                                        " minutes behind; " + std::to_string(round.tallies_lost) +
                                        " minute tally(ies) dropped");
}

// DropRefusedRecords() — the client's one check of what the application
// handed over. One record the server would refuse makes it refuse the whole
// batch (codec.h): drop such records here, alone, and count them as rejected.
void Recorder::Impl::DropRefusedRecords() {
  size_t kept = 0, invalid = 0;
  Status first_invalid;
  for (size_t i = 0; i < taken_.size(); ++i) {
    Status v = record::ValidateRecord(taken_[i].record);
    if (v.ok()) {
      if (kept != i) taken_[kept] = std::move(taken_[i]);
      ++kept;
    } else if (invalid++ == 0) {
      first_invalid = v;
    }
  }
  taken_.erase(taken_.begin() + static_cast<ptrdiff_t>(kept), taken_.end());
  if (invalid == 0) return;
  {
    std::lock_guard lk(mu_);
    stats_.dropped_rejected += invalid;
  }
  NoteError(ErrorKind::kInvalidItem,
            "dropped " + std::to_string(invalid) +
                " record(s) the server would refuse, the first: " + first_invalid.message());
}

// CheckedTallies() — the round's minute tallies on the wire, those the
// server would refuse dropped.
std::vector<record::WorkerTally> Recorder::Impl::CheckedTallies(const Round& round) {
  std::vector<record::WorkerTally> tallies;
  tallies.reserve(round.tallies.size());
  for (const MinuteTally& t : round.tallies) {
    record::WorkerTally wire = t.ToProto(identity_);
    Status v = record::ValidateTally(wire);
    if (v.ok()) {
      tallies.push_back(std::move(wire));
    } else {
      NoteError(ErrorKind::kInvalidItem, "dropped a minute tally: " + v.message());
    }
  }
  return tallies;
}

// SerializeBatch() — the next batch: up to batch_records_ of taken_ from
// `next` (advanced past them), with `tallies` (moved out) and `drops` when
// given, serialized into `out` with the process's function table for the
// ids its profiles name. RETURNS: Internal when it cannot be serialized
// (its records are then counted as rejected).
Status Recorder::Impl::SerializeBatch(std::vector<record::WorkerTally>* tallies, uint64_t drops,
                                      size_t& next, OutBatch& out) {
  record::Batch batch;
  batch.set_sender(sender_id_);
  batch.set_sequence(++sequence_);
  out.sequence = batch.sequence();
  if (tallies) {
    for (record::WorkerTally& t : *tallies) *batch.add_tallies() = std::move(t);
    batch.set_dropped_records(drops);
    out.dropped = drops;
  }
  const size_t end = std::min(taken_.size(), next + batch_records_);
  batch.mutable_records()->Reserve(static_cast<int>(end - next));
  std::vector<uint32_t> functions;  // the ProcessFunctions ids the batch's profiles name
  for (; next < end; ++next) {
    *batch.add_records() = std::move(taken_[next].record);
    const std::vector<uint32_t>& ids = taken_[next].profile_functions;
    functions.insert(functions.end(), ids.begin(), ids.end());
  }
  out.records = static_cast<uint64_t>(batch.records_size());
  std::sort(functions.begin(), functions.end());
  functions.erase(std::unique(functions.begin(), functions.end()), functions.end());
  // One table a batch: the process's when a profile names its ids.
  if (functions.empty()) record::ShareProfileFunctions(&batch);
  if (batch.SerializeToString(&out.bytes)) {
    ProcessFunctions::Get().AppendTable(functions, &out.bytes);
    return OkStatus();
  }
  {
    std::lock_guard lk(mu_);
    stats_.dropped_rejected += out.records;
    drops_unreported_ += out.dropped;
  }
  Status s =
      Internal("a batch of " + std::to_string(out.records) + " records could not be serialized");
  NoteError(ErrorKind::kInternal, s.message());
  return s;
}

// DeliverNew() — one freshly built batch: to the server, else the spool,
// else dropped. While the spool holds anything, new batches queue behind it
// so the server sees each sender's batches in sequence order.
// RETURNS: OK when the batch was sent or spooled.
Status Recorder::Impl::DeliverNew(const OutBatch& batch) {
  if (spool_ && !spool_->empty()) return SpoolOrDrop(batch);
  const PostResult r = client_->Post(batch.bytes);
  switch (r.outcome) {
    case delivery::Verdict::kDelivered: {
      std::lock_guard lk(mu_);
      stats_.sent += batch.records;
      stats_.batches_sent++;
      ResetBackoff();
      return OkStatus();
    }
    case delivery::Verdict::kRefused: {
      {
        std::lock_guard lk(mu_);
        stats_.dropped_rejected += batch.records;
        drops_unreported_ += batch.dropped;  // the server never counted them
      }
      NoteFailure(r, /*new_batch=*/true);
      return r.http_status == 401 || r.http_status == 403 ? PermissionDenied(r.error)
                                                          : InvalidArgument(r.error);
    }
    case delivery::Verdict::kRetry:
      break;
  }
  {
    std::lock_guard lk(mu_);
    stats_.send_failures++;
  }
  ScheduleRetry(r);
  NoteFailure(r, /*new_batch=*/true);
  return SpoolOrDrop(batch);
}

Status Recorder::Impl::SpoolOrDrop(const OutBatch& batch) {
  Status s = spool_ ? spool_->Append(batch.sequence, batch.records, batch.dropped, batch.bytes)
                    : Unavailable("the server did not take a batch and there is no spool_dir: " +
                                  std::to_string(batch.records) + " record(s) dropped");
  {
    std::lock_guard lk(mu_);
    if (s.ok()) {
      stats_.spooled += batch.records;
    } else {
      // No spool counts as a spool that is always full.
      stats_.dropped_spool_full += batch.records;
      drops_unreported_ += batch.records + batch.dropped;
    }
    if (spool_) stats_.spool_bytes = spool_->bytes();
  }
  if (!s.ok() && spool_)
    NoteError(
        s.code() == StatusCode::kResourceExhausted ? ErrorKind::kSpoolFull : ErrorKind::kSpoolIo,
        s.message() + "; batch dropped");
  return s;
}

// ServeSpool() — between rounds: probe a server that did not answer, and
// replay the oldest spooled batch when its retry time has come.
void Recorder::Impl::ServeSpool() {
  if (!spool_ || spool_->empty()) return;
  const SteadyClock::time_point now = SteadyClock::now();
  if (probing_ && now >= next_probe_ && now < next_replay_) {
    if (client_->Healthy()) {
      next_replay_ = now;
    } else {
      next_probe_ = now + hooks_.probe_interval;
    }
  }
  if (SteadyClock::now() >= next_replay_) ReplayOldest();
}

void Recorder::Impl::ReplayOldest() {
  const SpoolEntry entry = spool_->front();
  Result<std::string> bytes = spool_->ReadFront();
  if (!bytes.ok()) {
    spool_->PopFront();
    {
      std::lock_guard lk(mu_);
      stats_.dropped_spool_full += entry.records;
      drops_unreported_ += entry.records + entry.dropped;
      stats_.spool_bytes = spool_->bytes();
    }
    NoteError(ErrorKind::kSpoolIo, bytes.status().message() + "; batch dropped");
    return;
  }
  const PostResult r = client_->Post(*bytes);
  switch (r.outcome) {
    case delivery::Verdict::kDelivered: {  // a duplicate too: the server has it
      spool_->PopFront();
      std::lock_guard lk(mu_);
      stats_.replayed += entry.records;
      stats_.batches_sent++;
      stats_.spool_bytes = spool_->bytes();
      ResetBackoff();
      return;
    }
    case delivery::Verdict::kRefused: {
      spool_->PopFront();
      {
        std::lock_guard lk(mu_);
        stats_.dropped_rejected += entry.records;
        drops_unreported_ += entry.dropped;
        stats_.spool_bytes = spool_->bytes();
      }
      NoteFailure(r, /*new_batch=*/false);
      return;
    }
    case delivery::Verdict::kRetry:
      break;
  }
  {
    std::lock_guard lk(mu_);
    stats_.send_failures++;
  }
  ScheduleRetry(r);
  NoteFailure(r, /*new_batch=*/false);
}

// ScheduleRetry() — back off: doubling from hooks_.initial_backoff up to
// retry_backoff_max, never sooner than the server's Retry-After (itself
// capped at retry_backoff_max). When the server did not answer at all, a
// /healthz probe every probe_interval may cut a long wait short.
void Recorder::Impl::ScheduleRetry(const PostResult& result) {
  const delivery::Backoff backoff{
      std::chrono::duration_cast<milliseconds>(hooks_.initial_backoff),
      std::chrono::duration_cast<milliseconds>(options_.retry_backoff_max)};
  const SteadyClock::time_point now = SteadyClock::now();
  next_replay_ = now + backoff.Delay(++failures_, result.retry_after);
  probing_ = result.http_status == 0;
  next_probe_ = now + hooks_.probe_interval;
}

void Recorder::Impl::ResetBackoff() {
  failures_ = 0;
  probing_ = false;
  next_replay_ = SteadyClock::time_point{};
}

void Recorder::Impl::NoteFailure(const PostResult& r, bool new_batch) {
  const std::string where =
      spool_ ? "spooling to " + spool_->own_dir() : std::string("dropping batches (no spool_dir)");
  ErrorKind kind;
  std::string message;
  switch (r.outcome) {
    case delivery::Verdict::kRefused:
      kind = r.http_status == 401 || r.http_status == 403 ? ErrorKind::kUnauthorized
                                                          : ErrorKind::kRejected;
      message = r.error + (r.http_status == 401 || r.http_status == 403
                               ? "; check the token; dropping the batch"
                               : "; dropping the batch, it can never be accepted");
      break;
    default:
      kind = r.http_status == 0 ? ErrorKind::kUnreachable : ErrorKind::kServerBusy;
      message = r.error + (new_batch ? ", " + where : ", will retry the spooled batch");
      break;
  }
  NoteError(kind, message);
}

// --- Recorder: forwards to Impl ---

Recorder::Recorder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Recorder::~Recorder() {
  if (impl_) impl_->Close(std::chrono::seconds(2)).IgnoreError();
}

Result<std::unique_ptr<Recorder>> Recorder::Start(const RecorderOptions& options) {
  try {
    Result<std::unique_ptr<Impl>> impl = Impl::Create(options, testing::CurrentRecorderHooks());
    if (!impl.ok()) return impl.status();
    return std::unique_ptr<Recorder>(new Recorder(std::move(*impl)));
  } catch (const std::exception& e) {
    return Internal(std::string("cannot start the recorder: ") + e.what());
  }
}

bool Recorder::Submit(record::RequestRecord&& record, std::vector<uint32_t> profile_functions) {
  return impl_ ? impl_->Submit(std::move(record), std::move(profile_functions)) : false;
}

void Recorder::Count(const std::string& endpoint, const std::string& user, bool sampled) {
  if (impl_) impl_->Count(endpoint, user, sampled);
}

Status Recorder::Flush(std::chrono::milliseconds timeout) {
  return impl_ ? impl_->Flush(timeout) : OkStatus();
}

Status Recorder::Close(std::chrono::milliseconds timeout) {
  return impl_ ? impl_->Close(timeout) : OkStatus();
}

void Recorder::AfterForkInChild() {
  Impl* old = impl_.release();
  if (old == nullptr) return;
  // The parent's sender thread does not exist here and its mutex may be
  // locked forever: leave the old state alone (leaked on purpose, see
  // g_abandoned) and start afresh with the same options.
  old->AbandonInChild();
  RecorderOptions options = old->options_;
  if (!options.sender_id.empty()) {  // a chosen id: keep it recognisable, make it the child's
    const std::string suffix = "-" + std::to_string(static_cast<long>(::getpid()));
    options.sender_id.resize(std::min(options.sender_id.size(), kMaxSenderIdBytes - suffix.size()));
    options.sender_id += suffix;
  }
  impl_ = Impl::CreateInChild(options, old->hooks_);
}

RecorderStats Recorder::stats() const { return impl_ ? impl_->Stats() : RecorderStats{}; }

const std::string& Recorder::sender_id() const {
  static const std::string kNone;
  return impl_ ? impl_->sender_id_ : kNone;
}

}  // namespace cpuledger::client
