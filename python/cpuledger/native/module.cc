// cpuledger._native — the C++ core as seen from Python.
#include "native/bindings.h"

NB_MODULE(_native, m) {
  m.doc() = "cpuledger native core (C++): counters, request scopes, recorder, profiler";
  cpuledger::python::RegisterCounters(m);
  cpuledger::python::RegisterClient(m);
  cpuledger::python::RegisterProfiler(m);
}
