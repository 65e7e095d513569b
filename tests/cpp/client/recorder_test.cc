// Tests for src/client/recorder.h against a real HTTP ingest server in the
// test process: batching, sequences, tallies, spool and replay, drops.
#include "client/recorder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "client/process_functions.h"
#include "client/recorder_testing.h"
#include "client_test_util.h"
#include "ingest_test_server.h"
#include "record/hll.h"

namespace cpuledger::client {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::IngestTestServer;
using test::MakeRecord;
using test::TempDir;
using Mode = IngestTestServer::Mode;

// FastHooks() — retries within milliseconds, so tests do not wait.
testing::RecorderHooks FastHooks() {
  testing::RecorderHooks hooks;
  hooks.initial_backoff = 10ms;
  hooks.probe_interval = 50ms;
  return hooks;
}

// Strictly increasing sequences per sender, in arrival order.
void ExpectSequencesIncrease(const std::vector<IngestTestServer::Stored>& stored) {
  std::map<std::string, uint64_t> last;
  for (const IngestTestServer::Stored& s : stored) {
    auto [it, first] = last.emplace(s.sender, s.sequence);
    if (!first) {
      EXPECT_GT(s.sequence, it->second) << "sender " << s.sender;
      it->second = s.sequence;
    }
  }
}

std::vector<std::string> Ids(int from, int to) {
  std::vector<std::string> ids;
  for (int i = from; i < to; ++i) ids.push_back("r" + std::to_string(i));
  return ids;
}

// Files (not .lock) in a spool directory.
size_t SpoolFiles(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string()[0] != '.') ++n;
  return n;
}

class ClientRecorder : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()); }

  RecorderOptions Options() const {
    RecorderOptions o;
    o.server_url = server_.url();
    o.service = "shop";
    o.host = "web-1";
    o.cluster = "eu";
    o.region = "eu-west";
    o.commit = "abc123";
    o.batch_max_delay = 20ms;
    o.http_timeout = 1000ms;
    o.retry_backoff_max = 50ms;
    return o;
  }

  static std::unique_ptr<Recorder> StartRecorder(const RecorderOptions& o,
                                                 testing::RecorderHooks hooks = FastHooks()) {
    testing::ScopedRecorderHooks scoped(std::move(hooks));
    Result<std::unique_ptr<Recorder>> r = Recorder::Start(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }

  static void SubmitRange(Recorder& rec, int from, int to) {
    for (int i = from; i < to; ++i) ASSERT_TRUE(rec.Submit(MakeRecord("r" + std::to_string(i))));
  }

  IngestTestServer server_;
  TempDir spool_;
};

TEST_F(ClientRecorder, StartValidatesOptions) {
  auto code = [](const RecorderOptions& o) { return Recorder::Start(o).status().code(); };
  RecorderOptions o = Options();
  o.server_url = "";
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Options();
  o.server_url = "127.0.0.1:8750";
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Options();
  o.service = "";
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Options();
  o.sender_id = "../etc";
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Options();
  o.batch_max_records = 0;
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Options();
  o.queue_capacity = 0;
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Options();
  o.host = std::string(300, 'h');  // the server refuses dimensions over 256 bytes
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Options();
  std::ofstream(spool_.path() + "/file") << "x";
  o.spool_dir = spool_.path() + "/file/spool";
  EXPECT_EQ(code(o), StatusCode::kIo);

  // A chosen sender id can be live in one process only (its spool lock).
  o = Options();
  o.spool_dir = spool_.path();
  o.sender_id = "fixed";
  std::unique_ptr<Recorder> first = StartRecorder(o);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->sender_id(), "fixed");
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
}

TEST_F(ClientRecorder, GeneratedSenderIdsAreUnique) {
  std::unique_ptr<Recorder> a = StartRecorder(Options());
  std::unique_ptr<Recorder> b = StartRecorder(Options());
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->sender_id(), b->sender_id());
  EXPECT_EQ(a->sender_id().rfind("web-1-", 0), 0u) << a->sender_id();
}

