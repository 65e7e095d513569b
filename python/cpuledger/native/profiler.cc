// python/cpuledger/native/profiler.cc — the profiler core and its exact mode
// (PyEval_SetProfile), built like CPython's Modules/_lsprof.c.
#include "native/profiler.h"

#include <algorithm>
#include <exception>
#include <new>
#include <utility>

#include "client/process_functions.h"
#include "counters/counters.h"
#include "counters/thread_counters.h"
#include "native/code_hash.h"
#include "native/eval_frame.h"
#include "native/monitoring.h"
#include "record/codec.h"
#include "record/record.pb.h"

namespace cpuledger::python {

namespace {

// Every Enable() gets a new epoch, process-wide, so a frame that began under
// one enablement is never closed against another (fast mode).
uint64_t g_epoch = 0;

// Calibrations measured so far: (mode, clock) -> figure. Guarded by the GIL.
struct CalibrationFigures {
  Calibration kinds[kEventKinds];
};
std::unordered_map<int, CalibrationFigures>& CalibrationCache() {
  static auto* cache = new std::unordered_map<int, CalibrationFigures>();
  return *cache;
}

// SavedError — the exception in flight, put back on scope exit.
class SavedError {
 public:
  SavedError() { PyErr_Fetch(&type_, &value_, &traceback_); }
  ~SavedError() { PyErr_Restore(type_, value_, traceback_); }
  SavedError(const SavedError&) = delete;
  SavedError& operator=(const SavedError&) = delete;

