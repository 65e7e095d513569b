// Python view of src/client: RequestScope (the bill of one sampled request)
// and Recorder (queue, sender thread, spool). No C++ exception crosses into
// Python from the request-path calls: they cannot fail, by construction.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <xxhash.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "client/recorder.h"
#include "client/request_scope.h"
#include "counters/thread_counters.h"
#include "native/bindings.h"
#include "native/profiler.h"
#include "record/codec.h"

namespace nb = nanobind;

namespace cpuledger::python {
namespace {

using client::RequestScope;
using client::SpanKind;

SpanKind KindOf(std::string_view kind) {
  return kind == "db" ? SpanKind::kDb : kind == "cache" ? SpanKind::kCache : SpanKind::kCustom;
}

// PyRequestScope — a RequestScope plus the open span tokens, addressed by
// depth so Python never allocates a token object. A db or cache span named
// at its beginning is left out of the thread's apportioned profile (its
// clock paused, its CPU taken off the profile's figure: profiler.h); custom
// spans are the application's own work and stay in.
class PyRequestScope {
 public:
  PyRequestScope() : scope_(RequestScope::Begin()) {}
  void Resume() { scope_.Resume(); }
  void Suspend() { scope_.Suspend(); }
  size_t SpanBegin(std::string_view kind) {
    Open& open = open_.emplace_back(Open{scope_.SpanBegin(), nullptr});
    if (KindOf(kind) != SpanKind::kCustom) {
      open.paused = Profiler::Active();
      if (open.paused != nullptr) open.paused->PauseClock();
    }
    return open_.size() - 1;
  }
  void SpanEnd(std::string_view kind, size_t handle) {
    if (handle >= open_.size()) return;  // a mismatched end: ignore rather than raise
    const counters::Reading cpu = scope_.SpanEnd(KindOf(kind), kind, open_[handle].token);
    // The profiler paused at the beginning, if still the thread's (else it was
    // disabled since, which ended the pause).
    Profiler* paused = open_[handle].paused;
    if (paused != nullptr && paused == Profiler::Active()) paused->ResumeClock(cpu);
    open_.resize(handle);
  }
  nb::dict Bill() const {
    const counters::Reading& r = scope_.accumulated();
    nb::dict d;
    d["cpu_ns"] = r.cpu_ns;
    d["instructions"] = r.instructions;
    d["source"] = std::string(counters::SourceName(r.source));
    return d;
  }
  RequestScope& scope() { return scope_; }

 private:
  struct Open {  // one span begun and not yet ended
    client::SpanToken token;
    Profiler* paused;  // the profiler this span paused, or null
  };
  RequestScope scope_;
  std::vector<Open> open_;
};

// ProfileFigure() — what a request's apportioned profile shares out: its
// bill in the profile's unit (instructions where the bill has them, else
// cpu_ns) less the CPU of the db and cache spans the profile left out.
// The profiler's own figure when the bill is not in its unit.
uint64_t ProfileFigure(const record::CpuBill& bill, const Profiler& p) {
  uint64_t billed = 0;
  if (p.unit() == "instructions" && bill.has_instructions())
    billed = bill.instructions();
  else if (p.unit() == "cpu_ns")
    billed = bill.cpu_ns();
  else
    return Profiler::kOwnFigure;
  return billed > p.excluded_cost() ? billed - p.excluded_cost() : 0;
}

// HashUser() — the active-user key as stored: XXH3-64 of the raw key, seeded
// with the deployment's salt, in hex. Raw user ids never leave the process.
std::string HashUser(std::string_view key, uint64_t salt) {
  if (key.empty()) return {};
  char buf[17];
  std::snprintf(
      buf, sizeof(buf), "%016llx",
      static_cast<unsigned long long>(XXH3_64bits_withSeed(key.data(), key.size(), salt)));
  return buf;
}

class PyRecorder {
 public:
  PyRecorder(const std::string& server_url, const std::string& token, const std::string& spool_dir,
             const std::string& service, const std::string& host, const std::string& cluster,
             const std::string& region, const std::string& commit, size_t queue_capacity,
             size_t batch_max_records, int batch_max_delay_ms, const std::string& user_salt,
             const std::string& sender_id)
      : salt_(XXH3_64bits(user_salt.data(), user_salt.size())) {
    client::RecorderOptions o;
    o.server_url = server_url;
    o.token = token;
    o.spool_dir = spool_dir;
    o.service = service;
    o.host = host;
    o.cluster = cluster;
    o.region = region;
    o.commit = commit;
    o.queue_capacity = queue_capacity;
    o.batch_max_records = batch_max_records;
    o.batch_max_delay = std::chrono::milliseconds(batch_max_delay_ms);
    o.sender_id = sender_id;
    Result<std::unique_ptr<client::Recorder>> r = client::Recorder::Start(o);
    if (!r.ok()) throw std::invalid_argument(r.status().message());
    recorder_ = std::move(*r);
    service_ = service;
    host_ = host;
    cluster_ = cluster;
    region_ = region;
    commit_ = commit;
  }