TEST_F(ClientRecorder, BatchesBySize) {
  RecorderOptions o = Options();
  o.batch_max_records = 10;
  o.batch_max_delay = 60s;  // only size can trigger
  // The sender going to sleep with the last 5 queued once all 25 are in is
  // the event that shows the partial batch waits for its age (it follows
  // every full batch's send). Before all are in, 5 queued can also be a
  // moment between the full batches on a loaded machine; a sleep that saw
  // it then ends within the recorder's idle wake (1 s) and reports again.
  std::atomic<bool> submitted_all{false};
  std::atomic<bool> waits_with_five{false};
  testing::RecorderHooks hooks = FastHooks();
  hooks.on_sender_wait = [&](size_t queued) {
    if (queued == 5 && submitted_all) waits_with_five = true;
  };
  std::unique_ptr<Recorder> rec = StartRecorder(o, hooks);
  SubmitRange(*rec, 0, 25);
  submitted_all = true;
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return waits_with_five.load(); }));
  std::vector<IngestTestServer::Stored> stored = server_.stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].batch.records_size(), 10);
  EXPECT_EQ(stored[1].batch.records_size(), 10);
  ASSERT_TRUE(rec->Flush(5s).ok());
  stored = server_.stored();
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored[2].batch.records_size(), 5);
  EXPECT_EQ(server_.request_ids(), Ids(0, 25));
  const RecorderStats s = rec->stats();
  EXPECT_EQ(s.submitted, 25u);
  EXPECT_EQ(s.sent, 25u);
  EXPECT_EQ(s.batches_sent, 3u);
}

// A batch's profiles go out listing each function once, for the whole batch.
TEST_F(ClientRecorder, ProfilesShareTheirBatchsFunctionTable) {
  RecorderOptions o = Options();
  o.batch_max_records = 3;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  for (int i = 0; i < 3; ++i) {
    record::RequestRecord r = MakeRecord("p" + std::to_string(i));
    record::Profile& p = *r.mutable_profile();
    p.set_unit("cpu_ns");
    p.set_source("thread_cputime");
    p.set_mode("exact");
    for (const char* name : {"view", "helper"}) {
      record::ProfileFunction* f = p.add_functions();
      f->set_file("app.py");
      f->set_line(i == 2 ? 99 : 10);  // the third profile's view is another function
      f->set_name(name);
    }
    p.add_nodes();
    p.add_nodes()->set_function(0);
    record::ProfileNode* leaf = p.add_nodes();
    leaf->set_parent(1);
    leaf->set_function(1);
    ASSERT_TRUE(rec->Submit(std::move(r)));
  }
  ASSERT_TRUE(rec->Flush(5s).ok());
  std::vector<IngestTestServer::Stored> stored = server_.stored();
  ASSERT_EQ(stored.size(), 1u);
  const record::Batch& b = stored[0].batch;
  // app.py:10:view, app.py:10:helper, app.py:99:view, app.py:99:helper
  EXPECT_EQ(b.functions_size(), 4);
  for (const record::RequestRecord& r : b.records()) {
    EXPECT_TRUE(r.profile().functions_in_batch());
    EXPECT_EQ(r.profile().functions_size(), 0);
    const record::ProfileFunction& view =
        b.functions(static_cast<int>(r.profile().nodes(1).function()));
    EXPECT_EQ(view.name(), "view");
    EXPECT_EQ(view.line(), r.request_id() == "p2" ? 99u : 10u);
  }
}