 private:
  PyObject *type_ = nullptr, *value_ = nullptr, *traceback_ = nullptr;
};

std::string Utf8(PyObject* s) {
  if (s == nullptr || !PyUnicode_Check(s)) return {};
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s, &n);
  if (p == nullptr) {
    PyErr_Clear();
    return {};
  }
  return std::string(p, static_cast<size_t>(n));
}

// BuiltinName() — what cProfile calls a PyCFunction (_lsprof.c's
// normalizeUserObj): "<len>"-style for module functions of builtins,
// "<module.name>" for other modules' functions, repr(type(self).name) for
// methods ("<method 'append' of 'list' objects>"), else "<built-in method
// module.name>" (module functions have m_self = the module, so most land here).
// REQUIRES: the GIL; may run Python code; leaves no exception set.
std::string BuiltinName(PyObject* obj) {
  auto* fn = reinterpret_cast<PyCFunctionObject*>(obj);
  const char* ml_name = fn->m_ml->ml_name;
  std::string result;
  if (fn->m_self == nullptr) {
    PyObject* mod = fn->m_module;
    std::string modname;
    if (mod != nullptr && PyUnicode_Check(mod)) {
      modname = Utf8(mod);
    } else if (mod != nullptr && PyModule_Check(mod)) {
      PyObject* n = PyModule_GetNameObject(mod);
      if (n == nullptr) PyErr_Clear();
      modname = Utf8(n);
      Py_XDECREF(n);
    }
    if (!modname.empty() && modname != "builtins") return "<" + modname + "." + ml_name + ">";
    return std::string("<") + ml_name + ">";
  }
  PyObject* name = PyUnicode_FromString(ml_name);
  if (name != nullptr) {
    PyObject* mo = _PyType_Lookup(Py_TYPE(fn->m_self), name);  // borrowed
    Py_XINCREF(mo);
    Py_DECREF(name);
    if (mo != nullptr) {
      PyObject* repr = PyObject_Repr(mo);
      Py_DECREF(mo);
      if (repr != nullptr) {
        result = Utf8(repr);
        Py_DECREF(repr);
        return result;
      }
    }
  }
  PyErr_Clear();
  if (fn->m_module != nullptr && PyUnicode_Check(fn->m_module))
    return "<built-in method " + Utf8(fn->m_module) + "." + ml_name + ">";
  return std::string("<built-in method ") + ml_name + ">";
}

// Truncated() — at most kMaxProfileStringBytes of UTF-8 `s`, cut before a
// continuation byte.
std::string Truncated(std::string s) {
  if (s.size() <= record::kMaxProfileStringBytes) return s;
  size_t n = record::kMaxProfileStringBytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s;
}

// The exact-mode profile function: thin shims over Enter/Leave, as _lsprof's
// profiler_callback. C builtins are keyed by their PyMethodDef (one entry per
// builtin whatever object it is bound to), Python functions by code object.
int ProfileCallback(PyObject*, PyFrameObject* frame, int what, PyObject* arg) {
  Profiler* p = internal::t_active;
  if (p == nullptr) return 0;
  switch (what) {
    case PyTrace_CALL: {
      PyCodeObject* code = PyFrame_GetCode(frame);
      p->Enter(code, reinterpret_cast<PyObject*>(code), /*builtin=*/false);
      Py_DECREF(code);  // the frame keeps it alive; the entry holds its own ref
      break;
    }
    case PyTrace_RETURN:  // normally or with an exception set
      p->Leave();
      break;
    case PyTrace_C_CALL:
      if (PyCFunction_Check(arg))
        p->Enter(reinterpret_cast<PyCFunctionObject*>(arg)->m_ml, arg, /*builtin=*/true);
      break;
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION:
      if (PyCFunction_Check(arg)) p->Leave();
      break;
    default:
      break;
  }
  return 0;
}

// The calibration programs. _cal_loop calls from bytecode (3.11+ inline
// such calls unless an eval-frame hook is installed); _cal_c_loop calls from
// C (map, drained by deque: no bytecode runs between two profiled calls);
// _cal_resumes resumes a generator from C (islice, drained by deque), one
// whose body between two resumes is as small as a generator's can be.
constexpr char kCalibrationSource[] =
    "from collections import deque as _d\n"
    "from itertools import islice as _islice\n"
    "def _cal_f(_=None):\n"
    "    pass\n"
    "def _cal_loop(n, f=_cal_f):\n"
    "    for _ in range(n):\n"
    "        f()\n"
    "def _cal_c_loop(n, f=_cal_f):\n"
    "    _d(map(f, range(n)), 0)\n"
    "def _cal_gen():\n"
    "    while True:\n"
    "        yield\n"
    "def _cal_resumes(n):\n"
    "    _d(_islice(_cal_gen(), n), 0)\n";

// Wire format, for Profiler::Encode(): varints, and fields left out at
// their proto3 default, as the generated serializer writes them.
char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

void PutVarint(std::string& out, uint64_t v) {
  char buf[10];
  out.append(buf, static_cast<size_t>(PutVarint(buf, v) - buf));
}

char* PutVarintField(char* p, uint32_t field, uint64_t v) {
  if (v == 0) return p;
  p = PutVarint(p, field << 3);
  return PutVarint(p, v);
}

void PutField(std::string& out, uint32_t field, uint64_t v) {
  char buf[20];
  out.append(buf, static_cast<size_t>(PutVarintField(buf, field, v) - buf));
}

// PutField() — a length-delimited field; `always`: written even when empty
// (an element of a repeated message field).
void PutField(std::string& out, uint32_t field, std::string_view bytes, bool always = false) {
  if (bytes.empty() && !always) return;
  PutVarint(out, field << 3 | 2);
  PutVarint(out, bytes.size());
  out.append(bytes);
}

// EncodeFunction() — one Profile.functions entry (tag included), named as
// cProfile names it, with a Python function's CodeHash() (code_hash.h; 0,
// left out, for a builtin or when it cannot be computed).
// EncodeFunctionBody(): the record.ProfileFunction's bytes; EncodeFunction():
// as a Profile.functions field. COST: CodeHash()'s, so both are cached.
std::string EncodeFunctionBody(const FunctionEntry& f) {
  std::string body;
  if (f.code == nullptr) {
    PutField(body, record::ProfileFunction::kFileFieldNumber, "~");
    PutField(body, record::ProfileFunction::kNameFieldNumber, Truncated(f.builtin));
  } else {
    auto* code = reinterpret_cast<PyCodeObject*>(f.code);
    const std::string file = Utf8(code->co_filename), name = Utf8(code->co_name);
    PutField(body, record::ProfileFunction::kFileFieldNumber, Truncated(file.empty() ? "?" : file));
    PutField(body, record::ProfileFunction::kLineFieldNumber,
             static_cast<uint64_t>(std::max(code->co_firstlineno, 0)));
    PutField(body, record::ProfileFunction::kNameFieldNumber, Truncated(name.empty() ? "?" : name));
    const SavedError saved;  // an exception in flight stays as it was
    PutField(body, record::ProfileFunction::kCodeHashFieldNumber, CodeHash(code));
  }
  return body;
}

std::string EncodeFunction(const FunctionEntry& f) {
  std::string out;
  PutField(out, record::Profile::kFunctionsFieldNumber, EncodeFunctionBody(f), /*always=*/true);
  return out;
}

// EncodedFunction — a function's Profile.functions field, and its
// client::ProcessFunctions id once it has one.
struct EncodedFunction {
  std::string field;
  std::optional<uint32_t> id;
};

// FunctionCache() — the process's encoded functions: a Django page names
// ~500 functions per profile, the same ones request after request. Entries
// of code objects hold a strong reference to it (so the address stays its);
// builtins are keyed by name. Past kMaxCachedFunctions functions are encoded
// afresh each time (nullptr). Guarded by the GIL.
constexpr size_t kMaxCachedFunctions = 1 << 16;

EncodedFunction* CachedFunction(const FunctionEntry& f) {
  static auto* by_code = new std::unordered_map<const PyObject*, EncodedFunction>();
  static auto* by_builtin = new std::unordered_map<std::string, EncodedFunction>();
  const bool full = by_code->size() + by_builtin->size() >= kMaxCachedFunctions;
  const auto lookup = [&](auto& map, const auto& key) -> EncodedFunction* {
    if (full) {
      auto it = map.find(key);
      return it == map.end() ? nullptr : &it->second;
    }
    auto [it, added] = map.try_emplace(key);
    if (added) {
      Py_XINCREF(f.code);
      it->second.field = EncodeFunction(f);
    }
    return &it->second;
  };
  return f.code == nullptr ? lookup(*by_builtin, f.builtin)
                           : lookup(*by_code, static_cast<const PyObject*>(f.code));
}

// AppendFunction() — EncodeFunction(f) onto `out`, from the cache.
void AppendFunction(std::string& out, const FunctionEntry& f) {
  const EncodedFunction* cached = CachedFunction(f);
  out.append(cached != nullptr ? cached->field : EncodeFunction(f));
}

// FieldBody() — the ProfileFunction within an EncodeFunction() field: past
// its tag (one byte: Profile.functions is field 4) and its length varint.
std::string_view FieldBody(std::string_view field) {
  static_assert(record::Profile::kFunctionsFieldNumber < 16);
  size_t i = 1;
  while (static_cast<unsigned char>(field[i++]) & 0x80) {
  }
  return field.substr(i);
}

// SharedId() — f's ProcessFunctions id, added on first use (the body taken
// from the cached field: not encoded, nor its code hashed, twice). RETURNS:
// none past the cache's or the table's bound.
std::optional<uint32_t> SharedId(const FunctionEntry& f) {
  EncodedFunction* cached = CachedFunction(f);
  if (cached == nullptr) return std::nullopt;
  if (!cached->id)
    cached->id = client::ProcessFunctions::Get().Add(std::string(FieldBody(cached->field)));
  return cached->id;
}

}  // namespace

