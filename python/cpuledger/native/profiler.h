// python/cpuledger/native/profiler.h — the interpreter hooks of the profiler:
// "a cProfile whose timer is a CPU counter", with full call paths.
//
// Two ways to see calls, one core:
//
//   exact — a C profile function (PyEval_SetProfile), as Modules/_lsprof.c:
//           Python calls, generator resumes and C builtins, with call counts
//           equal to cProfile's (on 3.12+ CPython feeds it from
//           sys.monitoring, as it feeds cProfile).
//   fast  — Python frames only, C builtins folded into their caller's self
//           cost, through the hook that is cheapest on the running CPython
//           (FastHook): the PEP 523 eval-frame function (eval_frame.h) on
//           3.11 and 3.12, sys.monitoring callbacks (monitoring.h) from 3.13.
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
// Apportioned (ClockSource::kApportioned, the middleware's default): frames
// are timed by the TSC (a few ns a read, where the CPU counters cost a
// system call without a PMU), and a CPU figure read from the thread's real
// counter — the request's bill, or the counter read at Enable()/Disable() —
// is shared out over the nodes at export, in proportion to their calibrated
// ticks (Costs()). Stretches the caller excludes (PauseClock/ResumeClock:
// the request's db and cache spans) stop the ticks, and their CPU comes off
// the figure. The split is an estimate (a frame that waited off the CPU
// outside those stretches is charged as if it computed); the total is not.
//
// Pausing: one profile can follow a piece of work that runs in steps
// between other work on the same thread (an ASGI request's coroutine on a
// shared event loop: python/cpuledger/asgi.py):
//
//   p.Enable();  p.Pause();      // the profile is open, nothing is seen
//   p.Resume();  coro.send(v);  p.Pause();   // one step of the request
//   ...                          // other requests run, maybe with their own profilers
//   p.Resume();  coro.send(v);  p.Pause();   // the next step
//   p.Disable();
//
// Pause() detaches the hook and stops the clock; the call tree, the open
// calls and the apportioned window are kept, so time and CPU between steps
// are in no node and not in own_cost(). A coroutine suspended in an `await`
// is not an open call across the pause: its yield ends its frame's
// evaluation (exact mode sees a return, the eval-frame hook returns,
// sys.monitoring reports PY_YIELD) and the next step's resume enters it
// again, from the outermost coroutine of the await chain down, so each step
// re-enters the same call path and a coroutine's callees land under it as
// under a plain call. The path follows
// whoever resumes the chain: a task's coroutine is a top-level call of the
// profile, as its step is driven by the event loop, not by its creator.
// Counts stay cProfile's: cProfile (3.11-3.13) counts every resume of a
// coroutine or generator as a call, and so does either mode here. A throw()
// into a suspended chain (a cancellation) is not a resume from the top:
// CPython evaluates the innermost frame first, so that step's frames are
// entered out of order (top-level calls in exact mode, as cProfile sees them).
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
struct Reading;
}  // namespace cpuledger::counters
namespace cpuledger::record {
class Profile;
}

