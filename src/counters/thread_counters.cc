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

struct ThreadSlot {
  bool tried = false;
  std::optional<CounterSet> set;
  Status error;
};

}  // namespace

void SetThreadCounterOptions(const Options& options) {
  std::lock_guard lock(options_mu);
  ProcessOptions() = options;
}

Result<CounterSet*> ThisThreadCounters() {
  thread_local ThreadSlot slot;
  if (!slot.tried) {
    slot.tried = true;
    Options options;
    {
      std::lock_guard lock(options_mu);
      options = ProcessOptions();
    }
    Result<CounterSet> opened = CounterSet::Open(options);
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
