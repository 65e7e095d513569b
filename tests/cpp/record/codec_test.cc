// Tests for src/record/codec.h: both encodings, every validation rule (with
// its message), the canonical form, and the limits.
#include "record/codec.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "record/base64.h"
#include "record/hll.h"

namespace cpuledger::record {
namespace {

using google::protobuf::util::MessageDifferencer;
using nlohmann::json;

constexpr int64_t kStartUs = 1'700'000'000'000'000;  // 2023-11-14

int64_t NowUs() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

// ValidProfile() — a two-function call-path tree with every field set:
// root -> view (app.py:12) -> helper (app.py:30).
Profile ValidProfile() {
  Profile p;
  p.set_unit("instructions");
  p.set_source("hardware");
  p.set_mode("exact");
  ProfileFunction* view = p.add_functions();
  view->set_file("app.py");
  view->set_line(12);
  view->set_name("view");
  view->set_code_hash(0xF00D'FACE'1234'5679);  // past 2^53: exact only as a string in JSON
  ProfileFunction* helper = p.add_functions();
  helper->set_file("app.py");
  helper->set_line(30);
  helper->set_name("helper");
  p.add_nodes();  // the root
  ProfileNode* v = p.add_nodes();
  v->set_parent(0);
  v->set_function(0);
  v->set_calls(1);
  v->set_primitive_calls(1);
  v->set_self_cost(100);
  v->set_total_cost(400);
  ProfileNode* h = p.add_nodes();
  h->set_parent(1);
  h->set_function(1);
  h->set_calls(3);
  h->set_primitive_calls(2);
  h->set_self_cost(300);
  h->set_total_cost(300);
  p.set_builtins_folded(true);
  p.set_overhead_per_event(12);
  p.set_requests(1);
  return p;
}

// ValidRecord() — a request with every field set, in canonical form.
RequestRecord ValidRecord() {
  RequestRecord r;
  r.set_start_time_unix_us(kStartUs);
  r.set_wall_us(12'500);
  CpuBill* cpu = r.mutable_cpu();
  cpu->set_instructions(40'000'000);
  cpu->set_cycles(30'000'000);
  cpu->set_cpu_ns(9'000'000);
  cpu->set_counter_source("hardware");
  cpu->set_kernel_included(false);
  cpu->set_multiplex_scale(1.25);
  cpu->set_user_ns(8'000'000);
  cpu->set_kernel_ns(1'000'000);
  Span* db = r.mutable_db();
  db->set_name("db");
  db->set_wall_us(4'000);
  db->set_calls(3);
  db->mutable_cpu()->set_cpu_ns(500'000);
  db->mutable_cpu()->set_counter_source("hardware");
  db->mutable_cpu()->set_instructions(1'000'000);
  Span* cache = r.mutable_cache();
  cache->set_name("cache");
  cache->set_wall_us(200);
  cache->set_calls(7);
  Span* render = r.add_custom();
  render->set_name("render");
  render->set_wall_us(3'000);
  render->set_calls(1);
  render->mutable_cpu()->set_cpu_ns(2'500'000);
  Span* serialize = r.add_custom();
  serialize->set_name("serialize");
  serialize->set_wall_us(900);
  serialize->set_calls(2);
  r.set_service("shop");
  r.set_endpoint("/cart/{id}");
  r.set_method("GET");
  r.set_status(200);
  r.set_host("web-17");
  r.set_cluster("prn");
  r.set_region("eu-west");
  r.set_commit("9f2c1e7");
  (*r.mutable_flags())["new_checkout"] = "on";
  (*r.mutable_flags())["ranking"] = "variant-b";
  r.set_user("u-5e884898");
  r.set_sample_rate(0.01);
  r.set_request_id("req-1");
  *r.mutable_profile() = ValidProfile();
  return r;
}

// MinimalRecord() — only what is required.
RequestRecord MinimalRecord() {
  RequestRecord r;
  r.set_service("shop");
  r.set_endpoint("/cart");
  r.set_start_time_unix_us(kStartUs);
  r.set_sample_rate(1.0);
  r.mutable_cpu()->set_counter_source("thread_cputime");
  return r;
}

WorkerTally ValidTally() {
  WorkerTally t;
  t.set_minute_unix(1'700'000'040);
  t.set_service("shop");
  t.set_host("web-17");
  t.set_cluster("prn");
  t.set_region("eu-west");
  t.set_commit("9f2c1e7");
  t.set_sender("web-17:4242");
  EndpointCount* cart = t.add_endpoints();
  cart->set_endpoint("/cart");
  cart->set_requests(1200);
  cart->set_sampled(12);
  EndpointCount* home = t.add_endpoints();
  home->set_endpoint("/home");
  home->set_requests(300);
  HyperLogLog hll;
  for (int i = 0; i < 50; ++i) hll.Add("user-" + std::to_string(i));
  t.set_active_users_hll(hll.registers());
  t.set_hll_precision(static_cast<uint32_t>(hll.precision()));
  return t;
}

// SharedRecord() — ValidRecord() whose profile lists its functions in
// `batch` (appended there, in order), as ShareProfileFunctions() leaves it.
RequestRecord SharedRecord(Batch* batch) {
  RequestRecord r = ValidRecord();
  Profile& p = *r.mutable_profile();
  const uint32_t base = static_cast<uint32_t>(batch->functions_size());
  for (const ProfileFunction& f : p.functions()) *batch->add_functions() = f;
  for (int n = 1; n < p.nodes_size(); ++n)
    p.mutable_nodes(n)->set_function(base + p.nodes(n).function());
  p.clear_functions();
  p.set_functions_in_batch(true);
  return r;
}

Batch ValidBatch() {
  Batch b;
  *b.add_records() = ValidRecord();
  *b.add_records() = MinimalRecord();
  *b.add_records() = SharedRecord(&b);
  *b.add_tallies() = ValidTally();
  b.set_sender("web-17:4242:1700000000");
  b.set_sequence(42);
  b.set_dropped_records(3);
  return b;
}

std::string Serialize(const google::protobuf::Message& m) {
  std::string out;
  EXPECT_TRUE(m.SerializeToString(&out));
  return out;
}

// Equal() — a gtest predicate with the differences as its failure text.
testing::AssertionResult Equal(const google::protobuf::Message& a,
                               const google::protobuf::Message& b) {
  MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  if (diff.Compare(a, b)) return testing::AssertionSuccess();
  return testing::AssertionFailure() << report;
}

// ErrorOf() — the message of a failed decode; "" (and a test failure) on success.
std::string ErrorOf(const Result<Batch>& batch) {
  EXPECT_FALSE(batch.ok());
  return batch.ok() ? "" : batch.status().message();
}

json BaseLine() {
  return {{"service", "shop"}, {"endpoint", "/cart"}, {"start_time_unix_us", kStartUs},
          {"wall_us", 1200},   {"cpu_ns", 900'000},   {"counter_source", "thread_cputime"}};
}

json BaseTallyLine() {
  return {{"type", "tally"}, {"minute_unix", 1'700'000'040}, {"service", "shop"}};
}

std::string Lines(std::initializer_list<std::string> lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

Result<Batch> DecodeLine(const json& line) { return DecodeBatch(Encoding::kNdjson, line.dump()); }

Result<Batch> DecodeRecordWith(const std::string& key, const json& value) {
  json line = BaseLine();
  line[key] = value;
  return DecodeLine(line);
}

// ---------------------------------------------------------------------------
// Content types

TEST(RecordContentType, AcceptsTheDocumentedTypes) {
  for (const char* type : {"application/x-protobuf", "application/protobuf",
                           "Application/X-Protobuf", " application/protobuf ; proto=x"}) {
    Result<Encoding> e = EncodingForContentType(type);
    ASSERT_TRUE(e.ok()) << type;
    EXPECT_EQ(*e, Encoding::kProtobuf) << type;
  }
  for (const char* type : {"application/x-ndjson", "application/ndjson", "application/jsonl",
                           "application/x-ndjson; charset=utf-8", "APPLICATION/NDJSON"}) {
    Result<Encoding> e = EncodingForContentType(type);
    ASSERT_TRUE(e.ok()) << type;
    EXPECT_EQ(*e, Encoding::kNdjson) << type;
  }
}

TEST(RecordContentType, RejectsOthersNamingTheAcceptedOnes) {
  for (const char* type : {"", "application/json", "text/plain", "application/x-protobufs",
                           "application/ndjson-ish", "; application/ndjson"}) {
    Result<Encoding> e = EncodingForContentType(type);
    ASSERT_FALSE(e.ok()) << type;
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.status().message().find("application/x-protobuf"), std::string::npos);
    EXPECT_NE(e.status().message().find("application/jsonl"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------
// Protobuf

TEST(RecordProtobuf, RoundTrip) {
  const Batch batch = ValidBatch();
  Result<Batch> decoded = DecodeBatch(Encoding::kProtobuf, Serialize(batch));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(Equal(*decoded, batch));
}

TEST(RecordProtobuf, DecodesToCanonicalForm) {
  Batch batch;
  RequestRecord* r = batch.add_records();
  *r = MinimalRecord();
  r->mutable_db()->set_wall_us(5);  // no name: the field says it is "db"
  r->mutable_cache()->set_calls(1);
  r->add_custom()->set_name("zeta");
  r->add_custom()->set_name("alpha");
  r->add_custom()->set_name("mid");
  WorkerTally* t = batch.add_tallies();
  *t = ValidTally();
  t->mutable_endpoints()->SwapElements(0, 1);
  ASSERT_EQ(t->endpoints(0).endpoint(), "/home");

  Result<Batch> decoded = DecodeBatch(Encoding::kProtobuf, Serialize(batch));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const RequestRecord& d = decoded->records(0);
  EXPECT_EQ(d.db().name(), "db");
  EXPECT_EQ(d.cache().name(), "cache");
  ASSERT_EQ(d.custom_size(), 3);
  EXPECT_EQ(d.custom(0).name(), "alpha");
  EXPECT_EQ(d.custom(1).name(), "mid");
  EXPECT_EQ(d.custom(2).name(), "zeta");
  EXPECT_EQ(decoded->tallies(0).endpoints(0).endpoint(), "/cart");
  EXPECT_EQ(decoded->tallies(0).endpoints(1).endpoint(), "/home");
  EXPECT_EQ(decoded->tallies(0).endpoints(0).requests(), 1200u);
}

TEST(RecordProtobuf, TruncatedBatchIsRejected) {
  Batch batch;
  *batch.add_records() = ValidRecord();
  const std::string wire = Serialize(batch);
  const std::string want = "protobuf batch does not parse (truncated, or not a cpuledger Batch)";
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, wire.substr(0, wire.size() / 2))), want);
  // One record: every cut falls inside it.
  for (size_t n = 1; n < wire.size(); ++n) {
    Result<Batch> cut = DecodeBatch(Encoding::kProtobuf, std::string_view(wire).substr(0, n));
    ASSERT_FALSE(cut.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(cut.status().message(), want) << n;
  }
}

TEST(RecordProtobuf, JunkIsRejected) {
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, "\xff\xff\xff\xff garbage")),
            "protobuf batch does not parse (truncated, or not a cpuledger Batch)");
  // Valid JSON is not a protobuf batch either.
  EXPECT_FALSE(DecodeBatch(Encoding::kProtobuf, BaseLine().dump()).ok());
}

TEST(RecordProtobuf, UnknownFieldsAreIgnored) {
  const Batch batch = ValidBatch();
  std::string wire = Serialize(batch);
  wire += std::string("\xf8\x06\x07", 3);     // field 111, varint 7: from a newer sender
  wire += std::string("\x82\x07\x03xyz", 6);  // field 112, 3 bytes
  Result<Batch> decoded = DecodeBatch(Encoding::kProtobuf, wire);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->GetReflection()->GetUnknownFields(*decoded).field_count(), 2);
  decoded->DiscardUnknownFields();
  EXPECT_TRUE(Equal(*decoded, batch));

  // Inside a record, too.
  RequestRecord r = MinimalRecord();
  std::string record_wire = Serialize(r) + std::string("\xa8\x06\x01", 3);  // field 101
  std::string nested = "\x0a";                                              // records, LEN
  nested += static_cast<char>(record_wire.size());
  nested += record_wire;
  Result<Batch> nested_decoded = DecodeBatch(Encoding::kProtobuf, nested);
  ASSERT_TRUE(nested_decoded.ok()) << nested_decoded.status().ToString();
  nested_decoded->DiscardUnknownFields();
  ASSERT_EQ(nested_decoded->records_size(), 1);
  EXPECT_TRUE(Equal(nested_decoded->records(0), r));
}

TEST(RecordProtobuf, ErrorsNameTheRecordAndField) {
  Batch batch;
  for (int i = 0; i < 12; ++i) *batch.add_records() = MinimalRecord();
  RequestRecord* bad = batch.add_records();
  *bad = MinimalRecord();
  bad->set_sample_rate(1.5);
  *batch.add_records() = MinimalRecord();
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, Serialize(batch))),
            "record 12: field 'sample_rate' must be in (0, 1], got 1.5");

  Batch tallies;
  *tallies.add_tallies() = ValidTally();
  WorkerTally* t = tallies.add_tallies();
  *t = ValidTally();
  t->set_minute_unix(1'700'000'041);
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, Serialize(tallies))),
            "tally 1: field 'minute_unix' must be a positive multiple of 60 (unix seconds), got "
            "1700000041");
}

TEST(RecordProtobuf, MissingSampleRateIsAnError) {
  // Unlike NDJSON, protobuf cannot tell 0 from absent: a sender must set it.
  Batch batch;
  *batch.add_records() = MinimalRecord();
  batch.mutable_records(0)->clear_sample_rate();
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, Serialize(batch))),
            "record 0: field 'sample_rate' must be in (0, 1], got 0");
}

TEST(RecordProtobuf, InvalidUtf8DoesNotParse) {
  Batch batch;
  *batch.add_records() = MinimalRecord();
  batch.mutable_records(0)->set_host("web\xff");
  // The serializer only logs; the parser refuses.
  EXPECT_FALSE(DecodeBatch(Encoding::kProtobuf, Serialize(batch)).ok());
}

TEST(RecordProtobuf, EmptyBatchIsRejected) {
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, "")), "empty batch");
  Batch identity_only;
  identity_only.set_sender("s");
  identity_only.set_sequence(1);
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, Serialize(identity_only))), "empty batch");
  // A sender that dropped everything still reports the drops.
  Batch drops_only = identity_only;
  drops_only.set_dropped_records(500);
  Result<Batch> decoded = DecodeBatch(Encoding::kProtobuf, Serialize(drops_only));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->dropped_records(), 500u);
}