namespace cpuledger::python {

// ClockSource — what the user asked to count in ("auto": instructions read
// per frame where a PMU is there, else "apportioned": the thread's CPU in
// the bill's unit, shared over TSC-timed frames — see the banner).
enum class ClockSource : uint8_t { kAuto, kInstructions, kCycles, kCpu, kWall, kApportioned };

// Mode — which hook feeds the profile.
enum class Mode : uint8_t { kExact, kFast };

// FastHook — what feeds a fast-mode profile: the PEP 523 eval-frame
// function (eval_frame.h) or sys.monitoring callbacks (monitoring.h).
enum class FastHook : uint8_t { kEvalFrame, kMonitoring };

// ParseClockSource() / ParseMode() — "auto"|"instructions"|"cycles"|"cpu"|"wall"|
// "apportioned" and "exact"|"fast". RETURNS: false for any other text.
bool ParseClockSource(std::string_view text, ClockSource* out);
bool ParseMode(std::string_view text, Mode* out);
// ParseFastHook() / FastHookName() — "eval_frame"|"monitoring".
bool ParseFastHook(std::string_view text, FastHook* out);
std::string_view FastHookName(FastHook hook);
// DefaultFastHook() / SetDefaultFastHook() — the hook fast-mode Profilers
// made from now on use; by default the cheapest one that sees every frame on
// this CPython (eval-frame on 3.11 and 3.12, monitoring from 3.13).
// SetDefaultFastHook() is for benchmarks and tests.
FastHook DefaultFastHook();
void SetDefaultFastHook(FastHook hook);

// ClockKind — how one reading is taken, decided once at Enable().
enum class ClockKind : uint8_t {
  kPrimary,       // CounterSet::ReadPrimary(): instructions (PMU) or ns (task_clock)
  kCycles,        // CounterSet::Read().cycles (PMU only)
  kThreadCpu,     // clock_gettime(CLOCK_THREAD_CPUTIME_ID), ns
  kTsc,           // rdtsc, ticks (x86-64)
  kMonotonicRaw,  // clock_gettime(CLOCK_MONOTONIC_RAW), ns where there is no TSC
                  // (still labelled "tsc": the record's unit for wall time)
  kFrozen,        // the reading while the clock is stopped (PauseClock, Pause): stands still
};

// FunctionEntry — one function seen, named as cProfile names it.
struct FunctionEntry {
  PyObject* code = nullptr;  // strong ref to the PyCodeObject; nullptr for a C builtin
  std::string builtin;       // "<built-in method builtins.len>" style, for C builtins
};

// NodeStats — one call path. Costs are in the profile's unit, calibrated.
struct NodeStats {
  uint32_t function = 0;  // index into functions(); meaningless for the root
  uint32_t parent = 0;    // node index of the caller path; the root's is 0
  bool primitive = true;  // the function is not already on the path
  uint64_t calls = 0;     // times this path was entered
  // self_sum — cost in this frame excluding callees, summed over calls with
  // the calibrated overhead taken out of each, signed: a call cheaper than
  // the calibrated figure adds a negative amount instead of being clamped at
  // zero, so noise averages out over many calls instead of biasing upward
  // (per-call clamping made a builtin draining thousands of trivial resumes
  // show less total than its callees). Read it through self_cost().
  int64_t self_sum = 0;
  // self_cost() — the node's self cost, never below zero. A node's total is
  // its self_cost() plus its callees' totals (Profiler::Costs()).
  uint64_t self_cost() const { return self_sum > 0 ? static_cast<uint64_t>(self_sum) : 0; }
};

// Calibration — the measured cost of one hook call (enter + leave).
struct Calibration {
  uint64_t per_call = 0;   // cost one profiled call adds to the run, in ticks
  uint64_t in_callee = 0;  // of that, what lands between the callee's two clock reads
};

// EventKind — which calibration figure a call is charged. Fast mode tells
// them apart: a Python-to-Python call under a PEP 523 hook also loses the
// interpreter's inlined call (the hook's cost plus that), while a generator
// resume from C was never inlined (the hook's cost only); under
// sys.monitoring both keep their inlining and cost the callbacks. Exact mode
// charges every event kCall.
// A call entered while the clock is paused is charged nothing (its hook
// cost is not on the clock either): the figure at kind + kEventKinds, zero.
enum EventKind : uint32_t { kCall = 0, kResume = 1, kEventKinds = 2 };

// ProfileView — what the current profile holds (Profiler::Reset() starts a
// new one while keeping every call path seen, warm): the root, the nodes
// called since, and their callers (frames still open), in node order
// (parents first); the functions they name, in order of first use.
struct ProfileView {
  std::vector<uint32_t> nodes;              // node ids; nodes[0] is 0, the root
  std::vector<uint32_t> position;           // per node id: its index in `nodes`, or UINT32_MAX
  std::vector<uint32_t> functions;          // function ids
  std::vector<uint32_t> function_position;  // per function id: its index in `functions`
};

// NodeCosts — per node (parallel to Profiler::nodes()), in the profile's unit.
struct NodeCosts {
  std::vector<uint64_t> self;   // cost in the node's frames, excluding callees
  std::vector<uint64_t> total;  // self plus the callees' totals; the root's: the whole profile
};

class Profiler {
 public:
  // kNoNode — a context whose call is not recorded (node limit reached).
  static constexpr uint32_t kNoNode = UINT32_MAX;
  // kOwnFigure — Costs()/ToProto(): an apportioned profile shares out its
  // own CPU figure: the thread's counter from Enable() to Disable(), less
  // the CPU of the paused stretches (own_cost()).
  static constexpr uint64_t kOwnFigure = UINT64_MAX;

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
  // NOTE: Enable() of a paused profile is Resume().
  // Profiler::Disable() — stops; frames still running are closed now and
  // counted (as _lsprof's flush_unmatched; when paused, as of the pause).
  // RETURNS: false when called from another thread than Enable()'s (nothing
  // done).
  bool Disable();
  // Profiler::Pause() — detaches the hook from the thread and stops the
  // clock, keeping the profile open: call tree, open calls, pauses of the
  // clock (PauseClock), and the apportioned window (own_cost() stops
  // growing). Another profiler may then be enabled or resumed on the thread.
  // RETURNS: false when not enabled, already paused, or called from another
  // thread (nothing done). NOTE: a call still open at Pause() stays open; if
  // it returns while paused, exact mode never sees the return and closes the
  // wrong context at the next one. Pause and resume at one frame depth (as
  // between coroutine steps) and this cannot happen. Fast mode keeps the
  // hook installed while paused (the thread passes through).
  // COST: a clock read, a figure read (apportioned: a system call without a
  // PMU) and a PyEval_SetProfile (exact) or two TLS stores (fast). A step,
  // Resume() + Pause(), took 2.4-4.7 us on the dev VM (no PMU) in any mode.
  bool Pause();
  // Profiler::Resume() — re-attaches a paused profile to the calling thread;
  // the clock goes on from where Pause() stopped it. RETURNS: true when
  // attached now or already; false + *why when not enabled, on another
  // thread than Enable()'s, or another cpuledger profiler is attached here
  // (not sticky). COST: as Pause().
  bool Resume(std::string* why);
  // paused() — enabled and detached by Pause().
  bool paused() const { return enabled_ && detached_; }
  // Profiler::NoteFailure() — records a failure outside the hooks that makes
  // the profile incomplete (sticky: error() keeps the first).
  void NoteFailure(std::string message) { Fail(std::move(message)); }
  // Profiler::Clear() — forgets every node and function (REQUIRES: disabled).
  void Clear();
  // Profiler::Reset() — starts a new profile: every count back to zero, the
  // call paths and functions kept, so the next profile of similar code finds
  // them warm (no new node, no allocation: a fresh Profiler per request
  // spent ~0.3 ms of a 3.5 ms Django page adding its ~1,400 paths). Past
  // kKeepNodes paths it Clear()s instead, so memory stays bounded. The
  // sticky error() is forgotten. REQUIRES: disabled. COST: O(nodes called
  // in the previous profile).
  static constexpr size_t kKeepNodes = 1 << 16;
  void Reset();

