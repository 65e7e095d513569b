// src/client/recorder_testing.h — FOR TESTS ONLY. Hooks that let a test drive
// the recorder's time-dependent behaviour (minute boundaries, back-off
// probes) without waiting for real minutes. Production code never includes
// this header; recorders started without a ScopedRecorderHooks alive use the
// defaults below, which are the production behaviour.
//
//   std::atomic<int64_t> now_ms{1'700'000'040'000};
//   testing::RecorderHooks hooks;
//   hooks.now_unix_ms = [&] { return now_ms.load(); };
//   testing::ScopedRecorderHooks scoped(hooks);
//   auto rec = Recorder::Start(options);   // uses the fake wall clock
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace cpuledger::client::testing {

// RecorderHooks — what a test may replace; each recorder copies them at Start().
struct RecorderHooks {
  // The wall clock in unix milliseconds, for minute tallies; empty: the
  // system clock. Must be safe to call from any thread.
  std::function<int64_t()> now_unix_ms;
  // While backing off from a server that did not answer at all, GET /healthz
  // this often, so a long back-off does not delay the replay once it is back.
  std::chrono::milliseconds probe_interval{3000};
  // The first retry delay after a failure; it doubles up to retry_backoff_max.
  std::chrono::milliseconds initial_backoff{100};
  // Called by the sender, under the recorder's lock, each time it goes to
  // sleep with `queued` records waiting (a partial batch waiting for its age
  // when queued > 0). Lets a test see that the sender chose to wait, as an
  // event, not by sleeping. Must not call back into the recorder.
  std::function<void(size_t queued)> on_sender_wait;
};

// ScopedRecorderHooks — recorders started while one is alive use `hooks`.
// REQUIRES: not nested, not concurrent with Recorder::Start() on other threads.
class ScopedRecorderHooks {
 public:
  explicit ScopedRecorderHooks(RecorderHooks hooks);
  ~ScopedRecorderHooks();
  ScopedRecorderHooks(const ScopedRecorderHooks&) = delete;
  ScopedRecorderHooks& operator=(const ScopedRecorderHooks&) = delete;
};

// CurrentRecorderHooks() — the hooks Recorder::Start() uses now.
RecorderHooks CurrentRecorderHooks();

}  // namespace cpuledger::client::testing