TEST(RecordProtobuf, SenderIsValidated) {
  Batch batch;
  *batch.add_records() = MinimalRecord();
  batch.set_sender(std::string(kMaxDimensionBytes + 1, 's'));
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, Serialize(batch))),
            "field 'sender' is 257 bytes; the limit is 256");
}

TEST(RecordProtobuf, RecordLimit) {
  Batch batch;
  const RequestRecord r = MinimalRecord();
  for (size_t i = 0; i < kMaxRecordsPerBatch; ++i) *batch.add_records() = r;
  std::string wire = Serialize(batch);
  Result<Batch> full = DecodeBatch(Encoding::kProtobuf, wire);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(static_cast<size_t>(full->records_size()), kMaxRecordsPerBatch);

  *batch.add_records() = r;
  Result<Batch> over = DecodeBatch(Encoding::kProtobuf, Serialize(batch));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(over.status().message(), "batch has 100001 records; the limit is 100000");
}

// ---------------------------------------------------------------------------
// ValidateRecord: each rule, with its message

std::string RecordError(const RequestRecord& r) {
  Status s = ValidateRecord(r);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  return s.message();
}

TEST(RecordValidate, ValidRecordsPass) {
  EXPECT_TRUE(ValidateRecord(ValidRecord()).ok()) << ValidateRecord(ValidRecord()).ToString();
  EXPECT_TRUE(ValidateRecord(MinimalRecord()).ok());
}

TEST(RecordValidate, RequiredFields) {
  RequestRecord r = MinimalRecord();
  r.clear_service();
  EXPECT_EQ(RecordError(r), "missing required field 'service'");
  r = MinimalRecord();
  r.clear_endpoint();
  EXPECT_EQ(RecordError(r), "missing required field 'endpoint'");
  r = MinimalRecord();
  r.clear_start_time_unix_us();
  EXPECT_EQ(RecordError(r), "missing required field 'start_time_unix_us'");
  r = MinimalRecord();
  r.clear_cpu();
  EXPECT_EQ(RecordError(r), "missing required field 'counter_source'");
}

