// src/counters/counters.h — how much CPU did this thread spend?
//
// A CounterSet counts the CPU work of the thread that opened it, from the
// best source the machine offers, and every Reading says which source made
// it. The fallback chain (SourceRequest::kAuto) is:
//
//   1. hardware  — perf_event_open group {instructions, cycles}, read with
//                  rdpmc through the mmap'd perf_event_mmap_page when the
//                  kernel allows it (~20-40 ns), with read() otherwise;
//   2. task_clock — the perf software event (one read() syscall, ~0.6 us on
//                  the development VMs);
//   3. thread_cputime — clock_gettime(CLOCK_THREAD_CPUTIME_ID).
//
// Example:
//
//   Result<CounterSet> set = CounterSet::Open();        // on the thread to count
//   if (!set.ok()) return set.status();
//   Reading before = set->Read();
//   DoWork();
//   Reading bill = Delta(before, set->Read());
//   // bill.source says which source; bill.instructions == kNotAvailable
//   // when no PMU was there: never a silent zero.
//
// Thread-safety: a CounterSet belongs to the thread that opened it; read it
// only there (rdpmc reads the PMU of the current CPU for the current task).
// Different threads open their own sets and get independent counts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "counters/kernel.h"

namespace cpuledger::counters {

// kNotAvailable — the value of a count this source cannot produce.
inline constexpr uint64_t kNotAvailable = UINT64_MAX;

// Source — what produced a reading.
enum class Source : uint8_t {
  kHardware = 0,       // PMU counters: instructions and cycles (+ cpu_ns from the thread clock)
  kTaskClock = 1,      // perf software event task-clock: cpu_ns only
  kThreadCpuTime = 2,  // clock_gettime(CLOCK_THREAD_CPUTIME_ID): cpu_ns only
};
inline constexpr Source kAllSources[] = {Source::kHardware, Source::kTaskClock,
                                         Source::kThreadCpuTime};

// SourceName() — "hardware", "task_clock", "thread_cputime" (the record's counter_source).
std::string_view SourceName(Source source);

// ReadMethod — how the hot counter value is fetched.
enum class ReadMethod : uint8_t {
  kRdpmc = 0,    // user-space rdpmc through the perf mmap page: no syscall
  kSyscall = 1,  // read() on the perf fd
  kClock = 2,    // clock_gettime
};
std::string_view ReadMethodName(ReadMethod method);

// SourceRequest — what the user asked for; kAuto walks the fallback chain.
enum class SourceRequest : uint8_t { kAuto, kHardware, kTaskClock, kThreadCpuTime };

// ParseSourceRequest() — "auto", "hardware", "task_clock"/"task-clock",
// "thread_cputime"/"thread-cputime"/"cputime". RETURNS: InvalidArgument otherwise.
Result<SourceRequest> ParseSourceRequest(std::string_view text);

// kSourceEnvVar — the environment variable that forces a source ("hardware", ...).
inline constexpr const char* kSourceEnvVar = "CPULEDGER_COUNTER_SOURCE";

// SourceRequestFromEnv() — the request in $CPULEDGER_COUNTER_SOURCE; kAuto when unset.
// RETURNS: InvalidArgument naming the variable when its value is not a source.
Result<SourceRequest> SourceRequestFromEnv();

// Options — how to open a CounterSet.
struct Options {
  SourceRequest source = SourceRequest::kAuto;
  bool use_rdpmc = true;     // false forces read() even where rdpmc is allowed
  bool count_kernel = true;  // count kernel mode too; falls back to user-only when refused
};

// Reading — cumulative counts of this thread since the set was opened (or,
// from Delta(), the counts between two readings).
struct Reading {
  uint64_t instructions = kNotAvailable;  // retired instructions; kNotAvailable without a PMU
  uint64_t cycles = kNotAvailable;        // core cycles; kNotAvailable without a PMU
  uint64_t cpu_ns = 0;                    // thread CPU time in nanoseconds: every source has it
  Source source = Source::kThreadCpuTime;
  bool kernel_included = true;   // hardware counts include kernel mode (false: user only)
  double multiplex_scale = 1.0;  // time_enabled / time_running applied to hardware counts;
                                 // 1.0 when the group had the PMU to itself
};

// Delta() — end minus start, count by count; kNotAvailable stays kNotAvailable.
// REQUIRES: both from the same CounterSet, `start` read first.
Reading Delta(const Reading& start, const Reading& end);

// Attempt — one try at opening a source, kept for `cpuledger doctor`.
struct Attempt {
  Source source = Source::kHardware;
  Status status;                   // OK when the source opened
  std::vector<std::string> notes;  // caveats that still let it work ("user space only", ...)
};

// ExplainOpenError() — a sentence a user can act on for a failed
// perf_event_open(source) with `err` (errno), e.g. naming the paranoid sysctl.
std::string ExplainOpenError(Source source, int err, Kernel& kernel);

// ReadPerfEventParanoid() — /proc/sys/kernel/perf_event_paranoid, or INT32_MIN if unreadable.
int ReadPerfEventParanoid(Kernel& kernel);

// RunningInVirtualMachine() — true when /proc/cpuinfo lists the "hypervisor" flag.
bool RunningInVirtualMachine(Kernel& kernel);

namespace internal {
class Handles;  // the fds and mappings of an open set (counters.cc)
}

// CounterSet — an open source for the calling thread. Move-only; closes its
// fds and unmaps its pages on destruction.
class CounterSet {
 public:
  // CounterSet::Open() — opens the requested source, or the first that works
  // when options.source is kAuto. `kernel` must outlive the set.
  // RETURNS: the set, or the error of the requested source (Unavailable or
  // PermissionDenied, with a message from ExplainOpenError()).
  // COST: a few syscalls (perf_event_open, mmap, ioctl); call once per thread.
  static Result<CounterSet> Open(const Options& options = {}, Kernel& kernel = RealKernel());

  CounterSet(CounterSet&&) noexcept;
  CounterSet& operator=(CounterSet&&) noexcept;
  CounterSet(const CounterSet&) = delete;
  CounterSet& operator=(const CounterSet&) = delete;
  ~CounterSet();

  // CounterSet::Read() — every count the source has, now.
  // COST: hardware: two rdpmc + one clock_gettime (or one read() + one
  // clock_gettime without rdpmc); task_clock: one read(); thread_cputime: one
  // clock_gettime. No allocation.
  Reading Read();

  // CounterSet::ReadPrimary() — only the primary count (instructions for
  // hardware, nanoseconds otherwise): the profiler's per-event read.
  // COST: hardware: one rdpmc (or one read()); otherwise as Read().
  uint64_t ReadPrimary();

  Source source() const { return source_; }
  ReadMethod method() const { return method_; }
  // CounterSet::primary_unit() — "instructions" or "ns".
  std::string_view primary_unit() const;
  bool kernel_included() const { return kernel_included_; }
  bool has_cycles() const;
  // CounterSet::attempts() — every source tried on the way here, in order.
  const std::vector<Attempt>& attempts() const { return attempts_; }

 private:
  CounterSet(Kernel& kernel, Source source);

  Kernel* kernel_;
  Source source_;
  ReadMethod method_ = ReadMethod::kClock;
  bool kernel_included_ = true;
  std::unique_ptr<internal::Handles> handles_;
  std::vector<Attempt> attempts_;

  friend class Opener;
};

}  // namespace cpuledger::counters