// A profile that names its functions by ProcessFunctions ids (as the
// profiler encodes them) goes out in a batch that lists those entries at
// their ids, and nothing else there.
TEST_F(ClientRecorder, ProfilesNamingProcessFunctionsGetTheirEntries) {
  const auto add = [](const char* name, uint32_t line) {
    record::ProfileFunction f;
    f.set_file("app.py");
    f.set_line(line);
    f.set_name(name);
    std::optional<uint32_t> id = ProcessFunctions::Get().Add(f.SerializeAsString());
    EXPECT_TRUE(id.has_value());
    return id.value_or(0);
  };
  const uint32_t unused = add("never_called", 1);
  const uint32_t view = add("view", 10), helper = add("helper", 20);
  ASSERT_LT(unused, view);
  RecorderOptions o = Options();
  o.batch_max_records = 2;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  for (int i = 0; i < 2; ++i) {
    record::RequestRecord r = MakeRecord("q" + std::to_string(i));
    record::Profile p;
    p.set_unit("cpu_ns");
    p.set_source("thread_cputime");
    p.set_mode("fast");
    p.set_functions_in_batch(true);
    p.add_nodes();
    p.add_nodes()->set_function(view);
    record::ProfileNode* leaf = p.add_nodes();
    leaf->set_parent(1);
    leaf->set_function(helper);
    // As the binding carries a profiler's encoding: the record's field, unparsed.
    r.GetReflection()
        ->MutableUnknownFields(&r)
        ->AddLengthDelimited(record::RequestRecord::kProfileFieldNumber)
        ->assign(p.SerializeAsString());
    ASSERT_TRUE(rec->Submit(std::move(r), {view, helper}));
  }
  ASSERT_TRUE(rec->Flush(5s).ok());
  std::vector<IngestTestServer::Stored> stored = server_.stored();
  ASSERT_EQ(stored.size(), 1u) << rec->stats().last_error;
  const record::Batch& b = stored[0].batch;
  ASSERT_EQ(b.functions_size(), static_cast<int>(std::max(view, helper)) + 1);
  EXPECT_EQ(b.functions(static_cast<int>(view)).name(), "view");
  EXPECT_EQ(b.functions(static_cast<int>(helper)).line(), 20u);
  EXPECT_EQ(b.functions(static_cast<int>(unused)).name(), "");  // listed empty: nobody uses it
  for (const record::RequestRecord& r : b.records()) {
    EXPECT_TRUE(r.profile().functions_in_batch());
    EXPECT_EQ(b.functions(static_cast<int>(r.profile().nodes(2).function())).name(), "helper");
  }
}

TEST_F(ClientRecorder, BatchesByDelay) {
  RecorderOptions o = Options();
  o.batch_max_records = 1000;
  o.batch_max_delay = 100ms;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  const auto t0 = std::chrono::steady_clock::now();
  SubmitRange(*rec, 0, 3);
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return server_.records() == 3; }));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 95ms);
  EXPECT_LT(waited, 2s);
  ASSERT_EQ(server_.stored().size(), 1u);
  EXPECT_EQ(server_.stored()[0].sender, rec->sender_id());
}

TEST_F(ClientRecorder, SequencesStrictlyIncrease) {
  RecorderOptions o = Options();
  o.batch_max_records = 7;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  for (int chunk = 0; chunk < 5; ++chunk) {
    SubmitRange(*rec, chunk * 10, chunk * 10 + 10);
    rec->Count("/items/<id>/", "u", true);
    ASSERT_TRUE(rec->Flush(5s).ok());
  }
  const std::vector<IngestTestServer::Stored> stored = server_.stored();
  ASSERT_GE(stored.size(), 10u);
  for (const auto& s : stored) EXPECT_EQ(s.sender, rec->sender_id());
  ExpectSequencesIncrease(stored);
  EXPECT_EQ(server_.request_ids(), Ids(0, 50));
  EXPECT_EQ(server_.duplicates(), 0u);
}

