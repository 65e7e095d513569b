// python/cpuledger/native/eval_frame.cc — the PEP 523 hook, CPython 3.11-3.13.
#include "native/eval_frame.h"

#include "native/profiler.h"

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
#define CPULEDGER_EVAL_FRAME 1
// _PyInterpreterFrame (its code, its owner) lives in CPython's internal headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#define CPULEDGER_UNDEF_BUILD_CORE 1
#endif
#include <internal/pycore_frame.h>
#ifdef CPULEDGER_UNDEF_BUILD_CORE
#undef Py_BUILD_CORE
#endif
#pragma GCC diagnostic pop
#endif

namespace cpuledger::python {

#ifdef CPULEDGER_EVAL_FRAME

namespace {

_PyFrameEvalFunction g_previous = nullptr;  // what the hook chains to, while installed
int g_installs = 0;                         // InstallEvalFrame() calls not yet undone
uint64_t g_passthrough_frames = 0;

constexpr int kGeneratorFlags = CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR;

PyInterpreterState* Interp() { return PyThreadState_Get()->interp; }

// FrameCode() — the code object a frame evaluates: 3.13 renamed f_code to
// f_executable (a code object for every frame that reaches the hook).
inline PyCodeObject* FrameCode(const _PyInterpreterFrame* frame) {
#if PY_VERSION_HEX >= 0x030D0000
  return reinterpret_cast<PyCodeObject*>(frame->f_executable);
#else
  return frame->f_code;
#endif
}

// The hook. Threads without an enabled fast-mode Profiler pass straight
// through after one TLS load. A frame is closed only against the enablement
// that opened it (same profiler, epoch and depth), so Disable() in the middle
// (which closes open frames itself) leaves nothing dangling. Everything on
// the profiled path is inlined (Profiler::Enter/Leave): the warm per-frame
// cost is two TSC reads, one hash probe and a few stores.
PyObject* EvalFrame(PyThreadState* tstate, _PyInterpreterFrame* frame, int throwflag) {
  const _PyFrameEvalFunction next = g_previous;
  Profiler* p = internal::t_fast;
  if (p == nullptr) return next(tstate, frame, throwflag);
  PyCodeObject* code = FrameCode(frame);
  EventKind kind = kCall;
  if ((code->co_flags & kGeneratorFlags) != 0) [[unlikely]] {
    // A generator/coroutine function's first evaluation only runs
    // RETURN_GENERATOR (the frame still belongs to the thread): cProfile sees
    // no call there, only at each resume of the generator's own frame.
    if (frame->owner == FRAME_OWNED_BY_THREAD) return next(tstate, frame, throwflag);
    kind = kResume;
  }
  const uint64_t epoch = p->epoch();
  const size_t depth = p->depth();
  p->Enter(code, reinterpret_cast<PyObject*>(code), /*builtin=*/false, kind);
  PyObject* result = next(tstate, frame, throwflag);
  if (internal::t_fast == p && p->epoch() == epoch && p->depth() == depth + 1) [[likely]]
    p->Leave();
  return result;
}

PyObject* PassthroughEvalFrame(PyThreadState* tstate, _PyInterpreterFrame* frame, int throwflag) {
  ++g_passthrough_frames;
  return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
}

}  // namespace

bool EvalFrameSupported(std::string*) { return true; }

bool InstallEvalFrame(std::string* why) {
  if (!EvalFrameSupported(why)) return false;
  if (g_installs++ > 0) return true;
  PyInterpreterState* interp = Interp();
  _PyFrameEvalFunction current = _PyInterpreterState_GetEvalFrameFunc(interp);
  if (current != EvalFrame) g_previous = current;  // else: left installed earlier, keep chain
  _PyInterpreterState_SetEvalFrameFunc(interp, EvalFrame);
  return true;
}

void UninstallEvalFrame() {
  if (g_installs == 0 || --g_installs > 0) return;
  PyInterpreterState* interp = Interp();
  if (_PyInterpreterState_GetEvalFrameFunc(interp) == EvalFrame)
    _PyInterpreterState_SetEvalFrameFunc(interp, g_previous);
  // Else another tool installed over ours: ours stays in its chain, passing through.
}

std::string_view EvalFrameState() {
  _PyFrameEvalFunction current = _PyInterpreterState_GetEvalFrameFunc(Interp());
  if (current == _PyEval_EvalFrameDefault) return "default";
  if (current == EvalFrame) return "cpuledger";
  return "other";
}

bool SetPassthroughEvalFrame(bool on) {
  PyInterpreterState* interp = Interp();
  _PyFrameEvalFunction current = _PyInterpreterState_GetEvalFrameFunc(interp);
  if (on) {
    if (current != _PyEval_EvalFrameDefault) return false;
    _PyInterpreterState_SetEvalFrameFunc(interp, PassthroughEvalFrame);
  } else {
    if (current != PassthroughEvalFrame) return false;
    _PyInterpreterState_SetEvalFrameFunc(interp, _PyEval_EvalFrameDefault);
  }
  return true;
}

uint64_t PassthroughFrames() { return g_passthrough_frames; }

#else  // a CPython whose frame layout this file does not know

bool EvalFrameSupported(std::string* why) {
  *why = "the eval-frame hook is built for CPython 3.11-3.13 only";
  return false;
}
bool InstallEvalFrame(std::string* why) { return EvalFrameSupported(why); }
void UninstallEvalFrame() {}
std::string_view EvalFrameState() { return "unsupported"; }
bool SetPassthroughEvalFrame(bool) { return false; }
uint64_t PassthroughFrames() { return 0; }

#endif

}  // namespace cpuledger::python