namespace internal {
__thread Profiler* t_active __attribute__((tls_model("initial-exec"))) = nullptr;
__thread Profiler* t_fast __attribute__((tls_model("initial-exec"))) = nullptr;
uint64_t ReadCounterPrimary(counters::CounterSet* set) { return set->ReadPrimary(); }
uint64_t ReadCounterCycles(counters::CounterSet* set) { return set->Read().cycles; }
}  // namespace internal

bool ParseClockSource(std::string_view text, ClockSource* out) {
  static constexpr std::pair<std::string_view, ClockSource> kNames[] = {
      {"auto", ClockSource::kAuto},     {"instructions", ClockSource::kInstructions},
      {"cycles", ClockSource::kCycles}, {"cpu", ClockSource::kCpu},
      {"wall", ClockSource::kWall},     {"apportioned", ClockSource::kApportioned},
  };
  for (const auto& [name, value] : kNames) {
    if (name == text) {
      *out = value;
      return true;
    }
  }
  return false;
}

bool ParseMode(std::string_view text, Mode* out) {
  if (text == "exact")
    *out = Mode::kExact;
  else if (text == "fast")
    *out = Mode::kFast;
  else
    return false;
  return true;
}

bool ParseFastHook(std::string_view text, FastHook* out) {
  if (text == "eval_frame")
    *out = FastHook::kEvalFrame;
  else if (text == "monitoring")
    *out = FastHook::kMonitoring;
  else
    return false;
  return true;
}

std::string_view FastHookName(FastHook hook) {
  return hook == FastHook::kMonitoring ? "monitoring" : "eval_frame";
}

namespace {
// Fast mode's hook per version, the cheaper one that sees every frame
// (README, "Profiling", has the figures): the eval-frame hook on 3.11 and
// 3.12 (richards' floor 1.23x against sys.monitoring's 1.40x on 3.12, and a
// pointer swap to install where set_events re-instruments every code
// object); sys.monitoring from 3.13, whose specialized class instantiation
// (CALL_ALLOC_AND_ENTER_INIT) enters a Python __init__ without calling the
// eval-frame function, so that hook would lose those frames.
FastHook g_default_fast_hook =
    PY_VERSION_HEX < 0x030D0000 ? FastHook::kEvalFrame : FastHook::kMonitoring;

bool FastHookSupported(FastHook hook, std::string* why) {
  return hook == FastHook::kMonitoring ? MonitoringSupported(why) : EvalFrameSupported(why);
}
bool InstallFastHook(FastHook hook, std::string* why) {
  return hook == FastHook::kMonitoring ? InstallMonitoring(why) : InstallEvalFrame(why);
}
void UninstallFastHook(FastHook hook) {
  if (hook == FastHook::kMonitoring)
    UninstallMonitoring();
  else
    UninstallEvalFrame();
}
}  // namespace

FastHook DefaultFastHook() { return g_default_fast_hook; }
void SetDefaultFastHook(FastHook hook) { g_default_fast_hook = hook; }

Profiler* Profiler::Active() { return internal::t_active; }