TEST(RecordValidate, StartTimeMustBePlausible) {
  const std::string want =
      "field 'start_time_unix_us' must be unix microseconds between 2000-01-01 and now + 1 day, "
      "got ";
  RequestRecord r = MinimalRecord();
  r.set_start_time_unix_us(946'684'799'999'999);  // a microsecond before 2000
  EXPECT_EQ(RecordError(r), want + "946684799999999");
  r.set_start_time_unix_us(946'684'800'000'000);
  EXPECT_TRUE(ValidateRecord(r).ok());
  r.set_start_time_unix_us(-5);
  EXPECT_EQ(RecordError(r), want + "-5");
  r.set_start_time_unix_us(1'700'000'000);  // seconds, not microseconds
  EXPECT_EQ(RecordError(r), want + "1700000000");
  const int64_t day_us = 86'400'000'000;
  r.set_start_time_unix_us(NowUs() + 2 * day_us);
  EXPECT_NE(RecordError(r).find(want), std::string::npos);
  r.set_start_time_unix_us(NowUs() + day_us / 2);  // a skewed clock is fine
  EXPECT_TRUE(ValidateRecord(r).ok());
}

TEST(RecordValidate, SampleRateInZeroOne) {
  RequestRecord r = MinimalRecord();
  for (double ok : {1.0, 0.5, 1e-9}) {
    r.set_sample_rate(ok);
    EXPECT_TRUE(ValidateRecord(r).ok()) << ok;
  }
  r.set_sample_rate(1.5);
  EXPECT_EQ(RecordError(r), "field 'sample_rate' must be in (0, 1], got 1.5");
  r.set_sample_rate(0);
  EXPECT_EQ(RecordError(r), "field 'sample_rate' must be in (0, 1], got 0");
  r.set_sample_rate(-0.25);
  EXPECT_EQ(RecordError(r), "field 'sample_rate' must be in (0, 1], got -0.25");
  r.set_sample_rate(std::nan(""));
  EXPECT_EQ(RecordError(r), "field 'sample_rate' must be in (0, 1], got nan");
}

TEST(RecordValidate, CounterSourceMustBeKnown) {
  RequestRecord r = MinimalRecord();
  for (std::string_view source : kKnownCounterSources) {
    r.mutable_cpu()->set_counter_source(std::string(source));
    EXPECT_TRUE(ValidateRecord(r).ok()) << source;
  }
  r.mutable_cpu()->set_counter_source("rdtsc");
  EXPECT_EQ(RecordError(r),
            "field 'counter_source' must be one of hardware, task_clock, thread_cputime; got "
            "'rdtsc'");
  r.mutable_cpu()->set_counter_source("it's\n");  // echoed safely
  EXPECT_EQ(RecordError(r),
            "field 'counter_source' must be one of hardware, task_clock, thread_cputime; got "
            "'it\\x27s\\x0a'");
}

TEST(RecordValidate, MultiplexScaleMustBeFinite) {
  RequestRecord r = MinimalRecord();
  r.mutable_cpu()->set_multiplex_scale(-1);
  EXPECT_EQ(RecordError(r), "field 'multiplex_scale' must be a finite number >= 0, got -1");
  r.mutable_cpu()->set_multiplex_scale(std::numeric_limits<double>::infinity());
  EXPECT_EQ(RecordError(r), "field 'multiplex_scale' must be a finite number >= 0, got inf");
  r.mutable_cpu()->set_multiplex_scale(2.5);
  EXPECT_TRUE(ValidateRecord(r).ok());
}

TEST(RecordValidate, StatusBelow1000) {
  RequestRecord r = MinimalRecord();
  r.set_status(999);
  EXPECT_TRUE(ValidateRecord(r).ok());
  r.set_status(1000);
  EXPECT_EQ(RecordError(r), "field 'status' must be below 1000, got 1000");
}

TEST(RecordValidate, DimensionsAreBoundedAndUtf8) {
  using Setter = void (RequestRecord::*)(const std::string&);
  const std::pair<const char*, Setter> dimensions[] = {
      {"service", &RequestRecord::set_service},       {"endpoint", &RequestRecord::set_endpoint},
      {"method", &RequestRecord::set_method},         {"host", &RequestRecord::set_host},
      {"cluster", &RequestRecord::set_cluster},       {"region", &RequestRecord::set_region},
      {"commit", &RequestRecord::set_commit},         {"user", &RequestRecord::set_user},
      {"request_id", &RequestRecord::set_request_id},
  };
  for (const auto& [name, set] : dimensions) {
    RequestRecord r = MinimalRecord();
    (r.*set)(std::string(kMaxDimensionBytes, 'x'));
    EXPECT_TRUE(ValidateRecord(r).ok()) << name;
    (r.*set)(std::string(kMaxDimensionBytes + 1, 'x'));
    EXPECT_EQ(RecordError(r), "field '" + std::string(name) + "' is 257 bytes; the limit is 256");
    (r.*set)("caf\xc3");  // a cut two-byte character
    EXPECT_EQ(RecordError(r), "field '" + std::string(name) + "' is not valid UTF-8");
  }
}

TEST(RecordValidate, Utf8Rules) {
  RequestRecord r = MinimalRecord();
  for (const char* ok : {"caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x94\xa5", "\xed\x9f\xbf",
                         "\xf4\x8f\xbf\xbf", "plain ascii longer than eight bytes"}) {
    r.set_host(ok);
    EXPECT_TRUE(ValidateRecord(r).ok()) << ok;
  }
  for (const char* bad : {"\xc0\xaf",          // overlong '/'
                          "\xe0\x80\xaf",      // overlong
                          "\xed\xa0\x80",      // surrogate
                          "\xf4\x90\x80\x80",  // above U+10FFFF
                          "\xf5\x80\x80\x80",  // invalid lead
                          "\x80",              // lone continuation
                          "abcdefgh\xe2\x82",  // cut after an ASCII run
                          "\xe2\x28\xa1"}) {   // bad continuation
    r.set_host(bad);
    EXPECT_EQ(RecordError(r), "field 'host' is not valid UTF-8") << testing::PrintToString(bad);
  }
}

TEST(RecordValidate, Flags) {
  RequestRecord r = MinimalRecord();
  auto& flags = *r.mutable_flags();
  for (size_t i = 0; i < kMaxFlags; ++i) flags["f" + std::to_string(i)] = "on";
  EXPECT_TRUE(ValidateRecord(r).ok());
  flags["one_more"] = "on";
  EXPECT_EQ(RecordError(r), "65 flags; the limit is 64");

  flags.clear();
  flags[""] = "on";
  EXPECT_EQ(RecordError(r), "flag with an empty name");
  flags.clear();
  flags[std::string(kMaxDimensionBytes + 1, 'n')] = "on";
  EXPECT_NE(RecordError(r).find("is 257 bytes; the limit is 256"), std::string::npos);
  flags.clear();
  flags["beta"] = std::string(kMaxDimensionBytes + 1, 'v');
  EXPECT_EQ(RecordError(r), "flag 'beta': value is 257 bytes; the limit is 256");
  flags.clear();
  flags["beta"] = "\xff";
  EXPECT_EQ(RecordError(r), "flag 'beta': value is not valid UTF-8");
  flags.clear();
  flags["b\xffta"] = "on";
  EXPECT_EQ(RecordError(r), "flag name 'b\\xffta' is not valid UTF-8");
  // Control characters would end up in every report and log line.
  flags.clear();
  flags["beta"] = "o\nn";
  EXPECT_EQ(RecordError(r), "flag 'beta': value holds a control character: 'o\\x0an'");
  flags.clear();
  flags[std::string("be\0ta", 5)] = "on";
  EXPECT_EQ(RecordError(r), "flag name 'be\\x00ta' holds a control character");
}

TEST(RecordValidate, DimensionsHoldNoControlCharacters) {
  RequestRecord r = MinimalRecord();
  r.set_endpoint(std::string("/a\0b/", 5));
  EXPECT_EQ(RecordError(r), "field 'endpoint' holds a control character: '/a\\x00b/'");
  r.set_endpoint("/a/");
  r.set_host("web\x1b[31m1");
  EXPECT_EQ(RecordError(r), "field 'host' holds a control character: 'web\\x1b[31m1'");
  r.set_host("web-1");
  r.set_region("us\x7f");
  EXPECT_NE(RecordError(r).find("control character"), std::string::npos);
}

TEST(RecordValidate, CustomSpans) {
  RequestRecord r = MinimalRecord();
  for (size_t i = 0; i < kMaxCustomSpans; ++i) r.add_custom()->set_name("s" + std::to_string(i));
  EXPECT_TRUE(ValidateRecord(r).ok());
  r.add_custom()->set_name("one_more");
  EXPECT_EQ(RecordError(r), "33 custom spans; the limit is 32");

  r = MinimalRecord();
  r.add_custom()->set_name("render");
  r.add_custom()->set_name("render");
  EXPECT_EQ(RecordError(r), "custom span 'render' appears twice");

  r = MinimalRecord();
  r.add_custom();
  EXPECT_EQ(RecordError(r), "custom span with an empty name");

  r = MinimalRecord();
  r.add_custom()->set_name(std::string(kMaxDimensionBytes + 1, 'c'));
  EXPECT_EQ(RecordError(r), "field 'custom.name' is 257 bytes; the limit is 256");

  r = MinimalRecord();
  Span* s = r.add_custom();
  s->set_name("render");
  s->mutable_cpu()->set_counter_source("sundial");
  EXPECT_EQ(RecordError(r),
            "custom span 'render': field 'cpu.counter_source' must be one of hardware, "
            "task_clock, thread_cputime; got 'sundial'");
  s->mutable_cpu()->clear_counter_source();  // optional on a span: the record's source applies
  EXPECT_TRUE(ValidateRecord(r).ok());
}

TEST(RecordValidate, DbAndCacheSpans) {
  RequestRecord r = MinimalRecord();
  r.mutable_db()->set_name("postgres");
  EXPECT_EQ(RecordError(r), "field 'db.name' must be 'db' or empty, got 'postgres'");
  r.mutable_db()->set_name("");
  EXPECT_TRUE(ValidateRecord(r).ok());
  r.mutable_cache()->set_name("cache");
  r.mutable_cache()->mutable_cpu()->set_multiplex_scale(-2);
  EXPECT_EQ(RecordError(r),
            "field 'cache.cpu.multiplex_scale' must be a finite number >= 0, got -2");
}

// ProfileError() — the message ValidateRecord gives for `p` as the profile
// of a minimal record (and that ValidateProfile gives for `p` alone).
std::string ProfileError(const Profile& p) {
  RequestRecord r = MinimalRecord();
  *r.mutable_profile() = p;
  const std::string message = RecordError(r);
  Status alone = ValidateProfile(p);
  EXPECT_EQ(alone.message(), message);
  return message;
}

TEST(RecordValidate, ProfileUnitModeAndSource) {
  EXPECT_TRUE(ValidateProfile(ValidProfile()).ok()) << ValidateProfile(ValidProfile()).ToString();
  Profile p = ValidProfile();
  for (const char* unit : {"instructions", "cycles", "cpu_ns", "tsc"}) {
    p.set_unit(unit);
    EXPECT_TRUE(ValidateProfile(p).ok()) << unit;
  }
  p.set_unit("seconds");
  EXPECT_EQ(ProfileError(p),
            "field 'profile.unit' must be one of instructions, cycles, cpu_ns, tsc; got 'seconds'");
  p.clear_unit();
  EXPECT_EQ(ProfileError(p),
            "field 'profile.unit' must be one of instructions, cycles, cpu_ns, tsc; got ''");
  p = ValidProfile();
  p.set_mode("fast");
  EXPECT_TRUE(ValidateProfile(p).ok());
  p.set_mode("slow");
  EXPECT_EQ(ProfileError(p), "field 'profile.mode' must be one of exact, fast; got 'slow'");
  p = ValidProfile();
  p.set_source(std::string(kMaxDimensionBytes + 1, 's'));
  EXPECT_EQ(ProfileError(p), "field 'profile.source' is 257 bytes; the limit is 256");
}

TEST(RecordValidate, ProfileRootAndParents) {
  Profile p = ValidProfile();
  p.clear_nodes();
  EXPECT_EQ(ProfileError(p), "profile has no nodes (node 0 must be the root)");
  p = ValidProfile();
  p.mutable_nodes(0)->set_parent(1);
  EXPECT_EQ(ProfileError(p),
            "profile.nodes[0] is the root: its parent and function must be 0, got 1 and 0");
  p = ValidProfile();
  p.mutable_nodes(0)->set_function(1);
  EXPECT_EQ(ProfileError(p),
            "profile.nodes[0] is the root: its parent and function must be 0, got 0 and 1");
  p = ValidProfile();
  p.mutable_nodes(2)->set_parent(2);  // itself: a cycle
  EXPECT_EQ(ProfileError(p),
            "field 'profile.nodes[2].parent' must be below 2 (a parent comes before its "
            "children), got 2");
  p.mutable_nodes(2)->set_parent(7);  // out of range
  EXPECT_EQ(ProfileError(p),
            "field 'profile.nodes[2].parent' must be below 2 (a parent comes before its "
            "children), got 7");
  p.mutable_nodes(2)->set_parent(0);  // a sibling of view: fine
  EXPECT_TRUE(ValidateProfile(p).ok());
}

TEST(RecordValidate, ProfileFunctionIndices) {
  Profile p = ValidProfile();
  p.mutable_nodes(1)->set_function(2);
  EXPECT_EQ(ProfileError(p),
            "field 'profile.nodes[1].function' must index profile.functions (2 of them), got 2");
  p = ValidProfile();
  p.clear_functions();
  EXPECT_EQ(ProfileError(p),
            "field 'profile.nodes[1].function' must index profile.functions (0 of them), got 0");
  p.mutable_nodes()->DeleteSubrange(1, 2);  // only the root: an empty profile is valid
  EXPECT_TRUE(ValidateProfile(p).ok());
}

// ---------------------------------------------------------------------------
// Profiles that share their batch's function table

// Resolved() — a profile's nodes as (parent, "file:line:name"), through
// whichever table it indexes.
std::vector<std::pair<uint32_t, std::string>> Resolved(const Batch& b, const Profile& p) {
  std::vector<std::pair<uint32_t, std::string>> out;
  const auto& table = ProfileFunctions(b, p);
  for (int n = 1; n < p.nodes_size(); ++n) {
    const ProfileFunction& f = table.Get(static_cast<int>(p.nodes(n).function()));
    out.emplace_back(p.nodes(n).parent(),
                     f.file() + ":" + std::to_string(f.line()) + ":" + f.name());
  }
  return out;
}

TEST(RecordShare, ListsEachFunctionOnceAndKeepsEveryPath) {
  Batch b;
  for (int i = 0; i < 3; ++i) *b.add_records() = ValidRecord();
  RequestRecord other = ValidRecord();  // one more function, listed first
  Profile& op = *other.mutable_profile();
  ProfileFunction extra = op.functions(0);
  extra.set_name("other");
  op.mutable_functions()->Add(std::move(extra));
  op.mutable_functions()->SwapElements(0, 2);  // other, helper, view
  op.mutable_nodes(1)->set_function(2);
  op.mutable_nodes(2)->set_function(1);
  op.add_nodes()->set_parent(2);  // function 0: "other"
  *b.add_records() = other;
  *b.add_records() = MinimalRecord();  // no profile: left alone
  std::vector<std::vector<std::pair<uint32_t, std::string>>> before;
  for (const RequestRecord& r : b.records()) before.push_back(Resolved(b, r.profile()));
  const size_t unshared = Serialize(b).size();

  ShareProfileFunctions(&b);
  EXPECT_EQ(b.functions_size(), 3);  // view, helper, other
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(b.records(i).profile().functions_in_batch()) << i;
    EXPECT_EQ(b.records(i).profile().functions_size(), 0) << i;
  }
  EXPECT_FALSE(b.records(4).has_profile());
  for (int i = 0; i < b.records_size(); ++i)
    EXPECT_EQ(Resolved(b, b.records(i).profile()), before[static_cast<size_t>(i)]) << i;
  EXPECT_LT(Serialize(b).size(), unshared);

  // Sharing again changes nothing; the shared batch decodes as it is.
  const Batch once = b;
  ShareProfileFunctions(&b);
  EXPECT_TRUE(Equal(b, once));
  b.set_sender("web-1");
  b.set_sequence(1);
  Result<Batch> decoded = DecodeBatch(Encoding::kProtobuf, Serialize(b));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(Equal(*decoded, b));
}