TEST_F(ClientRecorder, TalliesFollowTheInjectedClockAcrossMinutes) {
  constexpr int64_t kMinute = 1'699'999'980;  // a multiple of 60
  std::atomic<int64_t> now_ms{kMinute * 1000 + 5'000};
  testing::RecorderHooks hooks = FastHooks();
  hooks.now_unix_ms = [&now_ms] { return now_ms.load(); };
  std::unique_ptr<Recorder> rec = StartRecorder(Options(), hooks);

  rec->Count("/a", "u1", true);
  rec->Count("/a", "u2", false);
  rec->Count("/a", "u1", false);
  rec->Count("/b", "", false);
  for (int u = 0; u < 500; ++u) rec->Count("/c", "user-" + std::to_string(u), false);
  now_ms += 60'000;
  rec->Count("/a", "u3", false);  // the first count of the next minute ends the last one

  auto tallies = [&] {
    std::vector<record::WorkerTally> out;
    for (const auto& s : server_.stored())
      for (const auto& t : s.batch.tallies()) out.push_back(t);
    return out;
  };
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return tallies().size() == 1; }));
  record::WorkerTally t = tallies()[0];
  EXPECT_EQ(t.minute_unix(), kMinute);
  EXPECT_EQ(t.service(), "shop");
  EXPECT_EQ(t.host(), "web-1");
  EXPECT_EQ(t.cluster(), "eu");
  EXPECT_EQ(t.region(), "eu-west");
  EXPECT_EQ(t.commit(), "abc123");
  EXPECT_EQ(t.sender(), rec->sender_id());
  std::map<std::string, std::pair<uint64_t, uint64_t>> e;
  for (const auto& c : t.endpoints()) e[c.endpoint()] = {c.requests(), c.sampled()};
  EXPECT_EQ(e.size(), 3u);
  EXPECT_EQ(e["/a"], std::make_pair(uint64_t{3}, uint64_t{1}));
  EXPECT_EQ(e["/b"], std::make_pair(uint64_t{1}, uint64_t{0}));
  EXPECT_EQ(e["/c"].first, 500u);
  Result<record::HyperLogLog> hll =
      record::HyperLogLog::FromRegisters(t.active_users_hll(), static_cast<int>(t.hll_precision()));
  ASSERT_TRUE(hll.ok());
  EXPECT_NEAR(hll->Estimate(), 502, 502 * 0.05);

  // Flush sends the current minute so far, and counting goes on in a fresh
  // tally of the same minute (the server sums them).
  ASSERT_TRUE(rec->Flush(5s).ok());
  ASSERT_EQ(tallies().size(), 2u);
  EXPECT_EQ(tallies()[1].minute_unix(), kMinute + 60);
  ASSERT_EQ(tallies()[1].endpoints_size(), 1);
  EXPECT_EQ(tallies()[1].endpoints(0).requests(), 1u);
  rec->Count("/d", "", false);
  ASSERT_TRUE(rec->Flush(5s).ok());
  ASSERT_EQ(tallies().size(), 3u);
  EXPECT_EQ(tallies()[2].minute_unix(), kMinute + 60);
  ASSERT_EQ(tallies()[2].endpoints_size(), 1);
  EXPECT_EQ(tallies()[2].endpoints(0).endpoint(), "/d");

  // The sender notices a minute ending by itself, without another Count().
  rec->Count("/e", "", false);
  now_ms += 60'000;
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return tallies().size() == 4; }, 5s));
  EXPECT_EQ(tallies()[3].minute_unix(), kMinute + 60);
  EXPECT_EQ(tallies()[3].endpoints(0).endpoint(), "/e");
  EXPECT_EQ(rec->stats().counted, 507u);
}

TEST_F(ClientRecorder, FlushSendsEverythingQueued) {
  RecorderOptions o = Options();
  o.batch_max_delay = 60s;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  SubmitRange(*rec, 0, 7);
  rec->Count("/items/<id>/", "u", true);
  ASSERT_TRUE(rec->Flush(5s).ok());
  EXPECT_EQ(server_.request_ids(), Ids(0, 7));
  ASSERT_EQ(server_.stored().size(), 1u);
  EXPECT_EQ(server_.stored()[0].batch.tallies_size(), 1);
  EXPECT_EQ(rec->stats().sent, 7u);
  EXPECT_EQ(rec->stats().last_error, "");
}