  bool enabled() const { return enabled_; }
  Mode mode() const { return mode_; }
  // fast_hook() — what feeds the profile in fast mode (meaningless in exact).
  FastHook fast_hook() const { return fast_hook_; }
  // mode_fallback() — why fast mode fell back to exact ("" when it did not).
  const std::string& mode_fallback() const { return mode_fallback_; }
  std::string_view unit() const;  // "instructions", "cycles", "cpu_ns", "tsc" (record.proto's)
  // source() — "hardware", "task_clock", "thread_cputime", "tsc", ..., or for
  // an apportioned profile "apportioned/" + the counter source of its CPU figure.
  std::string_view source() const;
  bool builtins_folded() const { return mode_ == Mode::kFast; }
  bool apportioned() const { return requested_ == ClockSource::kApportioned; }
  // overhead_per_event() — the calibrated cost of one call, in unit() (an
  // apportioned profile's ticks converted at the rate Costs(cost) shares at).
  uint64_t overhead_per_event(uint64_t cost = kOwnFigure) const;
  const Calibration& calibration(EventKind kind = kCall) const { return calibration_[kind]; }
  // open_error() — why the clock could not be opened at construction ("" when it could).
  const std::string& open_error() const { return open_error_; }
  // error() — the sticky failure of a hook (the first one), "" when none.
  const std::string& error() const { return error_; }
  // nodes() / functions() — every node and function seen since Clear(); a
  // node not in the current profile has zero calls (View() selects).
  const std::vector<NodeStats>& nodes() const { return nodes_; }
  const std::vector<FunctionEntry>& functions() const { return functions_; }
  // Profiler::View() — the current profile's nodes and functions. COST: O(nodes()).
  ProfileView View() const;

