// python/cpuledger/native/eval_frame.h — fast mode's hook on CPython 3.11 and
// 3.12 (built for 3.13 too, where it is not the default: see NOTE below): a
// PEP 523 frame-evaluation function that charges each Python frame's
// evaluation to its code object.
//
// CPython calls the interpreter's eval-frame function once per frame
// evaluation; with one installed, 3.11-3.13 stop inlining Python-to-Python
// calls (and generator resumes from bytecode), so every call and every
// resume passes through it. The hook reads
// the clock before and after `_PyEval_EvalFrameDefault` (or the function that
// was installed before ours: it chains) and costs the delta on the call path
// of the thread's enabled Profiler; threads without one pass straight through.
// C builtins are not frames: their cost stays in the caller's self cost
// (Profiler::builtins_folded()).
//
//   std::string why;
//   if (!EvalFrameSupported(&why)) ...   // not 3.11-3.13: sys.monitoring (monitoring.h)
//   InstallEvalFrame(&why);              // Profiler::Enable() does this
//   UninstallEvalFrame();                // Profiler::Disable(); the last one restores
//
// NOTE: 3.13's specialized class instantiation (CALL_ALLOC_AND_ENTER_INIT)
// pushes a Python __init__'s frame without calling the eval-frame function:
// those frames are not seen there, so 3.13 defaults to sys.monitoring.
//
// Thread-safety: GIL held for every call. Installs are counted: the first
// installs, the last uninstall restores the previous function.
#pragma once

#include <Python.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace cpuledger::python {

// EvalFrameSupported() — true on CPython 3.11-3.13 (the frame layouts this
// file knows); otherwise false with the reason in *why.
bool EvalFrameSupported(std::string* why);

// InstallEvalFrame() — installs the hook on the current interpreter, saving
// the function installed before (chained to). RETURNS: false + *why when
// fast mode is unsupported. COST: one pointer swap; then every Python frame
// evaluation of every thread calls the hook (~5 ns pass-through when the
// thread is not profiled, plus the loss of inlined calls).
bool InstallEvalFrame(std::string* why);

// UninstallEvalFrame() — undoes one InstallEvalFrame(); the last one puts
// back the saved function unless someone installed another over ours since
// (then ours stays, passing through, rather than clobbering theirs).
void UninstallEvalFrame();

// EvalFrameState() — "default", "cpuledger", or "other": what the current
// interpreter evaluates frames with. For tests and `doctor`.
std::string_view EvalFrameState();

// SetPassthroughEvalFrame() / PassthroughFrames() — a counting pass-through
// eval-frame function standing for "another tool's PEP 523 hook", so tests can
// check that ours chains to it and restores it. RETURNS: false when another
// function than the default (on) / the pass-through (off) is installed.
bool SetPassthroughEvalFrame(bool on);
uint64_t PassthroughFrames();

}  // namespace cpuledger::python
