// src/base/delivery.h — the one HTTP delivery policy every sender follows
// (the recorder's ingest client, the webhook sender, `cpuledger simulate`):
// which answers mean delivered, try again later, or never; how long to wait
// before the next try; how Retry-After is read.
//
//   switch (delivery::Classify(status)) { case delivery::Verdict::kRetry: ... }
//   wait = backoff.Delay(failures, delivery::ParseRetryAfter(header, now));
//
// The rule: 2xx delivered. 408, 429, 5xx and no answer at all (refused,
// reset, timed out) are passing: retry. 1xx and 3xx too: senders follow no
// redirects, so one means a misconfigured URL, which can be fixed without
// losing what waits. Every other 4xx refuses these bytes for good: retrying
// them would block everything queued behind them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace cpuledger::delivery {

enum class Verdict : uint8_t {
  kDelivered = 0,  // 2xx: taken (or already taken); forget it
  kRetry = 1,      // keep it and try again later
  kRefused = 2,    // these bytes can never succeed: drop and count
};

// Classify() — the verdict for an HTTP status; 0 means no response at all.
Verdict Classify(int http_status);

// ParseRetryAfter() — a Retry-After value, delta-seconds ("120") or an
// HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT", relative to `now`), as a wait
// capped at one day. RETURNS: 0 for an absent, past or malformed value.
std::chrono::milliseconds ParseRetryAfter(std::string_view value,
                                          std::chrono::system_clock::time_point now);

// Backoff — waits doubling from `initial` up to `max`.
struct Backoff {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{30'000};

  // Backoff::Delay() — the wait after `failures` consecutive failed tries
  // (1: the first), never sooner than the server's Retry-After, itself
  // capped at `max`.
  std::chrono::milliseconds Delay(int failures, std::chrono::milliseconds retry_after) const;
};

}  // namespace cpuledger::delivery