  // Profiler::Costs() — every node's self and total cost, as every export
  // states them. A measured profile: the calibrated ticks (self_cost(), and
  // totals summed up the tree: consistent by construction, and equal to the
  // measured totals wherever no self was clamped). An apportioned one:
  // `cost` (in unit()) shared out in proportion to the nodes' calibrated
  // ticks, rounded so the selfs sum to `cost` exactly and each is within 1
  // of its exact share; nothing is shared when no tick was counted (all 0).
  // `cost` is ignored for measured profiles. COST: two passes over the nodes.
  NodeCosts Costs(uint64_t cost = kOwnFigure) const;
  // own_cost() — an apportioned profile's own figure: the thread's CPU over
  // the attached stretches so far, closed at each Pause() and at Disable().
  uint64_t own_cost() const {
    return window_cost_ > excluded_cost_ ? window_cost_ - excluded_cost_ : 0;
  }
  // excluded_cost() — CPU of the paused stretches, in unit() (ResumeClock's).
  uint64_t excluded_cost() const { return excluded_cost_; }
  // Profiler::Encode() — the profile as the record.Profile a RequestRecord
  // carries (CallTree::FromProto reads it), costed as Costs(cost) says (a
  // request's apportioned profile: its bill less excluded_cost()), already
  // serialized: the bytes SerializeAsString() would give. Names longer than
  // kMaxProfileStringBytes are cut at a character boundary. Valid as
  // record::ValidateProfile() requires while nodes() and functions() are
  // within kMaxProfileNodes / kMaxProfileFunctions.
  // With `shared_ids`, the profile names its functions by their
  // client::ProcessFunctions ids (functions_in_batch: the recorder's batch
  // lists them), and *shared_ids gets the ids it names, in the order of the
  // profile's functions (the recorder sorts a batch's, off the request
  // thread); left empty when the table is full, and the profile lists its
  // functions itself.
  // REQUIRES: the GIL (reads code objects). COST: O(nodes) appends into one
  // buffer; each function's entry is encoded once per process (a cache of up
  // to 65,536 code objects, kept alive by it).
  std::string Encode(uint64_t cost = kOwnFigure, std::vector<uint32_t>* shared_ids = nullptr) const;
  // Profiler::ToProto() — Encode() parsed. COST: an allocation per node.
  void ToProto(record::Profile* out, uint64_t cost = kOwnFigure) const;

  // Profiler::PauseClock() / ResumeClock() — a stretch the profile leaves out
  // (a db or cache span) begins / ends on the profiled thread. Apportioned
  // profiles only (no-ops otherwise, and when not enabled): the ticks stand
  // still in between, so the calls made inside cost nothing and the stretch
  // is not in their callers' totals; `excluded` is the CPU the caller
  // measured over the stretch (its unit() count, instructions or cpu_ns, is
  // taken off own_cost()). Pairs nest: only the outermost one counts. A
  // stretch open across Pause() (a db call awaited between two steps): the
  // thread's CPU while paused is not the stretch's, and what the figure
  // counted over those pauses comes off `excluded` (it is in the caller's
  // start-to-end reading, not in own_cost()).
  // COST: one clock read each (no system call).
  void PauseClock();
  void ResumeClock(const counters::Reading& excluded);

  // --- the core, used by the hooks (exact: profiler.cc; fast: eval_frame.cc and
  // monitoring.cc) ---

  // Profiler::Enter() — a call of the function identified by `key` begins;
  // `object` is its code object (python) or PyCFunction (builtin), used only
  // the first time the path is seen. Reads the clock last.
  // COST (warm path, TSC): one hash probe, one 32-byte push, one rdtsc.
  inline void Enter(const void* key, PyObject* object, bool builtin, EventKind kind = kCall);
  // Profiler::Leave() — the innermost call returns. Reads the clock first.
  inline void Leave();
  // depth() — calls open now (the root's sentinel context not counted).
  size_t depth() const { return depth_ - 1; }
  uint64_t epoch() const { return epoch_; }