TEST(RecordShare, TwoVersionsOfAFunctionStayTwoEntries) {
  // Hosts on two commits in one batch: the same file:line:name with two code
  // hashes is two functions, each profile keeping its own.
  Batch b;
  for (uint64_t code : {11u, 22u, 11u}) {
    RequestRecord r = ValidRecord();
    for (ProfileFunction& f : *r.mutable_profile()->mutable_functions()) f.set_code_hash(code);
    *b.add_records() = r;
  }
  ShareProfileFunctions(&b);
  const int per_version = ValidProfile().functions_size();
  EXPECT_EQ(b.functions_size(), 2 * per_version);
  for (int i = 0; i < b.records_size(); ++i) {
    const Profile& p = b.records(i).profile();
    const uint64_t want = i == 1 ? 22u : 11u;
    for (int n = 1; n < p.nodes_size(); ++n)
      EXPECT_EQ(ProfileFunctions(b, p).Get(static_cast<int>(p.nodes(n).function())).code_hash(),
                want)
          << i << " " << n;
  }
}

TEST(RecordShare, NodesMustIndexTheBatchTable) {
  Batch b;
  *b.add_records() = SharedRecord(&b);
  b.mutable_functions()->RemoveLast();  // node 2 now points past the table
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, Serialize(b))),
            "record 0: field 'profile.nodes[2].function' must index the batch's functions (1 "
            "of them), got 1");
  b.mutable_records(0)->mutable_profile()->mutable_nodes()->RemoveLast();
  ASSERT_TRUE(DecodeBatch(Encoding::kProtobuf, Serialize(b)).ok());
  // The table obeys a profile's own table's rules, checked once.
  b.mutable_functions(0)->set_name(std::string(kMaxProfileStringBytes + 1, 'n'));
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, Serialize(b))),
            "field 'functions[0].name' is 1025 bytes; the limit is 1024");
}

TEST(RecordShare, ASharedProfileIsCheckedOnlyWithItsBatch) {
  Batch b;
  RequestRecord r = SharedRecord(&b);
  EXPECT_EQ(ProfileError(r.profile()),
            "profile lists its functions in its batch (functions_in_batch): it can only be "
            "checked with its batch");
  *r.mutable_profile()->add_functions() = b.functions(0);
  *b.add_records() = r;
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, Serialize(b))),
            "record 0: field 'profile.functions' must be empty with functions_in_batch");
}

TEST(RecordShare, NdjsonListsTheTableOnTheBatchLineFirst) {
  Batch b;
  *b.add_records() = SharedRecord(&b);
  const std::string text = EncodeNdjson(b);
  Result<Batch> decoded = DecodeBatch(Encoding::kNdjson, text);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString() << "\n" << text;
  EXPECT_TRUE(Equal(*decoded, b));
  // The table after a record that needs it: that record is refused.
  const size_t first_line = text.find('\n') + 1;
  const std::string swapped = text.substr(first_line) + text.substr(0, first_line);
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, swapped)),
            "line 1: field 'profile.nodes[1].function' must index the batch's functions (0 of "
            "them), got 0");
}