TEST_F(ClientRecorder, ServerDownSpoolsThenReplaysExactlyOnceInOrder) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  o.batch_max_records = 10;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  const std::string own = spool_.path() + "/" + rec->sender_id();
  server_.Stop();
  SubmitRange(*rec, 0, 30);
  ASSERT_TRUE(rec->Flush(5s).ok());  // spooled counts as delivered
  SubmitRange(*rec, 30, 50);         // queue behind the spooled ones
  ASSERT_TRUE(rec->Flush(5s).ok());
  RecorderStats s = rec->stats();
  EXPECT_EQ(s.spooled, 50u);
  EXPECT_EQ(s.sent, 0u);
  EXPECT_GE(s.send_failures, 1u);
  EXPECT_GT(s.spool_bytes, 0u);
  EXPECT_NE(s.last_error.find("unreachable"), std::string::npos) << s.last_error;
  EXPECT_EQ(SpoolFiles(own), 5u);

  ASSERT_TRUE(server_.Start());
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return rec->stats().replayed == 50; }));
  EXPECT_EQ(server_.request_ids(), Ids(0, 50));  // each once, in order
  EXPECT_EQ(server_.duplicates(), 0u);
  ExpectSequencesIncrease(server_.stored());
  s = rec->stats();
  EXPECT_EQ(s.spool_bytes, 0u);
  EXPECT_EQ(SpoolFiles(own), 0u);
  // With the spool empty, new batches go straight to the server again.
  SubmitRange(*rec, 50, 55);
  ASSERT_TRUE(rec->Flush(5s).ok());
  EXPECT_EQ(rec->stats().sent, 5u);
  EXPECT_EQ(server_.request_ids(), Ids(0, 55));
  ExpectSequencesIncrease(server_.stored());
}

TEST_F(ClientRecorder, OverloadedServerSpoolsAndReplays) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  server_.set_mode(Mode::kUnavailable);
  server_.set_retry_after("1");  // capped at retry_backoff_max (50 ms)
  SubmitRange(*rec, 0, 10);
  ASSERT_TRUE(rec->Flush(5s).ok());
  EXPECT_EQ(rec->stats().spooled, 10u);
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return server_.requests() >= 3; }));  // retried
  EXPECT_NE(rec->stats().last_error.find("503"), std::string::npos) << rec->stats().last_error;
  server_.set_mode(Mode::kOk);
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return rec->stats().replayed == 10; }));
  EXPECT_EQ(server_.request_ids(), Ids(0, 10));
  EXPECT_EQ(rec->stats().dropped_rejected, 0u);
}

TEST_F(ClientRecorder, DroppedConnectionsSpoolAndReplay) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  server_.set_mode(Mode::kCloseConnection);
  SubmitRange(*rec, 0, 4);
  ASSERT_TRUE(rec->Flush(5s).ok());
  EXPECT_EQ(rec->stats().spooled, 4u);
  EXPECT_EQ(server_.records(), 0u);
  server_.set_mode(Mode::kOk);
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return rec->stats().replayed == 4; }));
  EXPECT_EQ(server_.request_ids(), Ids(0, 4));
}

TEST_F(ClientRecorder, LostAcknowledgementIsStoredOnce) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  o.http_timeout = 200ms;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  server_.set_mode(Mode::kHold);  // stores, then answers too late
  SubmitRange(*rec, 0, 5);
  ASSERT_TRUE(rec->Flush(5s).ok());  // timed out, spooled
  EXPECT_EQ(rec->stats().spooled, 5u);
  EXPECT_EQ(server_.records(), 5u);
  server_.Release();
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return rec->stats().replayed == 5; }));
  EXPECT_GE(server_.duplicates(), 1u);
  EXPECT_EQ(server_.request_ids(), Ids(0, 5));  // stored once
  EXPECT_EQ(rec->stats().spool_bytes, 0u);
}

TEST_F(ClientRecorder, BadRequestIsDroppedAndCounted) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  server_.set_mode(Mode::kBadRequest);
  SubmitRange(*rec, 0, 4);
  Status flushed = rec->Flush(5s);
  EXPECT_EQ(flushed.code(), StatusCode::kInvalidArgument) << flushed.ToString();
  RecorderStats s = rec->stats();
  EXPECT_EQ(s.dropped_rejected, 4u);
  EXPECT_EQ(s.spooled, 0u);  // never retried
  EXPECT_NE(s.last_error.find("400"), std::string::npos) << s.last_error;
  server_.set_mode(Mode::kOk);
  SubmitRange(*rec, 4, 6);
  ASSERT_TRUE(rec->Flush(5s).ok());  // and it keeps going
  EXPECT_EQ(server_.request_ids(), Ids(4, 6));
  EXPECT_EQ(server_.dropped_reported(), 0u);  // refused records are not "dropped" ones
  EXPECT_EQ(server_.requests(), 2u);
}