  void Count(std::string_view endpoint, std::string_view user_key, bool sampled) {
    recorder_->Count(std::string(endpoint), HashUser(user_key, salt_), sampled);
  }

  // Submit() — `profile`: None, a serialized record.Profile, or a disabled
  // Profiler (an apportioned one is shared the request's bill here, after
  // the bill is final: ProfileFigure()). A Profiler's profile travels
  // encoded (Profiler::Encode()) as the record's field `profile` in its
  // unknown fields: the same bytes on the wire as a set `profile`, without
  // building a message per node on the request thread; within the limits,
  // it is valid by construction (the sender's ValidateRecord does not see it).
  // It names its functions by their process-wide ids, which the batch lists
  // once (client/process_functions.h).
  bool Submit(PyRequestScope& scope, std::string_view endpoint, std::string_view method,
              uint32_t status, const nb::dict& flags, std::string_view user_key, double sample_rate,
              std::string_view request_id, nb::handle profile) {
    record::RequestRecord r;
    if (!scope.scope().Finish(r)) return false;
    Profiler* profiler = nullptr;
    std::vector<uint32_t> profile_functions;  // the ProcessFunctions ids it names
    // A Profiler still running is left out rather than stopped here.
    if (nb::try_cast<Profiler*>(profile, profiler) && profiler != nullptr && !profiler->enabled()) {
      const uint64_t cost =
          profiler->apportioned() ? ProfileFigure(r.cpu(), *profiler) : Profiler::kOwnFigure;
      if (profiler->nodes().size() <= record::kMaxProfileNodes &&
          profiler->functions().size() <= record::kMaxProfileFunctions) {
        r.GetReflection()
            ->MutableUnknownFields(&r)
            ->AddLengthDelimited(record::RequestRecord::kProfileFieldNumber)
            ->assign(profiler->Encode(cost, &profile_functions));
      } else {
        profiler->ToProto(r.mutable_profile(), cost);  // the sender drops it as too large
      }
    } else if (nb::isinstance<nb::bytes>(profile)) {
      // A profile that does not parse is left out; the bill still goes.
      nb::bytes bytes = nb::borrow<nb::bytes>(profile);
      if (bytes.size() > 0 &&
          !r.mutable_profile()->ParseFromArray(bytes.c_str(), static_cast<int>(bytes.size())))
        r.clear_profile();
    }
    r.set_service(service_);
    r.set_endpoint(std::string(endpoint));
    r.set_method(std::string(method));
    r.set_status(status);
    r.set_host(host_);
    r.set_cluster(cluster_);
    r.set_region(region_);
    r.set_commit(commit_);
    r.set_user(HashUser(user_key, salt_));
    r.set_sample_rate(sample_rate);
    r.set_request_id(std::string(request_id));
    auto* out = r.mutable_flags();
    for (auto [k, v] : flags) {
      if (!nb::isinstance<nb::str>(k) || !nb::isinstance<nb::str>(v)) continue;
      (*out)[nb::cast<std::string>(k)] = nb::cast<std::string>(v);
    }
    return recorder_->Submit(std::move(r), std::move(profile_functions));
  }

