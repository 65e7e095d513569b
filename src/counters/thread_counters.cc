#include "counters/thread_counters.h"

#include <mutex>
#include <optional>

namespace cpuledger::counters {
namespace {

std::mutex options_mu;
Options& ProcessOptions() {
  static Options options;
  return options;
}
// The source the first kAuto open chose: later threads open it directly, so
// the read costs are timed once per process, not once per thread.
std::optional<SourceRequest>& ResolvedAuto() {
  static std::optional<SourceRequest> resolved;
  return resolved;
}

struct ThreadSlot {
  bool tried = false;
  std::optional<CounterSet> set;
  Status error;
};

// OpenResolved() — opens the source kAuto chose on an earlier thread, or walks
// the chain (and remembers its choice) when none was chosen or it fails here.
Result<CounterSet> OpenResolved(Options options, std::optional<SourceRequest> resolved) {
  if (resolved) {
    Options direct = options;
    direct.source = *resolved;
    Result<CounterSet> opened = CounterSet::Open(direct);
    if (opened.ok()) return opened;
  }
  Result<CounterSet> opened = CounterSet::Open(options);
  if (opened.ok() && options.source == SourceRequest::kAuto) {
    std::lock_guard lock(options_mu);
    if (ProcessOptions().source == SourceRequest::kAuto)
      ResolvedAuto() = Info(opened->source()).request;
  }
  return opened;
}

}  // namespace

void SetThreadCounterOptions(const Options& options) {
  std::lock_guard lock(options_mu);
  ProcessOptions() = options;
  ResolvedAuto().reset();
}

Result<CounterSet*> ThisThreadCounters() {
  thread_local ThreadSlot slot;
  if (!slot.tried) {
    slot.tried = true;
    Options options;
    std::optional<SourceRequest> resolved;
    {
      std::lock_guard lock(options_mu);
      options = ProcessOptions();
      if (options.source == SourceRequest::kAuto) resolved = ResolvedAuto();
    }
    Result<CounterSet> opened = OpenResolved(options, resolved);
    if (opened.ok()) {
      slot.set.emplace(std::move(*opened));
    } else {
      slot.error = opened.status();
    }
  }
  if (slot.set) return &*slot.set;
  return slot.error;
}

}  // namespace cpuledger::counters