Profiler::Profiler(ClockSource source, Mode mode, bool calibrate, uint32_t max_nodes)
    : requested_(source), mode_(mode), calibrate_(calibrate), max_nodes_(std::max(max_nodes, 1u)) {
  if (mode_ == Mode::kFast) {
    fast_hook_ = DefaultFastHook();
    std::string why;
    if (!FastHookSupported(fast_hook_, &why)) {
      mode_fallback_ = "fast mode: " + why + "; using exact mode";
      mode_ = Mode::kExact;
    }
  }
  nodes_.push_back(NodeStats{});  // the root
  index_.resize(1024);
  index_shift_ = 64 - 10;
  stack_.resize(128);       // [0] is the root's sentinel context
  OpenClock(&open_error_);  // the binding refuses a profiler whose clock cannot be had
}

Profiler::~Profiler() {
  if (enabled_) Disable();
  Clear();
}

std::string_view Profiler::unit() const { return unit_name_; }
std::string_view Profiler::source() const { return source_name_; }

void Profiler::Fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);
}

bool Profiler::OpenClock(std::string* why) {
  set_ = nullptr;
  Result<counters::CounterSet*> set = counters::ThisThreadCounters();
  bool hardware = set.ok() && (*set)->source() == counters::Source::kHardware;
  // auto without a PMU is apportioned: a CPU-time read at every call is a
  // system call (0.25-0.6 us), dearer than many calls it would time, and
  // the calibrated correction for it varied +-20% between runs, enough to
  // take a function's whole self cost (CPython 3.13, the shop's
  // score_similarity: 0-1.9 s over eleven runs, apportioned 0.8-1.2 s).
  if (requested_ == ClockSource::kAuto && !hardware) requested_ = ClockSource::kApportioned;
  if (requested_ == ClockSource::kWall || requested_ == ClockSource::kApportioned) {
#if defined(__x86_64__) || defined(__i386__)
    clock_ = ClockKind::kTsc;
    source_name_ = "tsc";
#else
    clock_ = ClockKind::kMonotonicRaw;
    source_name_ = "monotonic_raw";
#endif
    unit_name_ = "tsc";
  }
  if (requested_ == ClockSource::kWall) return true;
  if (requested_ == ClockSource::kApportioned) {
    // The figure is the thread's primary count: what its requests are billed in.
    if (set.ok()) set_ = *set;
    unit_name_ = hardware ? "instructions" : "cpu_ns";
    source_name_ =
        "apportioned/" + (set_ != nullptr ? std::string(counters::SourceName(set_->source()))
                                          : std::string("thread_cputime"));
    return true;
  }
  switch (requested_) {
    case ClockSource::kInstructions:
    case ClockSource::kCycles:
      if (!hardware) {
        *why = (std::string("source '") +
                (requested_ == ClockSource::kCycles ? "cycles" : "instructions") +
                "' needs a hardware PMU; this thread's counters are " +
                (set.ok() ? std::string(counters::SourceName((*set)->source()))
                          : set.status().ToString()));
        return false;
      }
      if (requested_ == ClockSource::kCycles && !(*set)->has_cycles()) {
        *why = "source 'cycles': the PMU group has no cycles counter";
        return false;
      }
      break;
    case ClockSource::kAuto:
    case ClockSource::kCpu:
    case ClockSource::kWall:
    case ClockSource::kApportioned:
      break;
  }
  if (requested_ == ClockSource::kCycles) {
    clock_ = ClockKind::kCycles;
    set_ = *set;
    unit_name_ = "cycles";
  } else if (hardware && requested_ != ClockSource::kCpu) {
    clock_ = ClockKind::kPrimary;
    set_ = *set;
    unit_name_ = "instructions";
  } else if (set.ok() && !hardware) {
    clock_ = ClockKind::kPrimary;  // task_clock or thread_cputime: ns
    set_ = *set;
    unit_name_ = "cpu_ns";
  } else {
    clock_ = ClockKind::kThreadCpu;
    unit_name_ = "cpu_ns";
  }
  source_name_ = set_ != nullptr ? std::string(counters::SourceName(set_->source()))
                                 : std::string("thread_cputime");
  return true;
}