  bool Flush(double timeout_s) {
    nb::gil_scoped_release release;
    return recorder_->Flush(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000))).ok();
  }
  bool Close(double timeout_s) {
    nb::gil_scoped_release release;
    return recorder_->Close(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000))).ok();
  }
  void AfterForkInChild() { recorder_->AfterForkInChild(); }

  nb::dict Stats() const {
    client::RecorderStats s = recorder_->stats();
    nb::dict d;
    d["submitted"] = s.submitted;
    d["sent"] = s.sent;
    d["spooled"] = s.spooled;
    d["replayed"] = s.replayed;
    d["dropped_queue_full"] = s.dropped_queue_full;
    d["dropped_spool_full"] = s.dropped_spool_full;
    d["dropped_rejected"] = s.dropped_rejected;
    d["batches_sent"] = s.batches_sent;
    d["send_failures"] = s.send_failures;
    d["spool_bytes"] = s.spool_bytes;
    d["counted"] = s.counted;
    d["last_error"] = s.last_error;
    return d;
  }
  std::string sender_id() const { return recorder_->sender_id(); }

 private:
  uint64_t salt_;
  std::unique_ptr<client::Recorder> recorder_;
  std::string service_, host_, cluster_, region_, commit_;
};

}  // namespace

void RegisterClient(nb::module_& m) {
  m.def(
      "configure_counters",
      [](const std::string& source) {
        Result<counters::SourceRequest> request = counters::ParseSourceRequest(source);
        if (!request.ok()) throw std::invalid_argument(request.status().message());
        counters::Options o;
        o.source = *request;
        counters::SetThreadCounterOptions(o);
      },
      nb::arg("source"),
      "Set the counter source threads open on first use ('auto', 'hardware', ...).");
  m.def(
      "thread_counter_source",
      []() -> std::string {
        Result<counters::CounterSet*> set = counters::ThisThreadCounters();
        if (!set.ok()) throw std::runtime_error(set.status().ToString());
        return std::string(counters::SourceName((*set)->source()));
      },
      "The source the calling thread's counters use.");
  m.def("hash_user", [](std::string_view key, std::string_view salt) {
    return HashUser(key, XXH3_64bits(salt.data(), salt.size()));
  });

  nb::class_<PyRequestScope>(m, "RequestScope", "The CPU bill of one sampled request.")
      .def(nb::init<>())
      .def("resume", &PyRequestScope::Resume, "A step of the request starts on this thread.")
      .def("suspend", &PyRequestScope::Suspend, "The step ends.")
      .def("span_begin", &PyRequestScope::SpanBegin, nb::arg("kind") = "",
           "A span starts; `kind` \"db\" or \"cache\" leaves it out of the thread's apportioned"
           " profile (custom names, or none, keep it in).")
      .def("span_end", &PyRequestScope::SpanEnd, nb::arg("kind"), nb::arg("handle"))
      .def("bill", &PyRequestScope::Bill);

  nb::class_<PyRecorder>(m, "Recorder", "Queue, sender thread and spool of one worker process.")
      .def(nb::init<const std::string&, const std::string&, const std::string&, const std::string&,
                    const std::string&, const std::string&, const std::string&, const std::string&,
                    size_t, size_t, int, const std::string&, const std::string&>(),
           nb::arg("server_url"), nb::arg("token") = "", nb::arg("spool_dir") = "",
           nb::arg("service") = "", nb::arg("host") = "", nb::arg("cluster") = "",
           nb::arg("region") = "", nb::arg("commit") = "", nb::arg("queue_capacity") = 10000,
           nb::arg("batch_max_records") = 1000, nb::arg("batch_max_delay_ms") = 1000,
           nb::arg("user_salt") = "", nb::arg("sender_id") = "")
      .def("count", &PyRecorder::Count, nb::arg("endpoint"), nb::arg("user_key"),
           nb::arg("sampled"))
      .def("submit", &PyRecorder::Submit, nb::arg("scope"), nb::arg("endpoint"), nb::arg("method"),
           nb::arg("status"), nb::arg("flags"), nb::arg("user_key"), nb::arg("sample_rate"),
           nb::arg("request_id"), nb::arg("profile").none() = nb::none())
      .def("flush", &PyRecorder::Flush, nb::arg("timeout_s") = 5.0)
      .def("close", &PyRecorder::Close, nb::arg("timeout_s") = 5.0)
      .def("after_fork_in_child", &PyRecorder::AfterForkInChild)
      .def("stats", &PyRecorder::Stats)
      .def_prop_ro("sender_id", &PyRecorder::sender_id);
}

}  // namespace cpuledger::python
