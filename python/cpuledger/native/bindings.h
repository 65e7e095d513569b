// python/cpuledger/native/bindings.h — one Register* function per component
// bound into cpuledger._native; module.cc calls them all.
#pragma once

#include <nanobind/nanobind.h>

namespace cpuledger::python {

void RegisterCounters(nanobind::module_& m);
void RegisterClient(nanobind::module_& m);
void RegisterProfiler(nanobind::module_& m);

}  // namespace cpuledger::python
