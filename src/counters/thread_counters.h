// src/counters/thread_counters.h — one CounterSet per thread, opened on first use.
//
// The request path and the profiler read "this thread's counters" many times
// a second; opening a perf group costs syscalls, so each thread opens its set
// once, on first use, with the process-wide options, and keeps it until the
// thread exits (thread_local; closed by RAII). With kAuto the first thread's
// open chooses the source (timing the reads of equivalent sources, see
// CounterSet::Open); later threads open that source directly.
//
//   SetThreadCounterOptions(options);        // at start-up, before serving
//   Result<CounterSet*> c = ThisThreadCounters();
//   if (c.ok()) Reading r = (*c)->Read();
#pragma once

#include "base/status.h"
#include "counters/counters.h"

namespace cpuledger::counters {

// SetThreadCounterOptions() — the options threads open their set with.
// NOTE: threads that already opened keep theirs. Thread-safe.
void SetThreadCounterOptions(const Options& options);

// ThisThreadCounters() — the calling thread's set, opened on first call.
// RETURNS: the set (owned by the thread; valid until it exits), or the error
// of the failed open (remembered: a thread does not retry every call).
// COST: a thread_local lookup after the first call.
Result<CounterSet*> ThisThreadCounters();

}  // namespace cpuledger::counters