TEST_F(ClientRecorder, TooLargeIsDroppedAndCounted) {
  std::unique_ptr<Recorder> rec = StartRecorder(Options());
  server_.set_mode(Mode::kTooLarge);
  SubmitRange(*rec, 0, 3);
  EXPECT_FALSE(rec->Flush(5s).ok());
  EXPECT_EQ(rec->stats().dropped_rejected, 3u);
  EXPECT_NE(rec->stats().last_error.find("413"), std::string::npos);
}

TEST_F(ClientRecorder, WrongTokenIsRefusedNotRetried) {
  server_.set_token("secret");
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  o.token = "wrong";
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  SubmitRange(*rec, 0, 2);
  EXPECT_EQ(rec->Flush(5s).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(rec->stats().dropped_rejected, 2u);
  EXPECT_EQ(rec->stats().spooled, 0u);
  EXPECT_NE(rec->stats().last_error.find("401"), std::string::npos);

  o.token = "secret";
  std::unique_ptr<Recorder> good = StartRecorder(o);
  SubmitRange(*good, 2, 4);
  ASSERT_TRUE(good->Flush(5s).ok());
  EXPECT_EQ(server_.request_ids(), Ids(2, 4));
}

TEST_F(ClientRecorder, InvalidRecordsAreDroppedAlone) {
  std::unique_ptr<Recorder> rec = StartRecorder(Options());
  record::RequestRecord bad = MakeRecord("bad");
  bad.set_sample_rate(0);  // the server would refuse the whole batch for it
  ASSERT_TRUE(rec->Submit(std::move(bad)));
  SubmitRange(*rec, 0, 3);
  ASSERT_TRUE(rec->Flush(5s).ok());
  EXPECT_EQ(server_.request_ids(), Ids(0, 3));
  EXPECT_EQ(rec->stats().dropped_rejected, 1u);
  EXPECT_NE(rec->stats().last_error.find("sample_rate"), std::string::npos);
}

TEST_F(ClientRecorder, FullQueueDropsAndTheNextBatchSaysSo) {
  RecorderOptions o = Options();
  o.queue_capacity = 5;
  o.batch_max_records = 1000;
  o.batch_max_delay = 60s;
  o.http_timeout = 5000ms;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  // Keep the sender busy in a POST the server holds.
  server_.set_mode(Mode::kHold);
  ASSERT_TRUE(rec->Submit(MakeRecord("r0")));
  EXPECT_EQ(rec->Flush(1ms).code(), StatusCode::kUnavailable);  // it is still in flight
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return server_.held() == 1; }));

  int accepted = 0, refused = 0;
  for (int i = 1; i <= 8; ++i)
    (rec->Submit(MakeRecord("r" + std::to_string(i))) ? accepted : refused)++;
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(refused, 3);
  RecorderStats s = rec->stats();
  EXPECT_EQ(s.submitted, 6u);
  EXPECT_EQ(s.dropped_queue_full, 3u);

  server_.Release();
  ASSERT_TRUE(rec->Flush(5s).ok());
  const std::vector<IngestTestServer::Stored> stored = server_.stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].batch.dropped_records(), 0u);
  EXPECT_EQ(stored[1].batch.dropped_records(), 3u);
  EXPECT_EQ(server_.request_ids(), Ids(0, 6));
  EXPECT_NE(rec->stats().last_error.find("queue full"), std::string::npos);
}

