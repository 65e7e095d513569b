// python/cpuledger/native/profiler.h — the interpreter hooks of the profiler:
// "a cProfile whose timer is a CPU counter", with full call paths.
//
// Two ways to see calls, one core:
//
//   exact — a C profile function (PyEval_SetProfile), as Modules/_lsprof.c:
//           Python calls, generator resumes and C builtins, with call counts
//           equal to cProfile's.
//   fast  — a PEP 523 eval-frame function (eval_frame.h): Python frames only,
//           C builtins folded into their caller's self cost; CPython 3.11.
//
//   Profiler p(ClockSource::kCpu, Mode::kExact);  // on the thread to profile
//   p.Enable();                                   // RETURNS false + error() on failure
//   Work();
//   p.Disable();
//   for (const NodeStats& n : p.nodes()) ...      // nodes()[0] is the root
//
// Costs stay integer ticks of the selected clock (instructions, cycles, ns or
// TSC ticks) until export. Per call: self = total - callees' totals, with the
// calibrated hook overhead taken out (Calibration below, never below zero).
// A node is one call path (root -> view -> wrapper -> f); whether its calls
// are primitive (the function is not already on the path: _lsprof's
// recursion level) is fixed when the node is made, so recursion is never
// counted twice in per-function totals (count only primitive nodes).
//
// Thread-safety: a Profiler profiles the one thread that enabled it; every
// member is used with the GIL held. Hooks never release the GIL.
#pragma once

#include <Python.h>

#include <time.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cpuledger::counters {
class CounterSet;
}
namespace cpuledger::record {
class Profile;
}

namespace cpuledger::python {

// ClockSource — what the user asked to count in ("auto" picks instructions
// where a PMU is there, CPU ns otherwise).
enum class ClockSource : uint8_t { kAuto, kInstructions, kCycles, kCpu, kWall };

// Mode — which hook feeds the profile.
enum class Mode : uint8_t { kExact, kFast };

// ParseClockSource() / ParseMode() — "auto"|"instructions"|"cycles"|"cpu"|"wall"
// and "exact"|"fast". RETURNS: false for any other text.
bool ParseClockSource(std::string_view text, ClockSource* out);
bool ParseMode(std::string_view text, Mode* out);

// ClockKind — how one reading is taken, decided once at Enable().
enum class ClockKind : uint8_t {
  kPrimary,       // CounterSet::ReadPrimary(): instructions (PMU) or ns (task_clock)
  kCycles,        // CounterSet::Read().cycles (PMU only)
  kThreadCpu,     // clock_gettime(CLOCK_THREAD_CPUTIME_ID), ns
  kTsc,           // rdtsc, ticks (x86-64)
  kMonotonicRaw,  // clock_gettime(CLOCK_MONOTONIC_RAW), ns where there is no TSC
                  // (still labelled "tsc": the record's unit for wall time)
};

// FunctionEntry — one function seen, named as cProfile names it.
struct FunctionEntry {
  PyObject* code = nullptr;  // strong ref to the PyCodeObject; nullptr for a C builtin
  std::string builtin;       // "<built-in method builtins.len>" style, for C builtins
};

// NodeStats — one call path. Costs are in the profile's unit, calibrated.
struct NodeStats {
  uint32_t function = 0;    // index into functions(); meaningless for the root
  uint32_t parent = 0;      // node index of the caller path; the root's is 0
  bool primitive = true;    // the function is not already on the path
  uint64_t calls = 0;       // times this path was entered
  uint64_t self_cost = 0;   // cost in this frame, excluding callees
  uint64_t total_cost = 0;  // cost including callees
};

// Calibration — the measured cost of one hook call (enter + leave).
struct Calibration {
  uint64_t per_call = 0;   // cost one profiled call adds to the run, in ticks
  uint64_t in_callee = 0;  // of that, what lands between the callee's two clock reads
};

class Profiler {
 public:
  // kNoNode — a context whose call is not recorded (node limit reached).
  static constexpr uint32_t kNoNode = UINT32_MAX;

