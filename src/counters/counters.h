// src/counters/counters.h — how much CPU did this thread spend?
//
// A CounterSet counts the CPU work of the thread that opened it, from the
// best source the machine offers, and every Reading says which source made
// it. The fallback chain (SourceRequest::kAuto) is:
//
//   1. hardware  — perf_event_open group {instructions, cycles}, read with
//                  rdpmc through the mmap'd perf_event_mmap_page when the
//                  kernel allows it (~20-40 ns), with read() otherwise;
//   2. task_clock — the perf software event: one read() syscall (~250 ns on
//                  an idle development VM, ~640 ns on a loaded one);
//   3. thread_cputime — clock_gettime(CLOCK_THREAD_CPUTIME_ID): a syscall too,
//                  the vDSO does not serve it (~200 ns idle, ~540 ns loaded).
//
// 2 and 3 give the same unit (cpu_ns): without a PMU, kAuto opens both, times
// their reads and keeps the cheaper (kSources is the table of sources).
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

#include <algorithm>
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

// Source — what produced a reading. The value is also the code the SQLite
// store keeps on disk for a record's counter_source (raw chunks, rollups;
// 0 = unknown), so existing files read the same: never renumber.
enum class Source : uint8_t {
  kHardware = 1,       // PMU counters: instructions and cycles (+ cpu_ns from the thread clock)
  kTaskClock = 2,      // perf software event task-clock: cpu_ns only
  kThreadCpuTime = 3,  // clock_gettime(CLOCK_THREAD_CPUTIME_ID): cpu_ns only
};

// SourceRequest — what the user asked for; kAuto walks the fallback chain.
enum class SourceRequest : uint8_t { kAuto, kHardware, kTaskClock, kThreadCpuTime };

// SourceInfo — one row of kSources.
struct SourceInfo {
  Source source;
  std::string_view name;  // the one spelling: records' counter_source, settings, doctor
  std::string_view unit;  // unit of the primary count; sources of one unit are interchangeable
  SourceRequest request;  // the request that forces this source
  uint8_t code() const { return static_cast<uint8_t>(source); }  // the store's code
};

// kSources — the one table of counter sources, in fallback order (the chain
// kAuto walks). Python's settings validate against it (the native module
// exports it) and the store maps names to codes through it.
inline constexpr SourceInfo kSources[] = {
    {Source::kHardware, "hardware", "instructions", SourceRequest::kHardware},
    {Source::kTaskClock, "task_clock", "cpu_ns", SourceRequest::kTaskClock},
    {Source::kThreadCpuTime, "thread_cputime", "cpu_ns", SourceRequest::kThreadCpuTime},
};

// kAutoName — the spelling of SourceRequest::kAuto.
inline constexpr std::string_view kAutoName = "auto";

// kUnknownSourceCode — SourceCode() of a name that is not in kSources.
inline constexpr uint8_t kUnknownSourceCode = 0;

// Info() — the row of `source`. REQUIRES: a Source enumerator.
const SourceInfo& Info(Source source);

// SourceName() — "hardware", "task_clock", "thread_cputime" (the record's counter_source).
std::string_view SourceName(Source source);

// SourceCode() — the store's code of a counter_source name; kUnknownSourceCode
// for a name not in kSources.
uint8_t SourceCode(std::string_view name);

// ReadMethod — how the hot counter value is fetched.
enum class ReadMethod : uint8_t {
  kRdpmc = 0,    // user-space rdpmc through the perf mmap page: no syscall
  kSyscall = 1,  // read() on the perf fd
  kClock = 2,    // clock_gettime
};
std::string_view ReadMethodName(ReadMethod method);

// ParseSourceRequest() — "auto" (or empty) or a name in kSources, spelled
// exactly so. RETURNS: InvalidArgument listing the names otherwise.
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

// RequestName() — "auto" or the name of the forced source.
std::string_view RequestName(SourceRequest request);

// Attempt — one try at opening a source, kept for `cpuledger doctor`.
struct Attempt {
  Source source = Source::kHardware;
  Status status;                   // OK when the source opened
  std::vector<std::string> notes;  // caveats that still let it work ("user space only", ...)
  double read_ns = -1;  // MeasureReadNs() when kAuto compared it with a source of the same
                        // unit; -1 when not measured
};

// ExplainOpenError() — a sentence a user can act on for a failed
// perf_event_open(source) with `err` (errno), e.g. naming the paranoid sysctl.
std::string ExplainOpenError(Source source, int err, Kernel& kernel);

// ReadPerfEventParanoid() — /proc/sys/kernel/perf_event_paranoid, or INT32_MIN if unreadable.
int ReadPerfEventParanoid(Kernel& kernel);

// RunningInVirtualMachine() — true when /proc/cpuinfo lists the "hypervisor" flag.
bool RunningInVirtualMachine(Kernel& kernel);

// kCostRounds, kCostReadsPerRound — how MeasureReadNs() samples: 3000 reads,
// the median of 15 rounds' means (a round's mean smooths the clock's grain,
// the median drops rounds hit by a preemption).
inline constexpr int kCostRounds = 15;
inline constexpr int kCostReadsPerRound = 200;

// MedianCostNs() — the median over `rounds` of the mean cost of one call(),
// timed with kernel.MonotonicNs(). `call` returns a value that is kept, so the
// call is not optimised away.
template <typename Call>
double MedianCostNs(Kernel& kernel, Call&& call, int rounds = kCostRounds,
                    int calls_per_round = kCostReadsPerRound);

namespace internal {
class Handles;  // the fds and mappings of an open set (counters.cc)
}

// CounterSet — an open source for the calling thread. Move-only; closes its
// fds and unmaps its pages on destruction.
class CounterSet {
 public:
  // CounterSet::Open() — opens the requested source; with kAuto, the first
  // of kSources that works, except that when a later source gives the same
  // unit (task_clock and thread_cputime both give cpu_ns) both are opened,
  // their reads timed (MeasureReadNs) and the cheaper kept; ties keep the
  // chain order. Hardware is alone in its unit, so it wins whenever it opens.
  // The costs are in attempts(). `kernel` must outlive the set.
  // RETURNS: the set, or the error of the requested source (Unavailable or
  // PermissionDenied, with a message from ExplainOpenError()).
  // COST: a few syscalls (perf_event_open, mmap, ioctl); with kAuto and no
  // PMU, also 2 x 3000 reads (about 1.5 ms here). Call once per thread.
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
  // CounterSet::primary_unit() — the unit of ReadPrimary(): "instructions" or "cpu_ns".
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

// MeasureReadNs() — the cost of one set.Read(): MedianCostNs over 3000 reads.
double MeasureReadNs(CounterSet& set, Kernel& kernel);

template <typename Call>
double MedianCostNs(Kernel& kernel, Call&& call, int rounds, int calls_per_round) {
  std::vector<double> per_call;
  per_call.reserve(static_cast<size_t>(rounds));
  volatile uint64_t sink = 0;
  for (int round = 0; round < rounds; ++round) {
    const int64_t t0 = kernel.MonotonicNs();
    for (int i = 0; i < calls_per_round; ++i) sink = sink + static_cast<uint64_t>(call());
    per_call.push_back(static_cast<double>(kernel.MonotonicNs() - t0) / calls_per_round);
  }
  std::nth_element(per_call.begin(), per_call.begin() + rounds / 2, per_call.end());
  return per_call[static_cast<size_t>(rounds / 2)];
}

}  // namespace cpuledger::counters
