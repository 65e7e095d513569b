// src/counters/perf_page.h — the rdpmc fast path over perf_event_mmap_page.
//
// The kernel publishes, per event, a page with the hardware counter index,
// an offset and the counter width, guarded by a sequence lock (`lock`). A
// reader samples `lock`, reads the fields and the counter, and retries if
// `lock` moved: the kernel rewrote the page (the task was scheduled, the
// event was multiplexed) while we read. See the comment on
// perf_event_mmap_page in <linux/perf_event.h>.
#pragma once

#include <linux/perf_event.h>

#include <atomic>
#include <cstdint>

#include "counters/kernel.h"

namespace cpuledger::counters {

// kMaxSeqlockRetries — a bound so a broken page cannot spin us forever.
inline constexpr int kMaxSeqlockRetries = 64;

// ReadPerfPageCount() — the event's current raw count through rdpmc.
// RETURNS: false when rdpmc cannot be used right now (not allowed, the event
// is not on a counter (index 0), the group was multiplexed so the count needs
// scaling, a nonsense width, or the page kept changing); the caller then
// falls back to read(). COST: one rdpmc, no syscall, no allocation.
inline bool ReadPerfPageCount(const volatile perf_event_mmap_page* page, Kernel& kernel,
                              uint64_t* count) {
  for (int attempt = 0; attempt < kMaxSeqlockRetries; ++attempt) {
    const uint32_t seq = page->lock;
    std::atomic_signal_fence(
        std::memory_order_seq_cst);  // compiler barrier, as the kernel's barrier()
    const uint32_t index = page->index;
    const uint16_t width = page->pmc_width;
    if (!page->cap_user_rdpmc || index == 0 || width == 0 || width > 64 ||
        page->time_enabled != page->time_running) {
      return false;
    }
    // Sign-extend the width-bit counter so a wrap past 2^width still adds
    // up with `offset`, which the kernel keeps relative to the raw value.
    int64_t pmc = static_cast<int64_t>(kernel.Rdpmc(index - 1));
    pmc = static_cast<int64_t>(static_cast<uint64_t>(pmc) << (64 - width)) >> (64 - width);
    const uint64_t value = static_cast<uint64_t>(page->offset) + static_cast<uint64_t>(pmc);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (page->lock == seq) {
      *count = value;
      return true;
    }
  }
  return false;
}

}  // namespace cpuledger::counters