TEST(RecordValidate, ProfileStrings) {
  Profile p = ValidProfile();
  p.mutable_functions(0)->set_file(std::string(kMaxProfileStringBytes, 'f'));
  p.mutable_functions(1)->set_name(std::string(kMaxProfileStringBytes, 'n'));
  EXPECT_TRUE(ValidateProfile(p).ok());
  p.mutable_functions(0)->set_file(std::string(kMaxProfileStringBytes + 1, 'f'));
  EXPECT_EQ(ProfileError(p), "field 'profile.functions[0].file' is 1025 bytes; the limit is 1024");
  p = ValidProfile();
  p.mutable_functions(1)->set_name(std::string(kMaxProfileStringBytes + 1, 'n'));
  EXPECT_EQ(ProfileError(p), "field 'profile.functions[1].name' is 1025 bytes; the limit is 1024");
  p.mutable_functions(1)->set_name("bad\xff");
  EXPECT_EQ(ProfileError(p), "field 'profile.functions[1].name' is not valid UTF-8");
}

TEST(RecordValidate, ProfileLimits) {
  Profile p = ValidProfile();
  while (static_cast<size_t>(p.nodes_size()) < kMaxProfileNodes) {
    ProfileNode* n = p.add_nodes();
    n->set_parent(1);
    n->set_function(1);
  }
  EXPECT_TRUE(ValidateProfile(p).ok());
  p.add_nodes();
  EXPECT_EQ(ProfileError(p), "profile has 200001 nodes; the limit is 200000");
  p = ValidProfile();
  while (static_cast<size_t>(p.functions_size()) < kMaxProfileFunctions) p.add_functions();
  EXPECT_TRUE(ValidateProfile(p).ok());
  p.add_functions();
  EXPECT_EQ(ProfileError(p), "profile has 100001 functions; the limit is 100000");
}

TEST(RecordProtobuf, ProfileErrorsNameTheRecord) {
  Batch batch = ValidBatch();
  batch.mutable_records(0)->mutable_profile()->mutable_nodes(2)->set_parent(5);
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kProtobuf, Serialize(batch))),
            "record 0: field 'profile.nodes[2].parent' must be below 2 (a parent comes before "
            "its children), got 5");
}

// ---------------------------------------------------------------------------
// ValidateTally

std::string TallyError(const WorkerTally& t) {
  Status s = ValidateTally(t);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  return s.message();
}

TEST(RecordTally, ValidTalliesPass) {
  EXPECT_TRUE(ValidateTally(ValidTally()).ok()) << ValidateTally(ValidTally()).ToString();
  WorkerTally no_users = ValidTally();
  no_users.clear_active_users_hll();
  no_users.clear_hll_precision();
  EXPECT_TRUE(ValidateTally(no_users).ok());
}

TEST(RecordTally, MinuteAndService) {
  WorkerTally t = ValidTally();
  t.clear_minute_unix();
  EXPECT_EQ(TallyError(t), "missing required field 'minute_unix'");
  const std::string want =
      "field 'minute_unix' must be a positive multiple of 60 (unix seconds), got ";
  t.set_minute_unix(1'700'000'001);
  EXPECT_EQ(TallyError(t), want + "1700000001");
  t.set_minute_unix(-60);
  EXPECT_EQ(TallyError(t), want + "-60");
  t = ValidTally();
  t.clear_service();
  EXPECT_EQ(TallyError(t), "missing required field 'service'");
  t = ValidTally();
  t.set_sender(std::string(kMaxDimensionBytes + 1, 'w'));
  EXPECT_EQ(TallyError(t), "field 'sender' is 257 bytes; the limit is 256");
}

TEST(RecordTally, Endpoints) {
  WorkerTally t = ValidTally();
  t.mutable_endpoints(1)->set_endpoint("/cart");
  EXPECT_EQ(TallyError(t), "endpoint '/cart' appears twice");
  t = ValidTally();
  t.mutable_endpoints(0)->set_sampled(1201);
  EXPECT_EQ(TallyError(t), "endpoint '/cart': sampled (1201) exceeds requests (1200)");
  t = ValidTally();
  t.mutable_endpoints(0)->clear_endpoint();
  EXPECT_EQ(TallyError(t), "endpoint count with an empty endpoint name");
}

TEST(RecordTally, HllIsChecked) {
  WorkerTally t = ValidTally();
  t.clear_active_users_hll();
  EXPECT_EQ(TallyError(t), "field 'hll_precision' is set but 'active_users_hll' is empty");
  t = ValidTally();
  t.clear_hll_precision();
  EXPECT_EQ(TallyError(t), "field 'active_users_hll' needs 'hll_precision'");
  t = ValidTally();
  t.set_hll_precision(11);
  EXPECT_EQ(TallyError(t),
            "field 'active_users_hll': active_users_hll has 4096 registers; precision 11 needs "
            "2048");
  t.set_hll_precision(4'000'000'000u);
  EXPECT_EQ(TallyError(t), "field 'hll_precision' must be in [4, 16], got 4000000000");
  t = ValidTally();
  std::string registers = t.active_users_hll();
  registers[7] = 64 - 12 + 2;  // one past the highest possible rank
  t.set_active_users_hll(registers);
  EXPECT_EQ(TallyError(t), "field 'active_users_hll': active_users_hll register out of range");
}

// ---------------------------------------------------------------------------
// NDJSON

TEST(RecordNdjson, RoundTrip) {
  const Batch batch = ValidBatch();
  const std::string text = EncodeNdjson(batch);
  Result<Batch> decoded = DecodeBatch(Encoding::kNdjson, text);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString() << "\n" << text;
  EXPECT_TRUE(Equal(*decoded, batch)) << text;
  // One line per item: the batch line, three records, one tally.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 5);
  // Same batch, same text.
  EXPECT_EQ(EncodeNdjson(*decoded), text);
}

// SetFields() / SchemaFields() — full names of the fields a message sets,
// and of every field its schema has.
void SetFields(const google::protobuf::Message& m, std::set<std::string>* out) {
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  const google::protobuf::Reflection* reflection = m.GetReflection();
  reflection->ListFields(m, &fields);
  for (const auto* f : fields) {
    out->insert(f->full_name());
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (!f->is_repeated()) {
      SetFields(reflection->GetMessage(m, f), out);
      continue;
    }
    for (int i = 0; i < reflection->FieldSize(m, f); ++i)
      SetFields(reflection->GetRepeatedMessage(m, f, i), out);
  }
}

void SchemaFields(const google::protobuf::Descriptor* d, std::set<std::string>* out) {
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    if (!out->insert(f->full_name()).second) continue;
    if (f->message_type()) SchemaFields(f->message_type(), out);
  }
}

TEST(RecordNdjson, EverySchemaFieldRoundTrips) {
  // A field added to record.proto needs an NDJSON spelling (codec.cc) and a
  // value in ValidBatch(); until it has both, this fails.
  const Batch batch = ValidBatch();
  std::set<std::string> set, schema;
  SetFields(batch, &set);
  SchemaFields(Batch::descriptor(), &schema);
  for (const std::string& field : schema)
    EXPECT_TRUE(set.count(field)) << field << " is not set by ValidBatch()";
  Result<Batch> decoded = DecodeBatch(Encoding::kNdjson, EncodeNdjson(batch));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(Equal(*decoded, batch));
}

TEST(RecordNdjson, RoundTripOfAProtobufDecodedBatch) {
  Batch batch = ValidBatch();
  batch.mutable_records(0)->mutable_db()->clear_name();
  batch.mutable_records(0)->mutable_custom()->SwapElements(0, 1);
  Result<Batch> from_protobuf = DecodeBatch(Encoding::kProtobuf, Serialize(batch));
  ASSERT_TRUE(from_protobuf.ok()) << from_protobuf.status().ToString();
  Result<Batch> from_ndjson = DecodeBatch(Encoding::kNdjson, EncodeNdjson(*from_protobuf));
  ASSERT_TRUE(from_ndjson.ok()) << from_ndjson.status().ToString();
  EXPECT_TRUE(Equal(*from_ndjson, *from_protobuf));
}

TEST(RecordNdjson, MinimalLineAndDefaults) {
  Result<Batch> batch = DecodeLine(BaseLine());
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->records_size(), 1);
  const RequestRecord& r = batch->records(0);
  EXPECT_EQ(r.service(), "shop");
  EXPECT_EQ(r.endpoint(), "/cart");
  EXPECT_EQ(r.start_time_unix_us(), kStartUs);
  EXPECT_EQ(r.wall_us(), 1200u);
  EXPECT_EQ(r.cpu().cpu_ns(), 900'000u);
  EXPECT_EQ(r.cpu().counter_source(), "thread_cputime");
  EXPECT_EQ(r.sample_rate(), 1.0);  // absent: every request recorded
  EXPECT_FALSE(r.cpu().has_instructions());
  EXPECT_FALSE(r.cpu().has_cycles());
  EXPECT_FALSE(r.cpu().has_kernel_included());
  EXPECT_FALSE(r.has_db());
  EXPECT_FALSE(r.has_cache());
  EXPECT_EQ(r.custom_size(), 0);
  EXPECT_TRUE(batch->sender().empty());
}

TEST(RecordNdjson, NullCountersAreNotSetNeverZero) {
  json line = BaseLine();
  line["instructions"] = nullptr;
  line["cycles"] = nullptr;
  Result<Batch> batch = DecodeLine(line);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_FALSE(batch->records(0).cpu().has_instructions());
  EXPECT_FALSE(batch->records(0).cpu().has_cycles());

  line["instructions"] = 0;  // a real zero stays a zero
  line["cycles"] = 123;
  batch = DecodeLine(line);
  ASSERT_TRUE(batch.ok());
  EXPECT_TRUE(batch->records(0).cpu().has_instructions());
  EXPECT_EQ(batch->records(0).cpu().instructions(), 0u);
  EXPECT_EQ(batch->records(0).cpu().cycles(), 123u);
}

TEST(RecordNdjson, ErrorsNameTheLine) {
  json bad = BaseLine();
  bad["sample_rate"] = 1.5;
  const std::string body = Lines({BaseLine().dump(), "", "  ", BaseLine().dump(), "\r",
                                  BaseLine().dump(), bad.dump(), BaseLine().dump()});
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, body)),
            "line 7: field 'sample_rate' must be in (0, 1], got 1.5");
}