  Profiler(ClockSource source, Mode mode, bool calibrate, uint32_t max_nodes);
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  // Profiler::Enable() — starts profiling the calling thread. `self` is the
  // Python object owning this profiler (kept alive while enabled; may be null).
  // RETURNS: false with *why set when the clock cannot be opened on this
  // thread, or another cpuledger profiler is enabled on it (not sticky).
  // NOTE: the first Enable() of a (mode, clock) in the process calibrates
  // (about 20-60 ms); later ones reuse the figure.
  bool Enable(PyObject* self, std::string* why);
  // Profiler::Disable() — stops; frames still running are closed now and
  // counted (as _lsprof's flush_unmatched). RETURNS: false when called from
  // another thread than Enable()'s (nothing done).
  bool Disable();
  // Profiler::Clear() — forgets every node and function (REQUIRES: disabled).
  void Clear();

  bool enabled() const { return enabled_; }
  Mode mode() const { return mode_; }
  // mode_fallback() — why fast mode fell back to exact ("" when it did not).
  const std::string& mode_fallback() const { return mode_fallback_; }
  std::string_view unit() const;    // "instructions", "cycles", "cpu_ns", "tsc" (record.proto's)
  std::string_view source() const;  // "hardware", "task_clock", "thread_cputime", "tsc", ...
  bool builtins_folded() const { return mode_ == Mode::kFast; }
  uint64_t overhead_per_event() const { return calibration_.per_call; }
  const Calibration& calibration() const { return calibration_; }
  // open_error() — why the clock could not be opened at construction ("" when it could).
  const std::string& open_error() const { return open_error_; }
  // error() — the sticky failure of a hook (the first one), "" when none.
  const std::string& error() const { return error_; }
  const std::vector<NodeStats>& nodes() const { return nodes_; }
  // Profiler::SubtreeTotals() — per node, its self cost plus its callees'
  // totals. The per-call calibration can leave a node's measured total a
  // little below the sum of its callees' (a generator resumed thousands of
  // times by a builtin); exports use these totals instead, which are
  // consistent by construction. COST: one pass over the nodes.
  std::vector<uint64_t> SubtreeTotals() const;
  const std::vector<FunctionEntry>& functions() const { return functions_; }
  // Profiler::ToProto() — the profile as the record.Profile a RequestRecord
  // carries (CallTree::FromProto reads it). Names longer than
  // kMaxProfileStringBytes are cut at a character boundary.
  // REQUIRES: the GIL (reads code objects). COST: O(nodes), allocates.
  void ToProto(record::Profile* out) const;

  // --- the core, used by the hooks (exact: profiler.cc; fast: eval_frame.cc) ---

  // Profiler::Enter() — a call of the function identified by `key` begins;
  // `object` is its code object (python) or PyCFunction (builtin), used only
  // the first time the path is seen. Reads the clock last.
  inline void Enter(const void* key, PyObject* object, bool builtin);
  // Profiler::Leave() — the innermost call returns. Reads the clock first.
  inline void Leave();
  size_t depth() const { return depth_; }
  uint64_t epoch() const { return epoch_; }

  // Profiler::Active() — the profiler enabled on the calling thread, or null.
  static Profiler* Active();

 private:
  struct Context {
    uint64_t t0 = 0;    // clock at entry, after the hook's own work
    uint64_t subt = 0;  // calibrated totals of the finished direct callees
    uint64_t ovh = 0;   // calibrated overhead of every call below, to take out of total
    uint32_t node = 0;  // the node of this call, kNoNode when not recorded
  };
  struct Slot {  // child index: (parent, key) -> node; node == kNoNode: empty
    const void* key = nullptr;
    uint32_t parent = 0;
    uint32_t node = kNoNode;
  };

  inline uint64_t ReadClock();
  uint32_t AddNode(uint32_t parent, const void* key, PyObject* object, bool builtin);
  uint32_t InternFunction(const void* key, PyObject* object, bool builtin);
  void GrowIndex();
  void Fail(std::string message);
  bool OpenClock(std::string* why);
  Calibration Calibrate();

  ClockSource requested_;
  Mode mode_;
  bool calibrate_;
  uint32_t max_nodes_;
  ClockKind clock_ = ClockKind::kThreadCpu;
  counters::CounterSet* set_ = nullptr;  // the enabling thread's set (kPrimary / kCycles)
  std::string source_name_, unit_name_, mode_fallback_, open_error_, error_;
  Calibration calibration_;

