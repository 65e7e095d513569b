#include "client/request_scope.h"

#include <time.h>

#include <algorithm>

#include "counters/thread_counters.h"

namespace cpuledger::client {
namespace {

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t UnixUs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

void AddCpu(record::CpuBill& bill, const counters::Reading& d) {
  bill.set_cpu_ns(bill.cpu_ns() + d.cpu_ns);
  if (d.instructions != counters::kNotAvailable)
    bill.set_instructions(bill.instructions() + d.instructions);
  if (d.cycles != counters::kNotAvailable) bill.set_cycles(bill.cycles() + d.cycles);
  bill.set_counter_source(std::string(counters::SourceName(d.source)));
}

}  // namespace

RequestScope RequestScope::Begin() {
  RequestScope scope;
  scope.start_unix_us_ = UnixUs();
  scope.start_mono_ns_ = MonoNs();
  scope.accumulated_.instructions = 0;
  scope.accumulated_.cycles = 0;
  scope.Resume();
  return scope;
}

void RequestScope::Resume() {
  if (depth_++ > 0) return;
  Result<counters::CounterSet*> set = counters::ThisThreadCounters();
  step_counters_ = set.ok() ? *set : nullptr;
  if (step_counters_) step_start_ = step_counters_->Read();
}

void RequestScope::Suspend() {
  if (depth_ == 0 || --depth_ > 0) return;
  if (step_counters_) AddStep(counters::Delta(step_start_, step_counters_->Read()));
  step_counters_ = nullptr;
}

void RequestScope::AddStep(const counters::Reading& d) {
  have_bill_ = true;
  accumulated_.source = d.source;
  accumulated_.kernel_included = d.kernel_included;
  accumulated_.cpu_ns += d.cpu_ns;
  accumulated_.multiplex_scale = std::max(accumulated_.multiplex_scale, d.multiplex_scale);
  if (d.instructions == counters::kNotAvailable)
    instructions_missing_ = true;
  else
    accumulated_.instructions += d.instructions;
  if (d.cycles == counters::kNotAvailable)
    cycles_missing_ = true;
  else
    accumulated_.cycles += d.cycles;
}

record::Span* RequestScope::CustomSpan(std::string_view name) {
  for (auto& s : custom_)
    if (s.name() == name) return &s;
  // The last slot is kept for "other": names past the limit fold into it.
  const std::string_view key = custom_.size() + 1 < kMaxCustomSpans ? name : "other";
  for (auto& s : custom_)
    if (s.name() == key) return &s;
  record::Span& span = custom_.emplace_back();
  span.set_name(std::string(key));
  return &span;
}

SpanToken RequestScope::SpanBegin() const {
  SpanToken t;
  t.wall_start_ns = MonoNs();
  Result<counters::CounterSet*> set = counters::ThisThreadCounters();
  if (set.ok()) {
    t.cpu_start = (*set)->Read();
    t.has_cpu = true;
  }
  return t;
}

counters::Reading RequestScope::SpanEnd(SpanKind kind, std::string_view name,
                                        const SpanToken& token) {
  record::Span* span = nullptr;
  switch (kind) {
    case SpanKind::kDb:
      span = &db_;
      break;
    case SpanKind::kCache:
      span = &cache_;
      break;
    case SpanKind::kCustom:
      span = CustomSpan(name);
      break;
  }
  span->set_calls(span->calls() + 1);
  span->set_wall_us(span->wall_us() + static_cast<uint64_t>(MonoNs() - token.wall_start_ns) / 1000);
  counters::Reading delta;
  if (token.has_cpu) {
    Result<counters::CounterSet*> set = counters::ThisThreadCounters();
    if (set.ok()) {
      delta = counters::Delta(token.cpu_start, (*set)->Read());
      AddCpu(*span->mutable_cpu(), delta);
    }
  }
  return delta;
}

bool RequestScope::Finish(record::RequestRecord& record) {
  while (depth_ > 0) Suspend();
  const int64_t wall_ns = MonoNs() - start_mono_ns_;
  record.set_start_time_unix_us(start_unix_us_);
  record.set_wall_us(static_cast<uint64_t>(wall_ns > 0 ? wall_ns : 0) / 1000);
  if (!have_bill_) return false;
  record::CpuBill* bill = record.mutable_cpu();
  bill->set_cpu_ns(accumulated_.cpu_ns);
  bill->set_counter_source(std::string(counters::SourceName(accumulated_.source)));
  if (!instructions_missing_) bill->set_instructions(accumulated_.instructions);
  if (!cycles_missing_) bill->set_cycles(accumulated_.cycles);
  if (accumulated_.source == counters::Source::kHardware)
    bill->set_kernel_included(accumulated_.kernel_included);
  bill->set_multiplex_scale(accumulated_.multiplex_scale);
  db_.set_name("db");
  cache_.set_name("cache");
  *record.mutable_db() = db_;
  *record.mutable_cache() = cache_;
  for (auto& s : custom_) *record.add_custom() = s;
  return true;
}

}  // namespace cpuledger::client