bool Profiler::Enable(PyObject* self, std::string* why) {
  if (enabled_) {
    if (PyThread_get_thread_ident() != thread_) {
      *why = "already enabled on another thread";
      return false;
    }
    return Resume(why);
  }
  if (internal::t_active != nullptr) {
    *why = "another cpuledger Profiler is enabled on this thread";
    return false;
  }
  if (!OpenClock(why)) return false;  // this thread's counters
  if (calibrate_) {
    int key = static_cast<int>(fast_hook_) << 16 | static_cast<int>(mode_) << 8 |
              static_cast<int>(clock_);
    auto it = CalibrationCache().find(key);
    if (it == CalibrationCache().end()) {
      CalibrationFigures figures;
      Calibrate(figures.kinds);
      it = CalibrationCache().emplace(key, figures).first;
    }
    std::copy(std::begin(it->second.kinds), std::end(it->second.kinds), calibration_);
  }
  if (mode_ == Mode::kFast && !InstallFastHook(fast_hook_, why)) return false;
  thread_ = PyThread_get_thread_ident();
  epoch_ = ++g_epoch;
  depth_ = 1;
  stack_[0] = Context{};  // the root's sentinel: node 0
  owner_ = self;
  Py_XINCREF(owner_);
  enabled_ = true;
  detached_ = false;
  paused_ticks_ = 0;
  pause_depth_ = 0;
  charge_base_ = 0;
  window_cost_ = 0;
  excluded_cost_ = 0;
  if (apportioned()) window_start_ = ReadFigure();  // last: the set-up is not in the figure
  Attach();
  return true;
}

void Profiler::Attach() {
  internal::t_active = this;
  if (mode_ == Mode::kFast) internal::t_fast = this;
  if (mode_ == Mode::kExact) PyEval_SetProfile(ProfileCallback, owner_);
}

void Profiler::Detach() {
  if (mode_ == Mode::kExact) PyEval_SetProfile(nullptr, nullptr);
  internal::t_active = nullptr;
  internal::t_fast = nullptr;
}

void Profiler::StopClock() {
  frozen_at_ = ReadClock();
  running_clock_ = clock_;
  clock_ = ClockKind::kFrozen;
}

void Profiler::StartClock() {
  clock_ = running_clock_;
  paused_ticks_ += ReadClock() - frozen_at_;  // the reading goes on from frozen_at_
}

bool Profiler::Pause() {
  if (!enabled_ || detached_ || PyThread_get_thread_ident() != thread_) return false;
  if (apportioned()) {
    paused_figure_ = ReadFigure();
    window_cost_ += paused_figure_ - window_start_;
  }
  // Inside a PauseClock stretch the clock stands already, and its
  // ResumeClock() (in a later step) restarts it across the whole gap.
  if (pause_depth_ == 0) StopClock();
  Detach();  // last, as Resume() attaches last: the switch is in no figure
  detached_ = true;
  return true;
}

bool Profiler::Resume(std::string* why) {
  if (!enabled_) {
    *why = "not enabled";
    return false;
  }
  if (PyThread_get_thread_ident() != thread_) {
    *why = "enabled on another thread";
    return false;
  }
  if (!detached_) return true;
  if (internal::t_active != nullptr) {
    *why = "another cpuledger Profiler is enabled on this thread";
    return false;
  }
  detached_ = false;
  if (pause_depth_ == 0) StartClock();
  if (apportioned()) {
    window_start_ = ReadFigure();
    if (pause_depth_ > 0) detached_in_stretch_ += window_start_ - paused_figure_;
  }
  Attach();  // last: the set-up is not in the figure
  return true;
}

bool Profiler::Disable() {
  if (!enabled_) return true;
  if (PyThread_get_thread_ident() != thread_) return false;
  if (!detached_) {
    if (apportioned()) window_cost_ += ReadFigure() - window_start_;
    Detach();
  }
  if (mode_ == Mode::kFast) UninstallFastHook(fast_hook_);
  // Frames still running are closed (_lsprof's flush_unmatched): now, or as
  // of the moment the clock stopped (a pause, a PauseClock stretch).
  while (depth_ > 1) Leave();
  if (clock_ == ClockKind::kFrozen) StartClock();
  pause_depth_ = 0;
  charge_base_ = 0;
  detached_ = false;
  enabled_ = false;
  epoch_ = ++g_epoch;
  PyObject* owner = owner_;
  owner_ = nullptr;
  Py_XDECREF(owner);  // may destroy *this: last statement
  return true;
}

void Profiler::Clear() {
  for (FunctionEntry& f : functions_) Py_CLEAR(f.code);
  functions_.clear();
  function_index_.clear();
  nodes_.assign(1, NodeStats{});
  touched_.clear();
  std::fill(index_.begin(), index_.end(), Slot{});
  index_used_ = 0;
  depth_ = 1;
}

void Profiler::Reset() {
  error_.clear();
  if (nodes_.size() > kKeepNodes) {
    Clear();
    return;
  }
  for (uint32_t id : touched_) {
    nodes_[id].calls = 0;
    nodes_[id].self_sum = 0;
  }
  touched_.clear();
}