TEST_F(ClientRecorder, FullSpoolDropsAndTheNextBatchSaysSo) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  o.spool_max_bytes = 1;  // nothing fits
  o.batch_max_records = 3;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  server_.Stop();
  SubmitRange(*rec, 0, 6);
  EXPECT_EQ(rec->Flush(5s).code(), StatusCode::kResourceExhausted);
  RecorderStats s = rec->stats();
  EXPECT_EQ(s.dropped_spool_full, 6u);
  EXPECT_EQ(s.spooled, 0u);
  EXPECT_EQ(s.spool_bytes, 0u);

  ASSERT_TRUE(server_.Start());
  SubmitRange(*rec, 6, 7);
  ASSERT_TRUE(rec->Flush(5s).ok());
  EXPECT_EQ(server_.request_ids(), Ids(6, 7));
  EXPECT_EQ(server_.dropped_reported(), 6u);
}

TEST_F(ClientRecorder, WithoutSpoolFailedBatchesAreDroppedAndCounted) {
  std::unique_ptr<Recorder> rec = StartRecorder(Options());
  server_.Stop();
  SubmitRange(*rec, 0, 4);
  EXPECT_EQ(rec->Flush(5s).code(), StatusCode::kUnavailable);
  EXPECT_EQ(rec->stats().dropped_spool_full, 4u);
  EXPECT_EQ(rec->stats().send_failures, 1u);
  ASSERT_TRUE(server_.Start());
  SubmitRange(*rec, 4, 5);
  ASSERT_TRUE(rec->Flush(5s).ok());
  EXPECT_EQ(server_.request_ids(), Ids(4, 5));
  EXPECT_EQ(server_.dropped_reported(), 4u);
}

TEST_F(ClientRecorder, AdoptsTheSpoolOfADeadSender) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  server_.Stop();
  std::unique_ptr<Recorder> dead = StartRecorder(o);
  const std::string dead_id = dead->sender_id();
  SubmitRange(*dead, 0, 10);
  ASSERT_TRUE(dead->Close(5s).ok());  // spooled; the lock goes with it
  dead.reset();
  EXPECT_GT(SpoolFiles(spool_.path() + "/" + dead_id), 0u);

  // A live sender's spool is not adopted.
  std::unique_ptr<Recorder> live = StartRecorder(o);
  SubmitRange(*live, 100, 103);
  ASSERT_TRUE(live->Flush(5s).ok());
  EXPECT_EQ(live->stats().spooled, 3u);
  EXPECT_GT(live->stats().spool_bytes, 0u);  // the dead sender's files and its own
  std::unique_ptr<Recorder> other = StartRecorder(o);
  EXPECT_EQ(other->stats().spool_bytes, 0u);  // both directories are held by `live`

  ASSERT_TRUE(server_.Start());
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return live->stats().replayed == 13; }));
  std::map<std::string, std::vector<std::string>> by_sender;
  for (const auto& s : server_.stored())
    for (const auto& r : s.batch.records()) by_sender[s.sender].push_back(r.request_id());
  EXPECT_EQ(by_sender[dead_id], Ids(0, 10));  // under the dead sender's own id
  EXPECT_EQ(by_sender[live->sender_id()], Ids(100, 103));
  ExpectSequencesIncrease(server_.stored());
  EXPECT_TRUE(
      IngestTestServer::WaitFor([&] { return !fs::exists(spool_.path() + "/" + dead_id); }));
}

TEST_F(ClientRecorder, ChosenSenderIdNeverReusesSequences) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  o.sender_id = "web-1-fixed";
  {
    std::unique_ptr<Recorder> rec = StartRecorder(o);
    SubmitRange(*rec, 0, 3);
    ASSERT_TRUE(rec->Close(5s).ok());
  }
  server_.Stop();
  {
    std::unique_ptr<Recorder> rec = StartRecorder(o);  // the same id, restarted
    SubmitRange(*rec, 3, 6);
    ASSERT_TRUE(rec->Close(5s).ok());  // left in its spool
  }
  ASSERT_TRUE(server_.Start());
  std::unique_ptr<Recorder> rec = StartRecorder(o);  // replays its own leftovers
  SubmitRange(*rec, 6, 9);
  ASSERT_TRUE(rec->Flush(5s).ok());
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return server_.records() == 9; }));
  EXPECT_EQ(server_.request_ids(), Ids(0, 9));
  EXPECT_EQ(server_.duplicates(), 0u);
  ExpectSequencesIncrease(server_.stored());
}