TEST(RecordNdjson, WrongTypes) {
  EXPECT_EQ(ErrorOf(DecodeRecordWith("wall_us", "12")),
            "line 1: field 'wall_us' must be a non-negative integer, got string");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("wall_us", 12.5)),
            "line 1: field 'wall_us' must be a non-negative integer, got 12.5");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("wall_us", -3)),
            "line 1: field 'wall_us' must be a non-negative integer, got -3");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("cpu_ns", json::array())),
            "line 1: field 'cpu_ns' must be a non-negative integer, got array");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("service", 7)),
            "line 1: field 'service' must be a string, got 7");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("sample_rate", "0.5")),
            "line 1: field 'sample_rate' must be a number, got string");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("kernel_included", 1)),
            "line 1: field 'kernel_included' must be a boolean, got 1");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("start_time_unix_us", "now")),
            "line 1: field 'start_time_unix_us' must be an integer, got string");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("db_calls", 5'000'000'000)),
            "line 1: field 'db_calls' must be an integer in [0, 4294967295], got 5000000000");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("status", "200")),
            "line 1: field 'status' must be a non-negative integer, got string");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("status", 5'000'000'000)),
            "line 1: field 'status' must be below 1000, got 5000000000");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("status", 1000)),
            "line 1: field 'status' must be below 1000, got 1000");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("custom", json::array())),
            "line 1: field 'custom' must be an object of spans, got array");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("custom", {{"render", 5}})),
            "line 1: field 'custom.render' must be an object, got 5");
  EXPECT_EQ(
      ErrorOf(DecodeRecordWith("custom", {{"render", {{"calls", "x"}}}})),
      "line 1: field 'custom.render.calls' must be an integer in [0, 4294967295], got string");
}

TEST(RecordNdjson, IntegralFloatsAreIntegers) {
  json line = BaseLine();
  line["wall_us"] = 12.0;
  line["start_time_unix_us"] = 1.7e15;
  Result<Batch> batch = DecodeLine(line);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->records(0).wall_us(), 12u);
  EXPECT_EQ(batch->records(0).start_time_unix_us(), 1'700'000'000'000'000);
  EXPECT_EQ(ErrorOf(DecodeRecordWith("wall_us", 1e30)),
            "line 1: field 'wall_us' must be a non-negative integer, got 1e+30");
}

TEST(RecordNdjson, RequiredFields) {
  for (const char* key : {"service", "endpoint", "start_time_unix_us", "counter_source"}) {
    json line = BaseLine();
    line.erase(key);
    EXPECT_EQ(ErrorOf(DecodeLine(line)),
              "line 1: missing required field '" + std::string(key) + "'");
    line[key] = nullptr;  // null is absent
    EXPECT_EQ(ErrorOf(DecodeLine(line)),
              "line 1: missing required field '" + std::string(key) + "'");
  }
}

TEST(RecordNdjson, ValidationAppliesToo) {
  EXPECT_EQ(ErrorOf(DecodeRecordWith("counter_source", "guess")),
            "line 1: field 'counter_source' must be one of hardware, task_clock, thread_cputime; "
            "got 'guess'");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("host", std::string(300, 'h'))),
            "line 1: field 'host' is 300 bytes; the limit is 256");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("start_time_unix_us", 1'700'000'000)),
            "line 1: field 'start_time_unix_us' must be unix microseconds between 2000-01-01 and "
            "now + 1 day, got 1700000000");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("sample_rate", 0)),
            "line 1: field 'sample_rate' must be in (0, 1], got 0");
}

TEST(RecordNdjson, NotJson) {
  const std::string body = Lines({BaseLine().dump(), "{\"service\": \"shop\",", BaseLine().dump()});
  const std::string error = ErrorOf(DecodeBatch(Encoding::kNdjson, body));
  EXPECT_EQ(error.rfind("line 2 is not valid JSON: [json.exception.parse_error.101]", 0), 0u)
      << error;
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, "[1, 2]\n")),
            "line 1: expected a JSON object, got array");
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, "\"shop\"")),
            "line 1: expected a JSON object, got string");
  // Two objects on one line is not one JSON value.
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, BaseLine().dump() + BaseLine().dump()))
                .rfind("line 1 is not valid JSON: ", 0),
            0u);
}