ProfileView Profiler::View() const {
  ProfileView v;
  // In the profile: called since Reset(), or the caller of a node that is
  // (a frame still open has not been counted yet). Children come after their
  // parents, so one backward pass marks the callers.
  std::vector<bool> in(nodes_.size(), false);
  in[0] = true;
  for (size_t i = nodes_.size(); i-- > 1;) {
    if (nodes_[i].calls > 0) in[i] = true;
    if (in[i]) in[nodes_[i].parent] = true;
  }
  v.position.assign(nodes_.size(), UINT32_MAX);
  v.function_position.assign(functions_.size(), UINT32_MAX);
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    if (!in[i]) continue;
    v.position[i] = static_cast<uint32_t>(v.nodes.size());
    v.nodes.push_back(i);
    if (i == 0) continue;  // the root names no function
    uint32_t& f = v.function_position[nodes_[i].function];
    if (f == UINT32_MAX) {
      f = static_cast<uint32_t>(v.functions.size());
      v.functions.push_back(nodes_[i].function);
    }
  }
  return v;
}

uint32_t Profiler::InternFunction(const void* key, PyObject* object, bool builtin) {
  auto it = function_index_.find(key);
  if (it != function_index_.end()) return it->second;
  FunctionEntry entry;
  if (builtin) {
    entry.builtin = BuiltinName(object);
  } else {
    entry.code = object;
    Py_INCREF(object);  // keeps the key's address from being reused by another code object
  }
  uint32_t id = static_cast<uint32_t>(functions_.size());
  functions_.push_back(std::move(entry));
  function_index_.emplace(key, id);
  return id;
}

uint64_t Profiler::ReadClockSlow() {
  // Every reading less paused_ticks_: the CPU clocks too, which count the
  // thread's work for others between Pause() and Resume().
  switch (clock_) {
    case ClockKind::kPrimary:
      return internal::ReadCounterPrimary(set_) - paused_ticks_;
    case ClockKind::kCycles:
      return internal::ReadCounterCycles(set_) - paused_ticks_;
    case ClockKind::kThreadCpu:
      return internal::ClockNs(CLOCK_THREAD_CPUTIME_ID) - paused_ticks_;
    case ClockKind::kTsc:
#if defined(__x86_64__) || defined(__i386__)
      return __builtin_ia32_rdtsc() - paused_ticks_;
#else
      return internal::ClockNs(CLOCK_MONOTONIC_RAW) - paused_ticks_;
#endif
    case ClockKind::kMonotonicRaw:
      return internal::ClockNs(CLOCK_MONOTONIC_RAW) - paused_ticks_;
    case ClockKind::kFrozen:
      return frozen_at_;
  }
  return 0;
}

uint64_t Profiler::ReadFigure() {
  return set_ != nullptr ? internal::ReadCounterPrimary(set_)
                         : internal::ClockNs(CLOCK_THREAD_CPUTIME_ID);
}

void Profiler::PauseClock() {
  if (!enabled_ || !apportioned() || pause_depth_++ > 0) return;
  detached_in_stretch_ = 0;
  if (!detached_) StopClock();  // else Pause() stopped it
  charge_base_ = kEventKinds;
}

void Profiler::ResumeClock(const counters::Reading& excluded) {
  if (!enabled_ || pause_depth_ == 0 || --pause_depth_ > 0) return;
  if (!detached_) StartClock();  // else Resume() starts it
  charge_base_ = 0;
  const bool instructions =
      unit_name_ == "instructions" && excluded.instructions != counters::kNotAvailable;
  const uint64_t measured = instructions ? excluded.instructions : excluded.cpu_ns;
  excluded_cost_ += measured > detached_in_stretch_ ? measured - detached_in_stretch_ : 0;
}

void Profiler::GrowStack() { stack_.resize(stack_.size() * 2); }

void Profiler::GrowIndex() {
  std::vector<Slot> old(index_.size() * 2);
  old.swap(index_);
  --index_shift_;
  size_t mask = index_.size() - 1;
  for (const Slot& s : old) {
    if (s.node == kNoNode) continue;
    size_t i = internal::HashSlot(s.key, s.parent, index_shift_);
    while (index_[i].node != kNoNode) i = (i + 1) & mask;
    index_[i] = s;
  }
}

// The slow path of Enter(): a call path seen for the first time.
uint32_t Profiler::AddNode(uint32_t parent, const void* key, PyObject* object, bool builtin) {
  if (nodes_.size() >= max_nodes_) {
    Fail("node limit reached (" + std::to_string(max_nodes_) +
         " call paths); further new paths are not recorded");
    return kNoNode;
  }
  SavedError saved;  // naming a builtin may run Python code; keep the exception in flight
  try {
    if ((index_used_ + 1) * 2 > index_.size()) GrowIndex();
    uint32_t function = InternFunction(key, object, builtin);
    NodeStats n;
    n.function = function;
    n.parent = parent;
    for (uint32_t a = parent; a != 0; a = nodes_[a].parent) {
      if (nodes_[a].function == function) {
        n.primitive = false;  // already on the path: a recursive call
        break;
      }
    }
    uint32_t id = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(n);
    size_t mask = index_.size() - 1;
    size_t i = internal::HashSlot(key, parent, index_shift_);
    while (index_[i].node != kNoNode) i = (i + 1) & mask;
    index_[i] = Slot{key, parent, id};
    ++index_used_;
    return id;
  } catch (const std::bad_alloc&) {
    Fail("out of memory while profiling");
  } catch (const std::exception& e) {
    Fail(std::string("profiler failure: ") + e.what());
  }
  return kNoNode;
}