  // Profiler::Active() — the profiler enabled on the calling thread, or null.
  static Profiler* Active();

 private:
  struct Context {
    uint64_t t0 = 0;      // clock at entry, after the hook's own work
    int64_t subt = 0;     // calibrated totals of the finished direct callees
    uint64_t ovh = 0;     // calibrated overhead of every call below, to take out of total
    uint32_t node = 0;    // the node of this call, kNoNode when not recorded
    uint32_t charge = 0;  // which calibration_ figure this call is charged (EventKind + base)
  };
  struct Slot {  // child index: (parent, key) -> node; node == kNoNode: empty
    const void* key = nullptr;
    uint32_t parent = 0;
    uint32_t node = kNoNode;
  };

  inline uint64_t ReadClock();
  uint64_t ReadClockSlow();  // every kind but kTsc
  uint64_t ReadFigure();     // an apportioned profile's CPU counter, in unit()
  void GrowStack();
  uint32_t AddNode(uint32_t parent, const void* key, PyObject* object, bool builtin);
  uint32_t InternFunction(const void* key, PyObject* object, bool builtin);
  void GrowIndex();
  void Fail(std::string message);
  bool OpenClock(std::string* why);
  void Attach();      // the hook on (t_active, t_fast, PyEval_SetProfile)
  void Detach();      // and off
  void StopClock();   // ReadClock() stands at its current reading...
  void StartClock();  // ...and goes on from it (the stop's ticks into paused_ticks_)
  void Calibrate(Calibration out[kEventKinds]);
  Calibration CalibrateOne(PyObject* driver, PyObject* callee_code);

  ClockSource requested_;
  Mode mode_;
  FastHook fast_hook_ = FastHook::kEvalFrame;
  bool calibrate_;
  uint32_t max_nodes_;
  ClockKind clock_ = ClockKind::kThreadCpu;
  counters::CounterSet* set_ = nullptr;  // the enabling thread's set (kPrimary / kCycles)
  std::string source_name_, unit_name_, mode_fallback_, open_error_, error_;
  // calibration_[kind] charged to calls; [kind + kEventKinds] stay zero:
  // calls entered while the clock is paused.
  Calibration calibration_[2 * kEventKinds];

  // Apportioned profiles: the figure and the pauses.
  uint64_t window_start_ = 0;         // ReadFigure() at Enable() / Resume()
  uint64_t window_cost_ = 0;          // ReadFigure() deltas of the attached stretches, summed
  uint64_t excluded_cost_ = 0;        // ResumeClock()'s, summed
  uint64_t paused_ticks_ = 0;         // ticks the clock stood still, taken off every reading
  uint64_t frozen_at_ = 0;            // the reading while stopped (a PauseClock stretch or Pause())
  uint32_t pause_depth_ = 0;          // PauseClock() calls not yet resumed
  uint64_t paused_figure_ = 0;        // ReadFigure() at the last Pause()
  uint64_t detached_in_stretch_ = 0;  // figure counted while paused inside the open stretch
  uint32_t charge_base_ = 0;          // 0, or kEventKinds while paused (Context::charge)
  ClockKind running_clock_ = ClockKind::kTsc;  // clock_ to go back to on resume

  bool enabled_ = false;
  bool detached_ = false;      // enabled, and the hook off (Pause())
  PyObject* owner_ = nullptr;  // strong ref to the Python object while enabled
  unsigned long thread_ = 0;   // PyThread_get_thread_ident() of the enabling thread
  uint64_t epoch_ = 0;         // changes at every Enable() (fast mode matches frames by it)

