// Python view of src/counters: a per-thread CounterSet.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "counters/counters.h"
#include "native/bindings.h"

namespace nb = nanobind;

namespace cpuledger::python {
namespace {

using counters::CounterSet;
using counters::kNotAvailable;
using counters::Reading;

nb::object CountOrNone(uint64_t v) { return v == kNotAvailable ? nb::none() : nb::cast(v); }

// Counters — a CounterSet bound to the thread that made it. Reading it from
// another thread would read that thread's PMU state, so it is refused.
class Counters {
 public:
  explicit Counters(const std::string& source) : owner_(std::this_thread::get_id()) {
    Result<counters::SourceRequest> request =
        source.empty() ? counters::SourceRequestFromEnv() : counters::ParseSourceRequest(source);
    if (!request.ok()) throw std::invalid_argument(request.status().message());
    counters::Options options;
    options.source = *request;
    Result<CounterSet> set = CounterSet::Open(options);
    if (!set.ok()) throw std::runtime_error(set.status().ToString());
    set_.emplace(std::move(*set));
  }

  nb::dict Read() {
    CheckThread();
    Reading r = set_->Read();
    nb::dict d;
    d["instructions"] = CountOrNone(r.instructions);
    d["cycles"] = CountOrNone(r.cycles);
    d["cpu_ns"] = r.cpu_ns;
    d["source"] = std::string(counters::SourceName(r.source));
    d["kernel_included"] = r.kernel_included;
    d["multiplex_scale"] = r.multiplex_scale;
    return d;
  }

  uint64_t ReadPrimary() {
    CheckThread();
    return set_->ReadPrimary();
  }

  std::string_view source() const { return counters::SourceName(set_->source()); }
  std::string_view method() const { return counters::ReadMethodName(set_->method()); }
  std::string_view primary_unit() const { return set_->primary_unit(); }
  std::vector<std::string> fallbacks() const {
    std::vector<std::string> out;
    for (const auto& a : set_->attempts())
      if (!a.status.ok())
        out.push_back(std::string(counters::SourceName(a.source)) + ": " + a.status.message());
    return out;
  }

 private:
  void CheckThread() const {
    if (std::this_thread::get_id() != owner_)
      throw std::runtime_error("cpuledger.Counters must be read on the thread that created it");
  }
  std::thread::id owner_;
  std::optional<CounterSet> set_;
};

}  // namespace

void RegisterCounters(nb::module_& m) {
  m.def(
      "counter_sources",
      [] {
        std::vector<std::tuple<std::string, int, std::string>> rows;
        for (const counters::SourceInfo& info : counters::kSources)
          rows.emplace_back(std::string(info.name), info.code(), std::string(info.unit));
        return rows;
      },
      "The one table of counter sources (src/counters kSources), in fallback order: "
      "(name, store code, unit). COUNTER_SOURCE takes 'auto' or a name.");
  nb::class_<Counters>(m, "Counters",
                       "CPU counters of the calling thread, from the best source available.")
      .def(nb::init<const std::string&>(), nb::arg("source") = "",
           "source: 'auto' or a name of counter_sources(), or '' for "
           "$CPULEDGER_COUNTER_SOURCE (default auto)")
      .def("read", &Counters::Read,
           "Cumulative counts of this thread: a dict with "
           "instructions, cycles (None without a PMU), cpu_ns, source, kernel_included, "
           "multiplex_scale")
      .def("read_primary", &Counters::ReadPrimary,
           "Only the primary count (instructions with a PMU, else ns)")
      .def_prop_ro("source", &Counters::source)
      .def_prop_ro("method", &Counters::method)
      .def_prop_ro("primary_unit", &Counters::primary_unit)
      .def_prop_ro("fallbacks", &Counters::fallbacks,
                   "Why each better source was not used, in fallback order");
}

}  // namespace cpuledger::python