// Calibration: `profile`'s bias, measured through the real hook path. A
// driver making n trivial profiled calls runs without and with a scratch
// profiler of the same mode and clock on this thread; the difference per
// call is what one profiled call adds (per_call), and the callee's measured
// self cost per call is the part of it that lands between the callee's two
// clock reads (in_callee; it includes the trivial body, a few instructions).
// Minimum over a few runs: noise only adds.
//
// Which driver stands for which event:
//  - exact mode, every event: calls from C (_cal_c_loop). Under a profile
//    function 3.11 runs all bytecode through its tracing dispatch, slower
//    per instruction; a driver looping in bytecode would count that
//    slowdown of its own loop as per-call cost and over-subtract wherever
//    calls come without bytecode between them (a builtin draining a
//    generator, map, sorted(key=)).
//  - fast mode, a Python function's frame: calls from bytecode (_cal_loop),
//    since under the eval-frame hook such calls also lose their inlining (a
//    real cost of profiling, paid outside and inside the callee); under
//    sys.monitoring they keep it and the driver measures the callbacks.
//  - fast mode, a generator resume: resumes from C (_cal_resumes); they are
//    never inlined, so only the hook's own work is added.
void Profiler::Calibrate(Calibration out[kEventKinds]) {
  for (uint32_t k = 0; k < kEventKinds; ++k) out[k] = Calibration{};
  SavedError saved;
  PyObject* globals = PyDict_New();
  if (globals == nullptr) {
    PyErr_Clear();
    return;
  }
  PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins());
  PyObject* r = PyRun_String(kCalibrationSource, Py_file_input, globals, globals);
  auto get = [&](const char* name) { return PyDict_GetItemString(globals, name); };  // borrowed
  PyObject* f = get("_cal_f");
  PyObject* gen = get("_cal_gen");
  if (r == nullptr || f == nullptr || gen == nullptr || get("_cal_loop") == nullptr ||
      get("_cal_c_loop") == nullptr || get("_cal_resumes") == nullptr) {
    PyErr_Clear();
    Py_XDECREF(r);
    Py_DECREF(globals);
    return;
  }
  Py_DECREF(r);
  PyObject* f_code = PyFunction_GetCode(f);      // borrowed
  PyObject* gen_code = PyFunction_GetCode(gen);  // borrowed
  if (mode_ == Mode::kExact) {
    out[kCall] = CalibrateOne(get("_cal_c_loop"), f_code);
    out[kResume] = out[kCall];
  } else {
    out[kCall] = CalibrateOne(get("_cal_loop"), f_code);
    out[kResume] = CalibrateOne(get("_cal_resumes"), gen_code);
  }
  Py_DECREF(globals);
}

Calibration Profiler::CalibrateOne(PyObject* driver, PyObject* callee_code) {
  Calibration out;
  constexpr long kCalls = 4000;
  constexpr int kRuns = 5;
  PyObject* n = PyLong_FromLong(kCalls);
  uint64_t best_base = UINT64_MAX, best_profiled = UINT64_MAX, best_in = UINT64_MAX;
  for (int run = 0; run < kRuns && n != nullptr; ++run) {
    uint64_t t0 = ReadClock();
    PyObject* x = PyObject_CallOneArg(driver, n);
    uint64_t base = ReadClock() - t0;
    Py_XDECREF(x);
    Profiler scratch(requested_, mode_, /*calibrate=*/false, 64);
    scratch.fast_hook_ = fast_hook_;
    std::string why;
    if (!scratch.Enable(nullptr, &why)) break;
    t0 = ReadClock();
    x = PyObject_CallOneArg(driver, n);
    uint64_t profiled = ReadClock() - t0;
    scratch.Disable();
    Py_XDECREF(x);
    PyErr_Clear();
    best_base = std::min(best_base, base);
    best_profiled = std::min(best_profiled, profiled);
    for (const NodeStats& node : scratch.nodes()) {
      if (node.calls >= static_cast<uint64_t>(kCalls) &&
          scratch.functions()[node.function].code == callee_code)
        best_in = std::min(best_in, node.self_cost() / node.calls);
    }
  }
  Py_XDECREF(n);
  if (best_profiled != UINT64_MAX && best_profiled > best_base)
    out.per_call = (best_profiled - best_base) / kCalls;
  if (best_in != UINT64_MAX) out.in_callee = std::min(best_in, out.per_call);
  return out;
}