  // stack_[0] is the root's sentinel context (node 0), always there, so a
  // call always has a parent context: no branch for it on the hot path.
  // Contexts [1, depth_) are the open calls; the rest is spare capacity.
  std::vector<Context> stack_;
  size_t depth_ = 1;
  std::vector<NodeStats> nodes_;   // nodes_[0] is the root
  std::vector<uint32_t> touched_;  // nodes given their first call since Reset()
  // (parent node, key) -> child node: open addressing with linear probing,
  // power-of-two size, slot = the top (64 - index_shift_) bits of a multiplicative
  // hash (the top bits depend on every bit of the key and of the parent).
  std::vector<Slot> index_;
  unsigned index_shift_ = 64;  // 64 - log2(index_.size())
  size_t index_used_ = 0;
  std::vector<FunctionEntry> functions_;
  std::unordered_map<const void*, uint32_t> function_index_;
};

// --- inline hot path -------------------------------------------------------
//
// Fast mode runs this on every Python frame, so it is written for the warm
// case (path seen before, TSC clock): no call out of line, no Python API, no
// allocation, no map; the cold cases (new path, deeper stack than ever, a
// clock other than the TSC) are out-of-line calls.

namespace internal {
// The profiler enabled on this thread (either mode), and the same when it is
// a fast-mode one (the fast hooks' one check). initial-exec TLS: one
// %fs-relative load, no call.
extern __thread Profiler* t_active __attribute__((tls_model("initial-exec")));
extern __thread Profiler* t_fast __attribute__((tls_model("initial-exec")));
uint64_t ReadCounterPrimary(counters::CounterSet* set);
uint64_t ReadCounterCycles(counters::CounterSet* set);
inline uint64_t ClockNs(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
// HashSlot() — the index slot of (key, parent) in a table of 2^(64 - shift)
// slots: the parent is spread by one multiply, mixed into the key, and the
// product's top bits taken (they depend on all the input bits; the low bits
// of a product depend only on the low bits of its factors).
inline size_t HashSlot(const void* key, uint32_t parent, unsigned shift) {
  uint64_t h =
      reinterpret_cast<uintptr_t>(key) ^ (static_cast<uint64_t>(parent) * 0x9E3779B97F4A7C15ull);
  h *= 0xBF58476D1CE4E5B9ull;
  return static_cast<size_t>(h >> shift);
}
}  // namespace internal

__attribute__((always_inline)) inline uint64_t Profiler::ReadClock() {
#if defined(__x86_64__) || defined(__i386__)
  // paused_ticks_ is 0 unless the clock was stopped (PauseClock, Pause).
  if (clock_ == ClockKind::kTsc) return __builtin_ia32_rdtsc() - paused_ticks_;
#endif
  return ReadClockSlow();
}

__attribute__((always_inline)) inline void Profiler::Enter(const void* key, PyObject* object,
                                                           bool builtin, EventKind kind) {
  const uint32_t parent = stack_[depth_ - 1].node;
  uint32_t node = kNoNode;
  if (parent != kNoNode) [[likely]] {
    const Slot* slots = index_.data();
    const size_t mask = index_.size() - 1;
    for (size_t i = internal::HashSlot(key, parent, index_shift_);; i = (i + 1) & mask) {
      const Slot& s = slots[i];
      if (s.key == key && s.parent == parent) [[likely]] {
        node = s.node;
        break;
      }
      if (s.node == kNoNode) {
        node = AddNode(parent, key, object, builtin);  // slow path: a new path
        break;
      }
    }
  }
  if (depth_ == stack_.size()) [[unlikely]]
    GrowStack();  // allocates only when deeper than ever
  Context& c = stack_[depth_++];
  c.subt = 0;
  c.ovh = 0;
  c.node = node;
  c.charge = kind + charge_base_;
  c.t0 = ReadClock();
}

__attribute__((always_inline)) inline void Profiler::Leave() {
  const uint64_t now = ReadClock();
  if (depth_ <= 1) [[unlikely]]
    return;  // a frame that began before Enable()
  const Context& c = stack_[--depth_];
  Context& p = stack_[depth_ - 1];  // the caller's (the root's sentinel at the top)
  const Calibration& cal = calibration_[c.charge];
  // Calibrated: the hook's cost inside this call (its callees' and its own
  // share) comes off its total; self = total - callees. Signed, unclamped
  // (NodeStats::self_sum says why).
  const int64_t tt = static_cast<int64_t>(now - c.t0 - c.ovh - cal.in_callee);
  p.ovh += c.ovh + cal.per_call;
  if (c.node == kNoNode) [[unlikely]]
    return;  // not recorded: its cost stays in the caller's self
  NodeStats& n = nodes_[c.node];
  if (n.calls++ == 0) [[unlikely]]
    touched_.push_back(c.node);  // once per node and profile; Reset() zeroes these
  n.self_sum += tt - c.subt;
  p.subt += tt;
}

}  // namespace cpuledger::python
