// Python view of the profiler hooks: cpuledger._native.Profiler.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>

#include <fstream>
#include <new>
#include <stdexcept>
#include <string>

#include "native/bindings.h"
#include "native/eval_frame.h"
#include "native/monitoring.h"
#include "native/profiler.h"
#include "profile/call_tree.h"
#include "profile/export.h"
#include "record/record.pb.h"

namespace nb = nanobind;

namespace cpuledger::python {
namespace {

std::string CodeString(PyObject* s) {
  Py_ssize_t n = 0;
  const char* p = s != nullptr ? PyUnicode_AsUTF8AndSize(s, &n) : nullptr;
  if (p == nullptr) {
    PyErr_Clear();
    return "?";
  }
  return std::string(p, static_cast<size_t>(n));
}

// Stats() — one tuple per call path, the root left out: (parent, file, line,
// name, calls, primitive_calls, self_cost, total_cost); parent indexes this
// list, -1 for a top-level call. Names as cProfile's: builtins are
// ("~", 0, "<built-in method ...>"). Costs as Profiler::Costs() states them.
nb::list Stats(const Profiler& p) {
  nb::list out;
  const auto& functions = p.functions();
  const auto& nodes = p.nodes();
  const NodeCosts costs = p.Costs();
  const ProfileView view = p.View();
  for (size_t k = 1; k < view.nodes.size(); ++k) {
    const uint32_t i = view.nodes[k];
    const NodeStats& n = nodes[i];
    const FunctionEntry& f = functions[n.function];
    std::string file = "~", name = f.builtin;
    int line = 0;
    if (f.code != nullptr) {
      auto* code = reinterpret_cast<PyCodeObject*>(f.code);
      file = CodeString(code->co_filename);
      name = CodeString(code->co_name);
      line = code->co_firstlineno;
    }
    out.append(nb::make_tuple(static_cast<long>(view.position[n.parent]) - 1, file, line, name,
                              n.calls, n.primitive ? n.calls : 0, costs.self[i], costs.total[i]));
  }
  return out;
}

// TreeBytes() — the serialized record.Profile.
nb::bytes TreeBytes(const Profiler& p) {
  const std::string bytes = p.Encode();
  return nb::bytes(bytes.data(), bytes.size());
}

// Write() — the profile in `format` (src/profile/export.h) to `path`.
void Write(const Profiler& p, const std::string& path, std::string_view format,
           std::string_view name) {
  record::Profile proto;
  p.ToProto(&proto);
  Result<profile::CallTree> tree = profile::CallTree::FromProto(proto);
  if (!tree.ok()) throw std::runtime_error("profile does not convert: " + tree.status().ToString());
  std::string out;
  if (format == "pstats") {
    out = profile::ToPstats(*tree);
  } else if (format == "collapsed") {
    out = profile::ToCollapsed(*tree);
  } else if (format == "speedscope") {
    out = profile::ToSpeedscope(*tree, name.empty() ? std::string_view(path) : name);
  } else if (format == "pprof") {
    Result<std::string> pb = profile::ToPprof(*tree);
    if (!pb.ok()) throw std::runtime_error(pb.status().ToString());
    out = std::move(*pb);
  } else {
    throw std::invalid_argument("format must be pstats|pprof|speedscope|collapsed, not '" +
                                std::string(format) + "'");
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path);
}

// A profile function that does nothing: the floor of any PyEval_SetProfile
// profiler (CPython's call_trace machinery and 3.11's tracing dispatch),
// for the overhead benchmark.
int NoopProfile(PyObject*, PyFrameObject*, int, PyObject*) { return 0; }

}  // namespace

void RegisterProfiler(nb::module_& m) {
  nb::class_<Profiler>(
      m, "Profiler",
      "A cProfile whose timer is a CPU counter, with full call paths.\n\n"
      "source: auto|instructions|cycles|cpu|wall|apportioned; mode: exact (PyEval_SetProfile,\n"
      "cProfile-equal counts) | fast (PEP 523, Python frames only).")
      .def(
          "__init__",
          [](Profiler* self, std::string_view source, std::string_view mode, bool calibrate,
             uint32_t max_nodes) {
            ClockSource s;
            Mode md;
            if (!ParseClockSource(source, &s))
              throw std::invalid_argument(
                  "source must be auto|instructions|cycles|cpu|wall|apportioned, not '" +
                  std::string(source) + "'");
            if (!ParseMode(mode, &md))
              throw std::invalid_argument("mode must be exact|fast, not '" + std::string(mode) +
                                          "'");
            new (self) Profiler(s, md, calibrate, max_nodes);
            if (!self->open_error().empty()) {
              std::string why = self->open_error();
              self->~Profiler();
              throw std::invalid_argument(why);
            }
          },
          nb::arg("source") = "auto", nb::arg("mode") = "exact", nb::arg("calibrate") = true,
          nb::arg("max_nodes") = 200000)
      .def(
          "enable",
          [](Profiler& self) {
            std::string why;
            if (!self.Enable(nb::find(&self).ptr(), &why))
              throw std::runtime_error("Profiler.enable(): " + why);
          },
          "Start profiling the calling thread (calibrates once per process, mode and source).")
      .def(
          "pause",
          [](Profiler& self) {
            if (!self.Pause() && self.enabled() && !self.paused())
              throw std::runtime_error(
                  "Profiler.pause() must be called on the thread that enabled it");
          },
          "Detach from the thread, keeping the profile open (call tree, open calls, the"
          " apportioned window); nothing is seen or costed until resume(). A no-op when not"
          " enabled or already paused.")
      .def(
          "resume",
          [](Profiler& self) {
            std::string why;
            if (!self.Resume(&why)) throw std::runtime_error("Profiler.resume(): " + why);
          },
          "Re-attach a paused profile to the calling thread (the one that enabled it).")
      .def(
          "step",
          [](Profiler& self, nb::handle fn, nb::handle arg) -> nb::object {
            // Here rather than in Python: the driver's own call of fn (a
            // coroutine's send, a PyCFunction) would be a profiled builtin
            // above the step's frames in exact mode; called from C it is not
            // seen, and the step's outermost frame is a top-level call.
            bool attached = false;
            if (self.paused()) {
              std::string why;
              attached = self.Resume(&why);
              if (!attached) self.NoteFailure("a step ran unprofiled: " + why);
            }
            PyObject* result = PyObject_CallOneArg(fn.ptr(), arg.ptr());
            if (attached) {
              // fn's exception stays in flight across the detach (which may
              // run an audit hook).
              PyObject *type, *value, *traceback;
              PyErr_Fetch(&type, &value, &traceback);
              self.Pause();
              PyErr_Restore(type, value, traceback);
            }
            if (result == nullptr) throw nb::python_error();
            return nb::steal(result);
          },
          nb::arg("fn"), nb::arg("arg").none(),
          "fn(arg) as one step of a paused profile: resume(), the call, pause(); returns or"
          " raises what fn does and raises nothing of its own. Not paused: fn(arg) within the"
          " profile as it is (enabled or not). A step that cannot attach (another profile is"
          " attached on this thread) runs unprofiled and sets `error`.")
      .def(
          "disable",
          [](Profiler& self) {
            bool was_enabled = self.enabled();
            if (!self.Disable())
              throw std::runtime_error(
                  "Profiler.disable() must be called on the thread that enabled it");
            if (was_enabled && !self.error().empty()) {
              std::string msg = "cpuledger profiler: " + self.error();
              if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) < 0) throw nb::python_error();
            }
          },
          "Stop profiling; frames still running are closed and counted. Warns (RuntimeWarning)"
          " when a hook failed while enabled (see `error`).")
      .def(
          "clear",
          [](Profiler& self) {
            if (self.enabled()) throw std::runtime_error("Profiler.clear(): disable() first");
            self.Clear();
          },
          "Forget every call path.")
      .def(
          "reset",
          [](Profiler& self) {
            if (self.enabled()) throw std::runtime_error("Profiler.reset(): disable() first");
            self.Reset();
          },
          "Start a new profile: counts to zero, the call paths seen kept (warm for the next).")
      .def("stats", &Stats,
           "List of (parent, file, line, name, calls, primitive_calls, self_cost, total_cost),"
           " one per call path; parent indexes the list, -1 at the top.")
      .def("tree_bytes", &TreeBytes,
           "The profile as a serialized record.Profile (src/record/record.proto).")
      .def("write", &Write, nb::arg("path"), nb::arg("format") = "pstats", nb::arg("name") = "",
           "Write the profile to `path` as pstats | pprof (uncompressed profile.proto) |"
           " speedscope | collapsed (src/profile/export.h).")
      .def_prop_ro("enabled", &Profiler::enabled, "True from enable() to disable(), paused or not.")
      .def_prop_ro("paused", &Profiler::paused, "Enabled and detached by pause().")
      .def_prop_ro("unit", &Profiler::unit)
      .def_prop_ro("source", &Profiler::source)
      .def_prop_ro("mode",
                   [](const Profiler& p) { return p.mode() == Mode::kFast ? "fast" : "exact"; })
      .def_prop_ro(
          "fast_hook",
          [](const Profiler& p) -> nb::object {
            if (p.mode() != Mode::kFast) return nb::none();
            return nb::str(FastHookName(p.fast_hook()).data());
          },
          "What feeds a fast-mode profile: 'eval_frame' (PEP 523) or 'monitoring'"
          " (sys.monitoring); None in exact mode.")
      .def_prop_ro("mode_fallback",
                   [](const Profiler& p) -> nb::object {
                     if (p.mode_fallback().empty()) return nb::none();
                     return nb::str(p.mode_fallback().c_str());
                   })
      .def_prop_ro("builtins_folded", &Profiler::builtins_folded)
      .def_prop_ro("overhead_per_event", [](const Profiler& p) { return p.overhead_per_event(); })
      .def_prop_ro("apportioned", &Profiler::apportioned,
                   "True when the costs are a CPU figure shared over TSC-timed frames.")
      .def_prop_ro("own_cost", &Profiler::own_cost,
                   "Apportioned: the CPU this profile shares out on its own (the thread's counter"
                   " from enable() to disable(), less excluded_cost); 0 before disable().")
      .def_prop_ro("excluded_cost", &Profiler::excluded_cost,
                   "Apportioned: the CPU of the db and cache spans left out, in `unit`.")
      .def_prop_ro("overhead_in_callee",
                   [](const Profiler& p) { return p.calibration().in_callee; })
      .def_prop_ro(
          "calibration",
          [](const Profiler& p) {
            nb::dict d;
            const Calibration &call = p.calibration(kCall), &resume = p.calibration(kResume);
            d["call"] = nb::make_tuple(call.per_call, call.in_callee);
            d["resume"] = nb::make_tuple(resume.per_call, resume.in_callee);
            return d;
          },
          "{'call': (per_call, in_callee), 'resume': (...)}: the calibrated overhead taken out"
          " per call and per generator resume (fast mode tells them apart), in the profile's"
          " unit; zeros until the first enable().")
      .def_prop_ro("error", [](const Profiler& p) -> nb::object {
        if (p.error().empty()) return nb::none();
        return nb::str(p.error().c_str());
      });

  m.def("_eval_frame_state", [] { return std::string(EvalFrameState()); });
  m.def("_monitoring_tool_id", &MonitoringToolId);
  m.def("_set_noop_monitoring", &SetNoopMonitoring, nb::arg("on"));
  m.def("_default_fast_hook", [] { return std::string(FastHookName(DefaultFastHook())); });
  m.def(
      "_set_default_fast_hook",
      [](std::string_view name) {
        FastHook hook;
        if (!ParseFastHook(name, &hook))
          throw std::invalid_argument("fast hook must be eval_frame|monitoring, not '" +
                                      std::string(name) + "'");
        SetDefaultFastHook(hook);
      },
      nb::arg("name"), "The hook fast-mode Profilers made from now on use (benchmarks and tests).");
  m.def("_set_passthrough_eval_frame", &SetPassthroughEvalFrame, nb::arg("on"));
  m.def("_passthrough_frames", &PassthroughFrames);
  m.def(
      "_set_noop_profile",
      [](bool on) {
        if (Profiler::Active() != nullptr)
          throw std::runtime_error("a cpuledger Profiler is enabled on this thread");
        PyEval_SetProfile(on ? NoopProfile : nullptr, nullptr);
      },
      nb::arg("on"),
      "Install (or remove) a C profile function that does nothing on this thread: the bare"
      " cost of the PyEval_SetProfile hook, for benchmarks.");
}

}  // namespace cpuledger::python
