// src/client/request_scope.h — the CPU bill of one sampled request, being written.
//
// A RequestScope measures the request in steps: a synchronous request is one
// step (Begin ... Finish on the serving thread); an asynchronous one is every
// resumption of its coroutine (Resume/Suspend around each step on the event
// loop thread), so requests interleaved on one thread each pay only for
// their own steps. Spans (db, cache, custom names) add wall time, calls and
// the thread's CPU between SpanBegin and SpanEnd.
//
//   RequestScope scope = RequestScope::Begin();   // on the serving thread
//   auto t = scope.SpanBegin();  RunQuery();  scope.SpanEnd(SpanKind::kDb, "", t);
//   record::RequestRecord r;  scope.Finish(r);    // cpu, wall, spans filled in
//
// Thread-safety: one thread at a time (the GIL or the event loop serialises
// the steps). Steps may run on different threads: each step reads the
// counters of the thread it runs on.
// NOTE: span CPU in async code includes whatever else ran on the thread
// between SpanBegin and SpanEnd; trust span wall time there.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "counters/counters.h"
#include "record/record.pb.h"

namespace cpuledger::client {

enum class SpanKind : uint8_t { kDb, kCache, kCustom };

// SpanToken — where a span started; opaque to callers.
struct SpanToken {
  int64_t wall_start_ns = 0;
  counters::Reading cpu_start;
  bool has_cpu = false;
};

class RequestScope {
 public:
  static constexpr size_t kMaxCustomSpans = 32;  // record::kMaxCustomSpans

  // RequestScope::Begin() — the request starts now, on this thread (first step).
  // COST: one counter Read() (see counters.h) and two clock reads.
  static RequestScope Begin();

  // RequestScope::Resume() / Suspend() — a step starts / ends on the calling
  // thread. Nested calls are counted, so only the outermost pair measures.
  void Resume();
  void Suspend();

  SpanToken SpanBegin() const;
  // RequestScope::SpanEnd() — `name` only for kCustom; spans past
  // kMaxCustomSpans distinct names fold into "other". RETURNS: the CPU this
  // span added to its kind (all zero when it was not measured), so that a
  // caller leaving the span out of something else takes out the same figure.
  counters::Reading SpanEnd(SpanKind kind, std::string_view name, const SpanToken& token);

  // RequestScope::Finish() — ends the running step and writes start time,
  // wall_us, the CPU bill (instructions/cycles left unset when the source
  // has none) and the spans into `record`. RETURNS: false when no counter
  // source could be opened on any step (the record would carry no bill).
  bool Finish(record::RequestRecord& record);

  // The bill so far (for tests and the profiler).
  const counters::Reading& accumulated() const { return accumulated_; }

 private:
  RequestScope() = default;
  void AddStep(const counters::Reading& delta);
  // CustomSpan() — the span named `name`, added if new; at most
  // kMaxCustomSpans, the last being "other".
  record::Span* CustomSpan(std::string_view name);

  int64_t start_unix_us_ = 0;
  int64_t start_mono_ns_ = 0;
  int depth_ = 0;
  counters::CounterSet* step_counters_ = nullptr;  // the thread-local set of the running step
  counters::Reading step_start_;
  counters::Reading accumulated_;
  bool have_bill_ = false;
  bool instructions_missing_ = false;  // some step had no instructions: leave them unset
  bool cycles_missing_ = false;
  record::Span db_, cache_;
  std::vector<record::Span> custom_;
};

}  // namespace cpuledger::client