TEST_F(ClientRecorder, CloseFlushesAndIsIdempotent) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  o.batch_max_delay = 60s;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  const std::string own = spool_.path() + "/" + rec->sender_id();
  EXPECT_TRUE(fs::exists(own + "/.lock"));
  SubmitRange(*rec, 0, 7);
  rec->Count("/items/<id>/", "u", false);
  ASSERT_TRUE(rec->Close(5s).ok());
  EXPECT_EQ(server_.request_ids(), Ids(0, 7));
  ASSERT_EQ(server_.stored().size(), 1u);
  EXPECT_EQ(server_.stored()[0].batch.tallies_size(), 1);
  EXPECT_FALSE(fs::exists(own));  // an empty spool directory goes away
  EXPECT_TRUE(rec->Close(5s).ok());
  EXPECT_TRUE(rec->Flush(5s).ok());
  EXPECT_FALSE(rec->Submit(MakeRecord("late")));
  EXPECT_EQ(rec->stats().dropped_queue_full, 1u);
}

TEST_F(ClientRecorder, DestructorFlushes) {
  RecorderOptions o = Options();
  o.batch_max_delay = 60s;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  SubmitRange(*rec, 0, 3);
  rec.reset();
  EXPECT_EQ(server_.request_ids(), Ids(0, 3));
}

TEST_F(ClientRecorder, ProbeCutsALongBackoffShort) {
  RecorderOptions o = Options();
  o.spool_dir = spool_.path();
  o.retry_backoff_max = 60s;
  testing::RecorderHooks hooks = FastHooks();
  hooks.initial_backoff = 30s;  // without the probe the replay would wait 30 s
  hooks.probe_interval = 20ms;
  std::unique_ptr<Recorder> rec = StartRecorder(o, hooks);
  server_.Stop();
  SubmitRange(*rec, 0, 5);
  ASSERT_TRUE(rec->Flush(5s).ok());
  ASSERT_TRUE(server_.Start());
  ASSERT_TRUE(IngestTestServer::WaitFor([&] { return server_.records() == 5; }, 5s));
  EXPECT_EQ(server_.request_ids(), Ids(0, 5));
}

TEST_F(ClientRecorder, StressCountsAddUp) {
  RecorderOptions o = Options();
  o.queue_capacity = 1000;
  o.batch_max_records = 100;
  o.batch_max_delay = 5ms;
  std::unique_ptr<Recorder> rec = StartRecorder(o);
  constexpr int kThreads = 4, kPerThread = 5000;
  std::atomic<uint64_t> accepted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = std::to_string(t) + "-" + std::to_string(i);
        rec->Count("/e" + std::to_string(i % 7), "user-" + std::to_string(i % 300), i % 2 == 0);
        (rec->Submit(MakeRecord(id, "/e" + std::to_string(i % 7))) ? accepted : refused)++;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  ASSERT_TRUE(rec->Flush(20s).ok());
  const RecorderStats s = rec->stats();
  EXPECT_EQ(accepted + refused, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(s.submitted, accepted.load());
  EXPECT_EQ(s.dropped_queue_full, refused.load());
  EXPECT_EQ(s.sent + s.dropped_queue_full, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(s.counted, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(server_.records(), s.sent);
  EXPECT_EQ(server_.dropped_reported(), s.dropped_queue_full);
  uint64_t tallied = 0, sampled = 0;
  for (const auto& st : server_.stored())
    for (const auto& t : st.batch.tallies())
      for (const auto& e : t.endpoints()) {
        tallied += e.requests();
        sampled += e.sampled();
      }
  EXPECT_EQ(tallied, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(sampled, uint64_t{kThreads * kPerThread / 2});
  ExpectSequencesIncrease(server_.stored());
  EXPECT_EQ(server_.duplicates(), 0u);
}

}  // namespace
}  // namespace cpuledger::client
