// python/cpuledger/native/monitoring.h — fast mode through sys.monitoring
// (PEP 669), CPython 3.12+: C callbacks for the Python-frame events.
//
// The interpreter calls a registered callback per event and per tool. Ours
// are C functions (METH_FASTCALL PyCFunctions, called by vectorcall) that
// feed the thread's enabled fast-mode Profiler: a frame starting, resuming or
// having an exception thrown in (PY_START, PY_RESUME, PY_THROW) is a call, as
// cProfile counts them on 3.12+; returning, yielding or unwinding (PY_RETURN,
// PY_YIELD, PY_UNWIND) ends it. C builtins are not seen (no CALL events):
// their cost stays in the caller's self cost, as under the eval-frame hook.
// Unlike that hook, monitoring keeps the interpreter's inlined Python calls.
//
//   std::string why;
//   InstallMonitoring(&why);   // Profiler::Enable() in fast mode does this
//   UninstallMonitoring();     // Profiler::Disable(); the last one frees the tool
//
// Events are per interpreter, not per thread: while installed, every thread
// calls the callbacks, which return after one TLS load where no fast-mode
// Profiler is attached. Installs are counted (the first takes a tool id and
// sets the events, the last clears them): pausing a profile does neither.
//
// Thread-safety: GIL held for every call.
#pragma once

#include <Python.h>

#include <string>

namespace cpuledger::python {

// MonitoringSupported() — true on CPython 3.12 and later; otherwise false
// with the reason in *why.
bool MonitoringSupported(std::string* why);

// InstallMonitoring() — the first install takes sys.monitoring's PROFILER_ID
// (or the next free one of 3, 4: cProfile holds PROFILER_ID while enabled),
// registers the callbacks and sets the events. RETURNS: false + *why when
// unsupported or no tool id is free; leaves no exception set.
// COST: the first install a few Python calls, and every code object is
// re-instrumented when it next runs (sys.monitoring's, once per set_events);
// later installs one increment.
bool InstallMonitoring(std::string* why);

// UninstallMonitoring() — undoes one InstallMonitoring(); the last one clears
// the events and frees the tool id (code is de-instrumented as it next runs).
void UninstallMonitoring();

// MonitoringToolId() — the sys.monitoring tool id held now, -1 when none.
int MonitoringToolId();

// SetNoopMonitoring() — callbacks that do nothing for the same events under
// a tool id of their own: the floor of this mechanism, for the overhead
// bench. RETURNS: false when already in that state or unsupported.
bool SetNoopMonitoring(bool on);

}  // namespace cpuledger::python