  bool enabled_ = false;
  PyObject* owner_ = nullptr;  // strong ref to the Python object while enabled
  unsigned long thread_ = 0;   // PyThread_get_thread_ident() of the enabling thread
  uint64_t epoch_ = 0;         // changes at every Enable() (fast mode matches frames by it)

  std::vector<Context> stack_;  // contexts [0, depth_) are live; the rest is the free list
  size_t depth_ = 0;
  std::vector<NodeStats> nodes_;  // nodes_[0] is the root
  std::vector<Slot> index_;       // open addressing, power-of-two size
  size_t index_used_ = 0;
  std::vector<FunctionEntry> functions_;
  std::unordered_map<const void*, uint32_t> function_index_;
};

// --- inline hot path -------------------------------------------------------

namespace internal {
uint64_t ReadCounterPrimary(counters::CounterSet* set);
uint64_t ReadCounterCycles(counters::CounterSet* set);
inline uint64_t ClockNs(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
inline size_t HashSlot(const void* key, uint32_t parent) {
  uint64_t h = reinterpret_cast<uintptr_t>(key) ^ (static_cast<uint64_t>(parent) << 40);
  h *= 0x9E3779B97F4A7C15ull;
  return static_cast<size_t>(h ^ (h >> 29));
}
}  // namespace internal

inline uint64_t Profiler::ReadClock() {
  switch (clock_) {
    case ClockKind::kPrimary:
      return internal::ReadCounterPrimary(set_);
    case ClockKind::kCycles:
      return internal::ReadCounterCycles(set_);
    case ClockKind::kThreadCpu:
      return internal::ClockNs(CLOCK_THREAD_CPUTIME_ID);
    case ClockKind::kTsc:
#if defined(__x86_64__) || defined(__i386__)
      return __builtin_ia32_rdtsc();
#else
      return internal::ClockNs(CLOCK_MONOTONIC_RAW);
#endif
    case ClockKind::kMonotonicRaw:
      return internal::ClockNs(CLOCK_MONOTONIC_RAW);
  }
  return 0;
}

inline void Profiler::Enter(const void* key, PyObject* object, bool builtin) {
  uint32_t parent = depth_ == 0 ? 0 : stack_[depth_ - 1].node;
  uint32_t node = kNoNode;
  if (parent != kNoNode) {
    size_t mask = index_.size() - 1;
    for (size_t i = internal::HashSlot(key, parent) & mask;; i = (i + 1) & mask) {
      const Slot& s = index_[i];
      if (s.node == kNoNode) {
        node = AddNode(parent, key, object, builtin);  // slow path: a new path
        break;
      }
      if (s.key == key && s.parent == parent) {
        node = s.node;
        break;
      }
    }
  }
  if (depth_ == stack_.size()) stack_.emplace_back();  // allocates only when deeper than ever
  Context& c = stack_[depth_++];
  c.subt = 0;
  c.ovh = 0;
  c.node = node;
  c.t0 = ReadClock();
}

inline void Profiler::Leave() {
  uint64_t now = ReadClock();
  if (depth_ == 0) return;  // a frame that began before Enable()
  Context& c = stack_[--depth_];
  uint64_t raw = now - c.t0;
  uint64_t take = c.ovh + calibration_.in_callee;
  uint64_t tt = raw > take ? raw - take : 0;    // total, calibrated
  uint64_t it = tt > c.subt ? tt - c.subt : 0;  // self = total - callees
  if (c.node == kNoNode) {
    // Not recorded: its cost stays in the caller's self.
    if (depth_ > 0) stack_[depth_ - 1].ovh += c.ovh + calibration_.per_call;
    return;
  }
  NodeStats& n = nodes_[c.node];
  n.calls += 1;
  n.self_cost += it;
  n.total_cost += tt;
  if (depth_ > 0) {
    Context& p = stack_[depth_ - 1];
    p.subt += tt;
    p.ovh += c.ovh + calibration_.per_call;
  }
}

}  // namespace cpuledger::python
