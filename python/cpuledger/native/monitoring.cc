// python/cpuledger/native/monitoring.cc — fast mode through sys.monitoring.
#include "native/monitoring.h"

#include "native/profiler.h"

namespace cpuledger::python {

#if PY_VERSION_HEX >= 0x030C0000

namespace {

constexpr int kGeneratorFlags = CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR;

int g_installs = 0;  // InstallMonitoring() calls not yet undone
int g_tool = -1;     // the tool id held, -1 when none
int g_noop_tool = -1;

// The callbacks: thin shims over Profiler::Enter/Leave. args[0] is the code
// object for every event here. They never raise and never run Python code.
PyObject* OnStart(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  Profiler* p = internal::t_fast;
  if (p != nullptr && nargs > 0) [[likely]] {
    auto* code = reinterpret_cast<PyCodeObject*>(args[0]);
    // A generator's first step is a resume like the others (from C or from
    // bytecode that never inlines it): charged as one.
    const EventKind kind = (code->co_flags & kGeneratorFlags) != 0 ? kResume : kCall;
    p->Enter(code, args[0], /*builtin=*/false, kind);
  }
  Py_RETURN_NONE;
}

PyObject* OnResume(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  Profiler* p = internal::t_fast;
  if (p != nullptr && nargs > 0) [[likely]]
    p->Enter(args[0], args[0], /*builtin=*/false, kResume);
  Py_RETURN_NONE;
}

PyObject* OnLeave(PyObject*, PyObject* const*, Py_ssize_t) {
  Profiler* p = internal::t_fast;
  if (p != nullptr) [[likely]]
    p->Leave();
  Py_RETURN_NONE;
}

PyObject* OnNothing(PyObject*, PyObject* const*, Py_ssize_t) { Py_RETURN_NONE; }

PyMethodDef kOnStart = {"_cpuledger_py_start",
                        reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(OnStart)),
                        METH_FASTCALL, nullptr};
PyMethodDef kOnResume = {"_cpuledger_py_resume",
                         reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(OnResume)),
                         METH_FASTCALL, nullptr};
PyMethodDef kOnLeave = {"_cpuledger_py_leave",
                        reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(OnLeave)),
                        METH_FASTCALL, nullptr};
PyMethodDef kOnNothing = {"_cpuledger_noop",
                          reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(OnNothing)),
                          METH_FASTCALL, nullptr};

// Which callback each event gets, by its name in sys.monitoring.events.
struct EventHook {
  const char* event;
  PyMethodDef* def;
};
constexpr EventHook kHooks[] = {
    {"PY_START", &kOnStart},  {"PY_RESUME", &kOnResume}, {"PY_THROW", &kOnResume},
    {"PY_RETURN", &kOnLeave}, {"PY_YIELD", &kOnLeave},   {"PY_UNWIND", &kOnLeave},
};

// Call() — sys.monitoring.<method>(args...), the result dropped. RETURNS:
// false with an exception set on failure.
template <typename... Args>
bool Call(PyObject* monitoring, const char* method, const char* format, Args... args) {
  PyObject* r = PyObject_CallMethod(monitoring, method, format, args...);
  Py_XDECREF(r);
  return r != nullptr;
}

std::string TakeError(const char* what) {
  PyObject* e = PyErr_GetRaisedException();
  std::string out = what;
  if (e != nullptr) {
    PyObject* s = PyObject_Str(e);
    const char* text = s != nullptr ? PyUnicode_AsUTF8(s) : nullptr;
    if (text != nullptr) out += std::string(": ") + text;
    Py_XDECREF(s);
    Py_DECREF(e);
  }
  PyErr_Clear();
  return out;
}