TEST(RecordNdjson, MessagesStayShortAndValidUtf8) {
  // nlohmann's message quotes what it read; raw bytes must not reach the
  // server's JSON error body, nor a megabyte of input.
  const std::string bad_utf8 = "{\"service\":\"sh\xffop\"}";
  std::string error = ErrorOf(DecodeBatch(Encoding::kNdjson, bad_utf8));
  EXPECT_EQ(error.rfind("line 1 is not valid JSON: ", 0), 0u) << error;
  EXPECT_EQ(error.find('\xff'), std::string::npos) << error;
  EXPECT_NE(error.find("\\xff"), std::string::npos) << error;
  EXPECT_NO_THROW(json(error).dump());

  const std::string long_line = "{\"a\":\"" + std::string(100'000, 'x') + "\x01\"}";
  error = ErrorOf(DecodeBatch(Encoding::kNdjson, long_line));
  EXPECT_EQ(error.rfind("line 1 is not valid JSON: ", 0), 0u) << error;
  EXPECT_LT(error.size(), 400u);

  error = ErrorOf(DecodeRecordWith("custom", {{std::string(10'000, 'n'), {{"calls", -1}}}}));
  EXPECT_LT(error.size(), 200u);
  EXPECT_NE(error.find("field 'custom.nnnn"), std::string::npos) << error;
  error = ErrorOf(DecodeRecordWith("counter_source", std::string(10'000, 'c')));
  EXPECT_LT(error.size(), 200u);
}

TEST(RecordNdjson, UnknownFieldsAreIgnored) {
  json line = BaseLine();
  line["from_the_future"] = {{"nested", {1, 2, 3}}};
  line["db_vendor"] = "postgres";  // a db_ key that is not a span key: no db span
  line["custom"] = {{"render", {{"wall_us", 5}, {"color", "blue"}}}};
  Result<Batch> batch = DecodeLine(line);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_FALSE(batch->records(0).has_db());
  ASSERT_EQ(batch->records(0).custom_size(), 1);
  EXPECT_EQ(batch->records(0).custom(0).wall_us(), 5u);
  Result<Batch> plain = DecodeLine(BaseLine());
  ASSERT_TRUE(plain.ok());
  batch->mutable_records(0)->clear_custom();
  EXPECT_TRUE(Equal(*batch, *plain));
}

TEST(RecordNdjson, FlagsCoercion) {
  json line = BaseLine();
  line["flags"] = {{"checkout", true}, {"legacy", false}, {"ranking", "variant-b"},
                   {"rollout", 25},    {"ratio", 0.5},    {"big", 1e21}};
  Result<Batch> batch = DecodeLine(line);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  const auto& flags = batch->records(0).flags();
  ASSERT_EQ(flags.size(), 6u);
  EXPECT_EQ(flags.at("checkout"), "on");
  EXPECT_EQ(flags.at("legacy"), "off");
  EXPECT_EQ(flags.at("ranking"), "variant-b");
  EXPECT_EQ(flags.at("rollout"), "25");
  EXPECT_EQ(flags.at("ratio"), "0.5");
  EXPECT_EQ(flags.at("big"), "1e+21");

  EXPECT_EQ(ErrorOf(DecodeRecordWith("flags", {{"beta", nullptr}})),
            "line 1: flag 'beta' must be a string, boolean or number, got null");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("flags", {{"beta", json::array({1})}})),
            "line 1: flag 'beta' must be a string, boolean or number, got array");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("flags", {{"beta", {{"on", true}}}})),
            "line 1: flag 'beta' must be a string, boolean or number, got object");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("flags", "beta")),
            "line 1: field 'flags' must be an object, got string");

  json many = json::object();
  for (size_t i = 0; i <= kMaxFlags; ++i) many["f" + std::to_string(i)] = true;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("flags", many)), "line 1: 65 flags; the limit is 64");
}

TEST(RecordNdjson, DbCacheAndCustomSpans) {
  json line = BaseLine();
  line["db_us"] = 4000;
  line["db_calls"] = 3;
  line["db_cpu_ns"] = 500;
  line["cache_calls"] = 2;
  line["custom"] = {{"serialize", {{"wall_us", 9}, {"calls", 1}}},
                    {"render", {{"wall_us", 30}, {"calls", 2}, {"cpu_ns", 25}}}};
  Result<Batch> batch = DecodeLine(line);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  const RequestRecord& r = batch->records(0);
  ASSERT_TRUE(r.has_db());
  EXPECT_EQ(r.db().name(), "db");
  EXPECT_EQ(r.db().wall_us(), 4000u);
  EXPECT_EQ(r.db().calls(), 3u);
  ASSERT_TRUE(r.db().has_cpu());
  EXPECT_EQ(r.db().cpu().cpu_ns(), 500u);
  ASSERT_TRUE(r.has_cache());
  EXPECT_EQ(r.cache().name(), "cache");
  EXPECT_EQ(r.cache().calls(), 2u);
  EXPECT_EQ(r.cache().wall_us(), 0u);
  EXPECT_FALSE(r.cache().has_cpu());
  ASSERT_EQ(r.custom_size(), 2);
  EXPECT_EQ(r.custom(0).name(), "render");  // canonical: sorted by name
  EXPECT_EQ(r.custom(0).wall_us(), 30u);
  EXPECT_EQ(r.custom(0).calls(), 2u);
  EXPECT_EQ(r.custom(0).cpu().cpu_ns(), 25u);
  EXPECT_EQ(r.custom(1).name(), "serialize");
  EXPECT_FALSE(r.custom(1).has_cpu());

  json many = json::object();
  for (size_t i = 0; i <= kMaxCustomSpans; ++i) many["s" + std::to_string(i)] = json::object();
  EXPECT_EQ(ErrorOf(DecodeRecordWith("custom", many)), "line 1: 33 custom spans; the limit is 32");
}

TEST(RecordNdjson, LineTypes) {
  json record = BaseLine();
  record["type"] = "record";
  EXPECT_TRUE(DecodeLine(record).ok());
  record["type"] = "profile";
  EXPECT_EQ(ErrorOf(DecodeLine(record)),
            "line 1: unknown line type 'profile' (expected record, tally or batch)");
  record["type"] = 3;
  EXPECT_EQ(ErrorOf(DecodeLine(record)), "line 1: field 'type' must be a string, got 3");
}

TEST(RecordNdjson, BatchLineSetsIdentity) {
  const json id = {{"type", "batch"}, {"sender", "web-17:4242"}, {"sequence", 9}};
  Result<Batch> batch =
      DecodeBatch(Encoding::kNdjson, Lines({BaseLine().dump(), id.dump(), BaseLine().dump()}));
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->sender(), "web-17:4242");
  EXPECT_EQ(batch->sequence(), 9u);
  EXPECT_EQ(batch->records_size(), 2);

  EXPECT_EQ(
      ErrorOf(DecodeBatch(Encoding::kNdjson, Lines({id.dump(), BaseLine().dump(), id.dump()}))),
      "line 3: a second batch line (the first is line 1)");
  json bad = id;
  bad["sequence"] = -1;
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, Lines({bad.dump(), BaseLine().dump()}))),
            "line 1: field 'sequence' must be a non-negative integer, got -1");
  // A batch line alone is an empty batch, unless it reports drops.
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, id.dump())), "empty batch");
  json drops = id;
  drops["dropped_records"] = 500;
  Result<Batch> drops_only = DecodeBatch(Encoding::kNdjson, drops.dump());
  ASSERT_TRUE(drops_only.ok()) << drops_only.status().ToString();
  EXPECT_EQ(drops_only->dropped_records(), 500u);
  EXPECT_EQ(drops_only->sender(), "web-17:4242");
}

TEST(RecordNdjson, EmptyBodies) {
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, "")), "empty batch");
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, "\n\r\n  \n")), "empty batch");
}

TEST(RecordNdjson, CrLfAndNoFinalNewline) {
  const std::string body = BaseLine().dump() + "\r\n" + BaseLine().dump();
  Result<Batch> batch = DecodeBatch(Encoding::kNdjson, body);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->records_size(), 2);
}

TEST(RecordNdjson, TallyWithUsers) {
  json line = BaseTallyLine();
  line["sender"] = "w1";
  line["endpoints"] = {{"/home", 300}, {"/cart", {{"requests", 1200}, {"sampled", 12}}}};
  json users = json::array();
  for (int i = 0; i < 1000; ++i) users.push_back("user-" + std::to_string(i));
  for (int i = 0; i < 1000; ++i) users.push_back("user-" + std::to_string(i));  // repeats
  line["users"] = users;
  Result<Batch> batch = DecodeLine(line);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->tallies_size(), 1);
  const WorkerTally& t = batch->tallies(0);
  EXPECT_EQ(t.minute_unix(), 1'700'000'040);
  EXPECT_EQ(t.sender(), "w1");
  ASSERT_EQ(t.endpoints_size(), 2);
  EXPECT_EQ(t.endpoints(0).endpoint(), "/cart");
  EXPECT_EQ(t.endpoints(0).requests(), 1200u);
  EXPECT_EQ(t.endpoints(0).sampled(), 12u);
  EXPECT_EQ(t.endpoints(1).endpoint(), "/home");
  EXPECT_EQ(t.endpoints(1).requests(), 300u);
  EXPECT_EQ(t.endpoints(1).sampled(), 0u);
  EXPECT_EQ(t.hll_precision(), 12u);
  ASSERT_EQ(t.active_users_hll().size(), 4096u);
  Result<HyperLogLog> hll = HyperLogLog::FromRegisters(t.active_users_hll(), 12);
  ASSERT_TRUE(hll.ok());
  EXPECT_NEAR(hll->Estimate(), 1000, 1000 * 3 * 1.04 / 64);

  line["users"] = {"a", 5};
  EXPECT_EQ(ErrorOf(DecodeLine(line)), "line 1: field 'users[1]' must be a string, got 5");
  line["users"] = "a";
  EXPECT_EQ(ErrorOf(DecodeLine(line)),
            "line 1: field 'users' must be an array of strings, got string");
}

TEST(RecordNdjson, TallyWithBase64Hll) {
  const WorkerTally want = ValidTally();
  json line = BaseTallyLine();
  line["active_users_hll"] = Base64Encode(want.active_users_hll());
  line["hll_precision"] = 12;
  Result<Batch> batch = DecodeLine(line);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->tallies(0).active_users_hll(), want.active_users_hll());
  EXPECT_EQ(batch->tallies(0).hll_precision(), 12u);

  line["hll_precision"] = 10;
  EXPECT_EQ(ErrorOf(DecodeLine(line)),
            "line 1: field 'active_users_hll': active_users_hll has 4096 registers; precision 10 "
            "needs 1024");
  line.erase("hll_precision");
  EXPECT_EQ(ErrorOf(DecodeLine(line)), "line 1: field 'active_users_hll' needs 'hll_precision'");
  line["hll_precision"] = 12;
  line["active_users_hll"] = "AAAAA";
  EXPECT_EQ(ErrorOf(DecodeLine(line)),
            "line 1: field 'active_users_hll': base64 text has 5 characters, which no byte "
            "string encodes to");
  line["active_users_hll"] = "AAA*";
  EXPECT_EQ(ErrorOf(DecodeLine(line)),
            "line 1: field 'active_users_hll': base64 text has an invalid character at offset 3");
  line["active_users_hll"] = Base64Encode(want.active_users_hll());
  line["users"] = {"a"};
  EXPECT_EQ(ErrorOf(DecodeLine(line)),
            "line 1: a tally takes 'users' or 'active_users_hll' + 'hll_precision', not both");
}

TEST(RecordNdjson, TallyErrors) {
  json line = BaseTallyLine();
  line["minute_unix"] = 1'700'000'001;
  EXPECT_EQ(ErrorOf(DecodeLine(line)),
            "line 1: field 'minute_unix' must be a positive multiple of 60 (unix seconds), got "
            "1700000001");
  line = BaseTallyLine();
  line.erase("service");
  EXPECT_EQ(ErrorOf(DecodeLine(line)), "line 1: missing required field 'service'");
  line = BaseTallyLine();
  line["endpoints"] = {{"/cart", "many"}};
  EXPECT_EQ(ErrorOf(DecodeLine(line)),
            "line 1: field 'endpoints./cart' must be a request count or {requests, sampled}, got "
            "string");
  line["endpoints"] = {{"/cart", {{"requests", 1}, {"sampled", -1}}}};
  EXPECT_EQ(ErrorOf(DecodeLine(line)),
            "line 1: field 'endpoints./cart.sampled' must be a non-negative integer, got -1");
  line["endpoints"] = {{"/cart", {{"requests", 1}, {"sampled", 2}}}};
  EXPECT_EQ(ErrorOf(DecodeLine(line)),
            "line 1: endpoint '/cart': sampled (2) exceeds requests (1)");
}