NodeCosts Profiler::Costs(uint64_t cost) const {
  NodeCosts out;
  out.self.resize(nodes_.size());
  uint64_t ticks = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    out.self[i] = nodes_[i].self_cost();
    ticks += out.self[i];
  }
  if (apportioned()) {
    if (cost == kOwnFigure) cost = own_cost();
    // Cumulative rounding: node i gets round(cost * ticks through i / ticks)
    // minus the same through i - 1, so the shares sum to `cost` exactly and
    // none is more than 1 off its exact share. 128-bit: cost * ticks is
    // already ~2^64 for a second of instructions against a second of ticks.
    unsigned __int128 through = 0;
    uint64_t given = 0;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      through += out.self[i];
      const uint64_t upto =
          ticks == 0 ? 0 : static_cast<uint64_t>((through * cost + ticks / 2) / ticks);
      out.self[i] = upto - given;
      given = upto;
    }
  }
  out.total = out.self;
  // A node is always added after its parent, so one backward pass sums subtrees.
  for (size_t i = nodes_.size(); i-- > 1;) out.total[nodes_[i].parent] += out.total[i];
  return out;
}

uint64_t Profiler::overhead_per_event(uint64_t cost) const {
  const uint64_t per_call = calibration_[kCall].per_call;
  if (!apportioned()) return per_call;
  if (cost == kOwnFigure) cost = own_cost();
  uint64_t ticks = 0;
  for (const NodeStats& n : nodes_) ticks += n.self_cost();
  if (ticks == 0) return 0;
  return static_cast<uint64_t>(static_cast<unsigned __int128>(per_call) * cost / ticks);
}

// Profiler::Encode() writes record.Profile's wire format itself: building
// the message first costs an allocation per node and per name (~250 us for
// a Django page of 1,400 paths, most of the profile's fixed cost per request).
// Fields go in number order and proto3 defaults are left out, as the
// generated serializer does, so the bytes equal SerializeAsString()'s
// (checked by tests/python/test_apportioned_profiles.py).
std::string Profiler::Encode(uint64_t cost, std::vector<uint32_t>* shared_ids) const {
  const NodeCosts costs = Costs(cost);
  const ProfileView view = View();
  // With shared ids, a node names its function's ProcessFunctions id, else
  // the function's position in the profile's own table.
  bool shared = false;
  if (shared_ids != nullptr) {
    shared_ids->clear();
    shared_ids->reserve(view.functions.size());
    shared = true;
    for (size_t i = 0; i < view.functions.size() && shared; ++i) {
      const std::optional<uint32_t> id = SharedId(functions_[view.functions[i]]);
      shared = id.has_value();
      if (shared) shared_ids->push_back(*id);
    }
    if (!shared) shared_ids->clear();
  }
  std::string out;
  out.reserve(64 + (shared ? 0 : view.functions.size() * 128) + view.nodes.size() * 24);
  PutField(out, record::Profile::kUnitFieldNumber, unit_name_);
  PutField(out, record::Profile::kSourceFieldNumber, source_name_);
  PutField(out, record::Profile::kModeFieldNumber, mode_ == Mode::kFast ? "fast" : "exact");
  if (!shared)
    for (uint32_t f : view.functions) AppendFunction(out, functions_[f]);
  for (uint32_t i : view.nodes) {
    const NodeStats& n = nodes_[i];
    char body[6 * 11];  // six varint fields, at most 11 bytes each (tag + value)
    char* p = body;
    p = PutVarintField(p, record::ProfileNode::kParentFieldNumber, view.position[n.parent]);
    p = PutVarintField(p, record::ProfileNode::kFunctionFieldNumber,
                       i == 0   ? 0
                       : shared ? (*shared_ids)[view.function_position[n.function]]
                                : view.function_position[n.function]);
    p = PutVarintField(p, record::ProfileNode::kCallsFieldNumber, n.calls);
    p = PutVarintField(p, record::ProfileNode::kPrimitiveCallsFieldNumber,
                       n.primitive ? n.calls : 0);
    p = PutVarintField(p, record::ProfileNode::kSelfCostFieldNumber, costs.self[i]);
    p = PutVarintField(p, record::ProfileNode::kTotalCostFieldNumber, i == 0 ? 0 : costs.total[i]);
    PutVarint(out, record::Profile::kNodesFieldNumber << 3 | 2);
    PutVarint(out, static_cast<uint64_t>(p - body));
    out.append(body, static_cast<size_t>(p - body));
  }
  PutField(out, record::Profile::kBuiltinsFoldedFieldNumber, builtins_folded() ? 1 : 0);
  PutField(out, record::Profile::kOverheadPerEventFieldNumber, overhead_per_event(cost));
  PutField(out, record::Profile::kRequestsFieldNumber, 1);
  PutField(out, record::Profile::kFunctionsInBatchFieldNumber, shared ? 1 : 0);
  return out;
}

void Profiler::ToProto(record::Profile* out, uint64_t cost) const {
  if (!out->ParseFromString(Encode(cost))) out->Clear();  // cannot fail: Encode() writes the schema
}

}  // namespace cpuledger::python
