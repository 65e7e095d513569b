// bench/client_bench.cc — what the request path pays in src/client: the bill
// of one request (RequestScope Begin + Finish) and queueing its record
// (Recorder::Submit), beside one counter Read() of the thread's source.
//
// The figures back the COST lines of request_scope.h and recorder.h: a scope
// is about two counter reads plus a few clock reads; Submit is a short mutex
// hold and a move, far below a read() syscall. The table at the end prints
// each against the thread's counter read.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/recorder.h"
#include "client/request_scope.h"
#include "counters/thread_counters.h"
#include "record/codec.h"

namespace {

using cpuledger::client::Recorder;
using cpuledger::client::RecorderOptions;
using cpuledger::client::RequestScope;
using cpuledger::record::RequestRecord;

// BM_CounterRead — one Read() of this thread's set: the unit the others are priced in.
void BM_CounterRead(benchmark::State& state) {
  cpuledger::Result<cpuledger::counters::CounterSet*> set =
      cpuledger::counters::ThisThreadCounters();
  if (!set.ok()) {
    state.SkipWithError(set.status().message().c_str());
    return;
  }
  for (auto _ : state) {
    cpuledger::counters::Reading r = (*set)->Read();
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel(std::string(cpuledger::counters::SourceName((*set)->source())));
}
BENCHMARK(BM_CounterRead);

// BM_RequestScope — Begin() and Finish() of a request without spans, into a
// reused record (as the binding does per sampled request).
void BM_RequestScope(benchmark::State& state) {
  RequestRecord record;
  for (auto _ : state) {
    RequestScope scope = RequestScope::Begin();
    benchmark::DoNotOptimize(scope.Finish(record));
  }
}
BENCHMARK(BM_RequestScope);

// TypicalRecord() — a sampled request as the middleware fills it: dimensions,
// a bill, db and cache spans, two flags; no profile.
RequestRecord TypicalRecord() {
  RequestRecord r;
  r.set_start_time_unix_us(1'733'300'000'000'000);
  r.set_wall_us(48'000);
  r.set_service("shop");
  r.set_endpoint("/products/<int:id>/");
  r.set_method("GET");
  r.set_status(200);
  r.set_host("web-17");
  r.set_cluster("east-a");
  r.set_region("us-east");
  r.set_commit("b7e41d0c2a9f");
  r.set_user("5f1c0e2d9a7b3c41");
  r.set_request_id("9b2e4c7a-1f3d-4e8b-a6c5-2d7f0e9b1a34");
  r.set_sample_rate(0.01);
  (*r.mutable_flags())["new_search"] = "on";
  (*r.mutable_flags())["checkout_v2"] = "off";
  r.mutable_cpu()->set_cpu_ns(21'000'000);
  r.mutable_cpu()->set_counter_source("thread_cputime");
  r.mutable_db()->set_wall_us(12'000);
  r.mutable_db()->set_calls(7);
  r.mutable_cache()->set_wall_us(900);
  r.mutable_cache()->set_calls(3);
  return r;
}

// BM_RecorderSubmit — Submit() of a typical record while the sender thread
// runs. The records are built before the timing; the queue holds them all, so
// every Submit is a queued record, not a drop. The server is a closed port
// and there is no spool: the sender's failures cost the request path nothing.
void BM_RecorderSubmit(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.max_iterations);
  RecorderOptions o;
  o.server_url = "http://127.0.0.1:9";  // discard port: nobody answers
  o.queue_capacity = n + 1;
  o.service = "shop";
  o.host = "web-17";
  cpuledger::Result<std::unique_ptr<Recorder>> recorder = Recorder::Start(o);
  if (!recorder.ok()) {
    state.SkipWithError(recorder.status().message().c_str());
    return;
  }
  std::vector<RequestRecord> records(n, TypicalRecord());
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize((*recorder)->Submit(std::move(records[i++])));
  state.counters["dropped"] = static_cast<double>((*recorder)->stats().dropped_queue_full);
  (void)(*recorder)->Close(std::chrono::milliseconds(100));
}
// Fixed iterations: the records are made up front, one per Submit.
BENCHMARK(BM_RecorderSubmit)->Iterations(200'000)->Repetitions(3)->ReportAggregatesOnly();

// BM_Floor_MutexAndMove — what recorder.h says Submit() is (a mutex hold and
// a move of the record into a vector), without the recorder or its sender:
// the floor BM_RecorderSubmit is held to. Same records, same count.
void BM_Floor_MutexAndMove(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.max_iterations);
  std::mutex mu;
  std::vector<RequestRecord> queue;
  std::vector<RequestRecord> records(n, TypicalRecord());
  size_t i = 0;
  for (auto _ : state) {
    std::lock_guard lock(mu);
    queue.push_back(std::move(records[i++]));
  }
  benchmark::DoNotOptimize(queue.data());
}
BENCHMARK(BM_Floor_MutexAndMove)->Iterations(200'000)->Repetitions(3)->ReportAggregatesOnly();

// ProfiledBatch() — 250 records, each with a profile of one of 5 pages: 640
// nodes over 300 functions of a 1,000-function code base (the shape of the
// shop's profiles in bench/ingest/profiled_ingest_bench.py).
cpuledger::record::Batch ProfiledBatch() {
  cpuledger::record::Batch batch;
  for (int i = 0; i < 250; ++i) {
    RequestRecord* r = batch.add_records();
    *r = TypicalRecord();
    cpuledger::record::Profile& p = *r->mutable_profile();
    p.set_unit("cpu_ns");
    p.set_source("thread_cputime");
    p.set_mode("fast");
    const int page = i % 5;
    for (int f = 0; f < 300; ++f) {
      cpuledger::record::ProfileFunction* fn = p.add_functions();
      const int id = (page * 170 + f) % 1000;
      fn->set_file("/srv/shop/.venv/lib/python3.11/site-packages/django/module_" +
                   std::to_string(id % 97) + ".py");
      fn->set_line(static_cast<uint32_t>(10 + id));
      fn->set_name("function_" + std::to_string(id));
    }
    p.add_nodes();
    for (uint32_t n = 1; n < 640; ++n) {
      cpuledger::record::ProfileNode* node = p.add_nodes();
      node->set_parent(n < 20 ? n - 1 : (n * 7) % n);
      node->set_function(n % 300);
      node->set_calls(1 + n % 3);
      node->set_self_cost(1000 + n);
      node->set_total_cost(5000 + n);
    }
  }
  return batch;
}

// BM_SerializeProfiledBatch — what the recorder's sender thread spends per
// profiled record to put a batch on the wire: /0 serialized as it is (every
// profile with its own function table), /1 with ShareProfileFunctions()
// first, as the recorder sends it. Per record: the time over 250.
void BM_SerializeProfiledBatch(benchmark::State& state) {
  const cpuledger::record::Batch original = ProfiledBatch();
  std::string bytes;
  for (auto _ : state) {
    state.PauseTiming();
    cpuledger::record::Batch batch = original;
    state.ResumeTiming();
    if (state.range(0) == 1) cpuledger::record::ShareProfileFunctions(&batch);
    batch.SerializeToString(&bytes);
    benchmark::DoNotOptimize(bytes.data());
  }
  state.counters["bytes/record"] = static_cast<double>(bytes.size()) / 250;
  state.counters["us/record"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 250,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SerializeProfiledBatch)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// RatioReporter — the console output, then each cost against one counter read.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const std::string name = run.benchmark_name();
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name != "median") continue;
      ns_[name.substr(0, name.find('/'))] = run.GetAdjustedCPUTime();
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    const double read = ns_["BM_CounterRead"];
    std::printf("\n%-22s %10s %12s %s\n", "cost", "ns", "x read", "claim (header)");
    Row("BM_CounterRead", read, "1 read");
    Row("BM_RequestScope", read, "~2 reads + clock reads (request_scope.h)");
    Row("BM_Floor_MutexAndMove", read, "-");
    Row("BM_RecorderSubmit", read, "a mutex hold and a move (recorder.h): near the floor above");
  }

 private:
  void Row(const std::string& name, double read, const char* claim) {
    auto it = ns_.find(name);
    if (it == ns_.end()) return;
    std::printf("%-22s %10.1f %12.2f %s\n", name.c_str(), it->second,
                read > 0 ? it->second / read : 0.0, claim);
  }
  std::map<std::string, double> ns_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