// Attach() — takes a free tool id among PROFILER_ID, 3, 4, registers `def`
// (or the table's callbacks when null) for the table's events and sets them.
// RETURNS: the tool id, or -1 + *why.
int Attach(PyMethodDef* only, std::string* why) {
  PyObject* monitoring = PySys_GetObject("monitoring");  // borrowed
  if (monitoring == nullptr) {
    *why = "sys.monitoring is missing";
    return -1;
  }
  PyObject* events = PyObject_GetAttrString(monitoring, "events");
  if (events == nullptr) {
    *why = TakeError("sys.monitoring.events");
    return -1;
  }
  int tool = -1;
  for (int id : {2, 3, 4}) {
    if (Call(monitoring, "use_tool_id", "is", id, "cpuledger")) {
      tool = id;
      break;
    }
    PyErr_Clear();  // taken
  }
  if (tool < 0) {
    Py_DECREF(events);
    *why = "no sys.monitoring tool id free (2, 3 and 4 are taken)";
    return -1;
  }
  long mask = 0;
  bool ok = true;
  for (const EventHook& h : kHooks) {
    PyObject* bit = PyObject_GetAttrString(events, h.event);
    const long value = bit != nullptr ? PyLong_AsLong(bit) : -1;
    Py_XDECREF(bit);
    PyObject* fn = value > 0 ? PyCFunction_New(only != nullptr ? only : h.def, nullptr) : nullptr;
    ok = fn != nullptr && Call(monitoring, "register_callback", "ilO", tool, value, fn);
    Py_XDECREF(fn);
    if (!ok) break;
    mask |= value;
  }
  ok = ok && Call(monitoring, "set_events", "il", tool, mask);
  Py_DECREF(events);
  if (!ok) {
    *why = TakeError("sys.monitoring set-up");
    Call(monitoring, "free_tool_id", "i", tool);  // also drops the callbacks
    PyErr_Clear();
    return -1;
  }
  return tool;
}

void Detach(int tool) {
  PyObject* monitoring = PySys_GetObject("monitoring");  // borrowed
  if (monitoring == nullptr) return;
  // set_events first: free_tool_id on 3.12 leaves the events set.
  if (!Call(monitoring, "set_events", "ii", tool, 0)) PyErr_Clear();
  PyObject* events = PyObject_GetAttrString(monitoring, "events");
  for (const EventHook& h : kHooks) {
    PyObject* bit = events != nullptr ? PyObject_GetAttrString(events, h.event) : nullptr;
    if (bit != nullptr && !Call(monitoring, "register_callback", "iOO", tool, bit, Py_None))
      PyErr_Clear();
    Py_XDECREF(bit);
  }
  Py_XDECREF(events);
  if (!Call(monitoring, "free_tool_id", "i", tool)) PyErr_Clear();
  PyErr_Clear();
}

}  // namespace

bool MonitoringSupported(std::string*) { return true; }

bool InstallMonitoring(std::string* why) {
  if (g_installs > 0) {
    ++g_installs;
    return true;
  }
  PyObject* saved = PyErr_GetRaisedException();
  g_tool = Attach(nullptr, why);
  PyErr_SetRaisedException(saved);
  if (g_tool < 0) return false;
  g_installs = 1;
  return true;
}

void UninstallMonitoring() {
  if (g_installs == 0 || --g_installs > 0) return;
  PyObject* saved = PyErr_GetRaisedException();
  Detach(g_tool);
  PyErr_SetRaisedException(saved);
  g_tool = -1;
}

int MonitoringToolId() { return g_tool; }

bool SetNoopMonitoring(bool on) {
  std::string why;
  if (on == (g_noop_tool >= 0)) return false;
  if (on) {
    g_noop_tool = Attach(&kOnNothing, &why);
    return g_noop_tool >= 0;
  }
  Detach(g_noop_tool);
  g_noop_tool = -1;
  return true;
}

#else  // CPython 3.11: no sys.monitoring.

bool MonitoringSupported(std::string* why) {
  *why = "sys.monitoring needs CPython 3.12";
  return false;
}
bool InstallMonitoring(std::string* why) { return MonitoringSupported(why); }
void UninstallMonitoring() {}
int MonitoringToolId() { return -1; }
bool SetNoopMonitoring(bool) { return false; }

#endif

}  // namespace cpuledger::python