TEST(RecordNdjson, RecordLimit) {
  const std::string line = BaseLine().dump() + "\n";
  std::string body;
  body.reserve(line.size() * (kMaxRecordsPerBatch + 1));
  for (size_t i = 0; i < kMaxRecordsPerBatch; ++i) body += line;
  Result<Batch> full = DecodeBatch(Encoding::kNdjson, body);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(static_cast<size_t>(full->records_size()), kMaxRecordsPerBatch);

  body += line;
  Result<Batch> over = DecodeBatch(Encoding::kNdjson, body);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(over.status().message(), "line 100001: more than 100000 records in one batch");
}

TEST(RecordNdjson, EncodingOmitsWhatIsNotSet) {
  Batch batch;
  *batch.add_records() = MinimalRecord();
  const std::string text = EncodeNdjson(batch);
  const json line = json::parse(text);
  EXPECT_FALSE(line.contains("instructions"));  // no PMU: absent, not 0
  EXPECT_FALSE(line.contains("cycles"));
  EXPECT_FALSE(line.contains("db_us"));
  EXPECT_FALSE(line.contains("custom"));
  EXPECT_FALSE(line.contains("type"));
  EXPECT_EQ(line.at("counter_source"), "thread_cputime");
  EXPECT_EQ(line.at("sample_rate"), 1.0);
}

json ProfileJson() {
  return {{"unit", "cpu_ns"},
          {"source", "thread_cputime"},
          {"mode", "fast"},
          {"functions", {{{"file", "app.py"}, {"line", 12}, {"name", "view"}}}},
          {"nodes",
           {{{"parent", 0}, {"function", 0}},
            {{"parent", 0},
             {"function", 0},
             {"calls", 2},
             {"primitive_calls", 2},
             {"self_cost", 50},
             {"total_cost", 80}}}}};
}

TEST(RecordNdjson, Profile) {
  Result<Batch> batch = DecodeRecordWith("profile", ProfileJson());
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  const Profile& p = batch->records(0).profile();
  EXPECT_EQ(p.unit(), "cpu_ns");
  EXPECT_EQ(p.mode(), "fast");
  ASSERT_EQ(p.functions_size(), 1);
  EXPECT_EQ(p.functions(0).name(), "view");
  ASSERT_EQ(p.nodes_size(), 2);
  EXPECT_EQ(p.nodes(1).self_cost(), 50u);
  EXPECT_EQ(p.nodes(1).total_cost(), 80u);
  EXPECT_FALSE(p.builtins_folded());
  EXPECT_EQ(p.requests(), 0u);  // absent: the reader takes it as 1 (call_tree.h)

  // Written back with every key, and read back the same.
  const json line = json::parse(EncodeNdjson(*batch));
  EXPECT_EQ(line.at("profile").at("nodes").at(0), json({{"parent", 0},
                                                        {"function", 0},
                                                        {"calls", 0},
                                                        {"primitive_calls", 0},
                                                        {"self_cost", 0},
                                                        {"total_cost", 0}}));
  Result<Batch> again = DecodeLine(line);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(Equal(*again, *batch));

  // A null profile is no profile; no profile is not written.
  batch = DecodeRecordWith("profile", nullptr);
  ASSERT_TRUE(batch.ok());
  EXPECT_FALSE(batch->records(0).has_profile());
  EXPECT_FALSE(json::parse(EncodeNdjson(*batch)).contains("profile"));
}

TEST(RecordNdjson, ProfileWrongTypes) {
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", json::array())),
            "line 1: field 'profile' must be an object, got array");
  json p = ProfileJson();
  p["unit"] = 3;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.unit' must be a string, got 3");
  p = ProfileJson();
  p["nodes"] = json::object();
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.nodes' must be an array of nodes, got object");
  p = ProfileJson();
  p["functions"][0] = "view";
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.functions[0]' must be an object, got string");
  p = ProfileJson();
  p["functions"][0]["line"] = -1;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.functions[0].line' must be an integer in [0, 4294967295], "
            "got -1");
  p = ProfileJson();
  p["functions"][0]["name"] = false;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.functions[0].name' must be a string, got boolean");
  p = ProfileJson();
  p["nodes"][1]["parent"] = 4294967296;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.nodes[1].parent' must be an integer in [0, 4294967295], got "
            "4294967296");
  p = ProfileJson();
  p["nodes"][1]["self_cost"] = 1.5;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.nodes[1].self_cost' must be a non-negative integer, got 1.5");
  p = ProfileJson();
  p["builtins_folded"] = 1;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.builtins_folded' must be a boolean, got 1");
  p = ProfileJson();
  p["requests"] = -2;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.requests' must be a non-negative integer, got -2");
}

TEST(RecordNdjson, ProfileCodeHash) {
  // A JSON integer or its decimal string; written back as the string (all
  // 64 bits, for readers whose numbers are doubles), and only when known.
  for (const json& given : {json(18446744073709551615u), json("18446744073709551615")}) {
    json p = ProfileJson();
    p["functions"][0]["code_hash"] = given;
    Result<Batch> batch = DecodeRecordWith("profile", p);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    EXPECT_EQ(batch->records(0).profile().functions(0).code_hash(), UINT64_MAX) << given;
    const json line = json::parse(EncodeNdjson(*batch));
    EXPECT_EQ(line.at("profile").at("functions").at(0).at("code_hash"), "18446744073709551615");
    Result<Batch> again = DecodeLine(line);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE(Equal(*again, *batch));
  }
  json p = ProfileJson();
  p["functions"][0]["code_hash"] = 0;
  Result<Batch> unknown = DecodeRecordWith("profile", p);
  ASSERT_TRUE(unknown.ok()) << unknown.status().ToString();
  EXPECT_EQ(unknown->records(0).profile().functions(0).code_hash(), 0u);
  EXPECT_FALSE(json::parse(EncodeNdjson(*unknown))
                   .at("profile")
                   .at("functions")
                   .at(0)
                   .contains("code_hash"));
}

TEST(RecordNdjson, ProfileCodeHashWrongValues) {
  const std::string field =
      "line 1: field 'profile.functions[0].code_hash' must be an integer in "
      "[0, 18446744073709551615] or its decimal string, got ";
  const std::pair<json, std::string> cases[] = {
      {-1, "-1"},         {1.5, "1.5"},
      {1e19, "1e+19"},  // a float, however whole: a hash in one has lost bits
      {true, "boolean"},  {json::array(), "array"},
      {"", "''"},         {"-1", "'-1'"},
      {"+1", "'+1'"},     {" 1", "' 1'"},
      {"0x10", "'0x10'"}, {"18446744073709551616", "'18446744073709551616'"},
  };
  for (const auto& [value, got] : cases) {
    json p = ProfileJson();
    p["functions"][0]["code_hash"] = value;
    EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)), field + got) << value;
  }
  // The batch line's table, likewise.
  const json id = {{"type", "batch"},
                   {"sender", "web-17:4242"},
                   {"functions", {{{"file", "a.py"}, {"name", "f"}, {"code_hash", "x"}}}}};
  EXPECT_EQ(ErrorOf(DecodeBatch(Encoding::kNdjson, Lines({id.dump(), BaseLine().dump()}))),
            "line 1: field 'functions[0].code_hash' must be an integer in "
            "[0, 18446744073709551615] or its decimal string, got 'x'");
}

TEST(RecordNdjson, ProfileIsValidated) {
  json p = ProfileJson();
  p["nodes"][1]["parent"] = 1;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.nodes[1].parent' must be below 1 (a parent comes before its "
            "children), got 1");
  p = ProfileJson();
  p["nodes"][1]["function"] = 1;
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.nodes[1].function' must index profile.functions (1 of "
            "them), got 1");
  p = ProfileJson();
  p["mode"] = "exactly";
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.mode' must be one of exact, fast; got 'exactly'");
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", json::object())),
            "line 1: field 'profile.unit' must be one of instructions, cycles, cpu_ns, tsc; got "
            "''");
  p = ProfileJson();
  p["nodes"] = json::array();
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: profile has no nodes (node 0 must be the root)");
  p = ProfileJson();
  p["functions"][0]["file"] = std::string(kMaxProfileStringBytes + 1, 'f');
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: field 'profile.functions[0].file' is 1025 bytes; the limit is 1024");
  p = ProfileJson();
  p["nodes"] = json::array();
  for (size_t i = 0; i <= kMaxProfileNodes; ++i) p["nodes"].push_back(json::object());
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: profile has 200001 nodes; the limit is 200000");
  p = ProfileJson();
  p["functions"] = json::array();
  for (size_t i = 0; i <= kMaxProfileFunctions; ++i) p["functions"].push_back(json::object());
  EXPECT_EQ(ErrorOf(DecodeRecordWith("profile", p)),
            "line 1: profile has 100001 functions; the limit is 100000");
}

}  // namespace
}  // namespace cpuledger::record
