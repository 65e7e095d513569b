// src/record/checks.cc — the validators (codec.h states the rules) and the
// canonical form, shared by the protobuf and NDJSON decoders.
#include "record/checks.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "record/base64.h"
#include "record/hll.h"

#include "record/codec.h"

namespace cpuledger::record {
namespace checks {

constexpr int64_t kYear2000Us = 946'684'800'000'000;
constexpr int64_t kDayUs = 86'400'000'000;

int64_t NowUnixUs() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------------------
// Text for messages.

// Utf8Length() — the length of the well-formed UTF-8 sequence at p, per
// Unicode table 3-7 (no overlongs, no surrogates, nothing above U+10FFFF);
// 0 when there is none. REQUIRES: p < end.
size_t Utf8Length(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = *p;
  if (c < 0x80) return 1;
  size_t tail;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    tail = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    tail = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    tail = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (static_cast<size_t>(end - p) <= tail) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i <= tail; ++i)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return tail + 1;
}

// IsValidUtf8() — the rule nlohmann applies too, so a string that passes
// here can always be written as JSON. ASCII runs are checked 8 bytes at a
// time; no allocation.
bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p < end) {
    while (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, sizeof word);
      if (word & 0x8080808080808080ULL) break;
      p += 8;
    }
    if (p == end) break;
    const size_t n = Utf8Length(p, end);
    if (n == 0) return false;
    p += n;
  }
  return true;
}

// SafeText() — text from the input made safe to put in a message (which the
// server sends back as JSON): at most about `max_bytes` of it, control bytes,
// broken UTF-8 and any of `escape` written as \xNN.
std::string SafeText(std::string_view s, size_t max_bytes, std::string_view escape) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p < end && out.size() < max_bytes) {
    const size_t n = Utf8Length(p, end);
    if (n == 0 || *p < 0x20 || *p == 0x7f || escape.find(static_cast<char>(*p)) != escape.npos) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", *p);
      out += buf;
      ++p;
    } else {
      out.append(reinterpret_cast<const char*>(p), n);
      p += n;
    }
  }
  if (p < end) out += "...";
  return out;
}

// HasControl() — a C0 control character or DEL: never part of a name people
// read, and NUL or ESC in a dimension would end up in every report and log.
bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// Quote() — a value from the input, quoted for a message.
std::string Quote(std::string_view s) { return "'" + SafeText(s, 64, "'\\") + "'"; }

std::string FormatDouble(double v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

Status Prefixed(std::string_view prefix, const Status& s) {
  return Status(s.code(), std::string(prefix) + s.message());
}

// ---------------------------------------------------------------------------
// Validation. The checks allocate only to build an error message.

// CheckText() — the rules of a dimension value, a flag name and a flag value:
// at most kMaxDimensionBytes, UTF-8, no control characters. `subject` names
// it in the message ("field 'host'"); `echo` quotes the value after a
// control-character refusal (where the subject does not hold it already).
Status CheckText(const std::string& subject, std::string_view value, bool echo) {
  if (value.size() > kMaxDimensionBytes)
    return InvalidArgument(subject + " is " + std::to_string(value.size()) +
                           " bytes; the limit is " + std::to_string(kMaxDimensionBytes));
  if (!IsValidUtf8(value)) return InvalidArgument(subject + " is not valid UTF-8");
  if (HasControl(value))
    return InvalidArgument(subject + " holds a control character" +
                           (echo ? ": " + Quote(value) : std::string()));
  return OkStatus();
}

Status CheckDimension(std::string_view field, std::string_view value) {
  return CheckText("field '" + std::string(field) + "'", value, /*echo=*/true);
}

Status CheckRequired(std::string_view field, std::string_view value) {
  if (value.empty()) return InvalidArgument("missing required field '" + std::string(field) + "'");
  return CheckDimension(field, value);
}

bool IsKnownCounterSource(std::string_view source) {
  for (std::string_view known : kKnownCounterSources)
    if (source == known) return true;
  return false;
}

// CheckBill() — `prefix` names where the bill sits ("" for the request,
// "db.cpu." for a span) in messages.
Status CheckBill(const CpuBill& bill, std::string_view prefix, bool source_required) {
  const std::string& source = bill.counter_source();
  if (source.empty() && source_required)
    return InvalidArgument("missing required field '" + std::string(prefix) + "counter_source'");
  if (!source.empty() && !IsKnownCounterSource(source)) {
    std::string known;
    for (std::string_view k : kKnownCounterSources)
      known += (known.empty() ? "" : ", ") + std::string(k);
    return InvalidArgument("field '" + std::string(prefix) + "counter_source' must be one of " +
                           known + "; got " + Quote(source));
  }
  const double scale = bill.multiplex_scale();
  if (!(std::isfinite(scale) && scale >= 0))
    return InvalidArgument("field '" + std::string(prefix) +
                           "multiplex_scale' must be a finite number >= 0, got " +
                           FormatDouble(scale));
  return OkStatus();
}

// CheckNamedSpan() — db and cache: the field names the span, so the name
// is either left empty or says the same.
Status CheckNamedSpan(bool present, const Span& span, std::string_view field,
                      std::string_view cpu_prefix) {
  if (!present) return OkStatus();
  if (!span.name().empty() && span.name() != field)
    return InvalidArgument("field '" + std::string(field) + ".name' must be '" +
                           std::string(field) + "' or empty, got " + Quote(span.name()));
  if (span.has_cpu()) return CheckBill(span.cpu(), cpu_prefix, /*source_required=*/false);
  return OkStatus();
}

Status CheckCustomSpans(const RequestRecord& r) {
  const auto& spans = r.custom();
  if (static_cast<size_t>(spans.size()) > kMaxCustomSpans)
    return InvalidArgument(std::to_string(spans.size()) + " custom spans; the limit is " +
                           std::to_string(kMaxCustomSpans));
  for (int i = 0; i < spans.size(); ++i) {
    const Span& span = spans[i];
    if (span.name().empty()) return InvalidArgument("custom span with an empty name");
    CL_RETURN_IF_ERROR(CheckDimension("custom.name", span.name()));
    // Quadratic, but over at most kMaxCustomSpans names and allocation-free.
    for (int j = 0; j < i; ++j)
      if (spans[j].name() == span.name())
        return InvalidArgument("custom span " + Quote(span.name()) + " appears twice");
    if (span.has_cpu()) {
      Status s = CheckBill(span.cpu(), "cpu.", /*source_required=*/false);
      if (!s.ok()) return Prefixed("custom span " + Quote(span.name()) + ": ", s);
    }
  }
  return OkStatus();
}

Status CheckFlags(const RequestRecord& r) {
  if (static_cast<size_t>(r.flags_size()) > kMaxFlags)
    return InvalidArgument(std::to_string(r.flags_size()) + " flags; the limit is " +
                           std::to_string(kMaxFlags));
  for (const auto& [name, value] : r.flags()) {
    if (name.empty()) return InvalidArgument("flag with an empty name");
    CL_RETURN_IF_ERROR(CheckText("flag name " + Quote(name), name, /*echo=*/false));
    CL_RETURN_IF_ERROR(CheckText("flag " + Quote(name) + ": value", value, /*echo=*/true));
  }
  return OkStatus();
}

Status CheckStartTime(int64_t start_us, int64_t now_us) {
  if (start_us == 0) return InvalidArgument("missing required field 'start_time_unix_us'");
  if (start_us < kYear2000Us || start_us > now_us + kDayUs)
    return InvalidArgument(
        "field 'start_time_unix_us' must be unix microseconds between 2000-01-01 and now + 1 "
        "day, got " +
        std::to_string(start_us));
  return OkStatus();
}

// ---------------------------------------------------------------------------
// Profiles (ValidateProfile in codec.h states the rules).

template <size_t N>
Status CheckOneOf(std::string_view field, std::string_view value,
                  const std::string_view (&known)[N]) {
  for (std::string_view k : known)
    if (value == k) return OkStatus();
  std::string names;
  for (std::string_view k : known) names += (names.empty() ? "" : ", ") + std::string(k);
  return InvalidArgument("field '" + std::string(field) + "' must be one of " + names + "; got " +
                         Quote(value));
}

// ProfileItem() — "profile.nodes[3]", for messages only.
std::string ProfileItem(std::string_view list, size_t i) {
  return "profile." + std::string(list) + "[" + std::to_string(i) + "]";
}

Status CheckProfileString(std::string_view list, size_t i, std::string_view key,
                          std::string_view value) {
  const auto field = [&] {
    return "field '" + std::string(list) + "[" + std::to_string(i) + "]." + std::string(key) + "'";
  };
  if (value.size() > kMaxProfileStringBytes)
    return InvalidArgument(field() + " is " + std::to_string(value.size()) +
                           " bytes; the limit is " + std::to_string(kMaxProfileStringBytes));
  if (!IsValidUtf8(value)) return InvalidArgument(field() + " is not valid UTF-8");
  return OkStatus();
}

// CheckFunctionTable() — a profile's or a batch's function table: within
// kMaxProfileFunctions, file and name within kMaxProfileStringBytes. `owner`
// ("profile", "batch") and `list` ("profile.functions", "functions") name it
// in messages.
Status CheckFunctionTable(std::string_view owner, std::string_view list,
                          const google::protobuf::RepeatedPtrField<ProfileFunction>& table) {
  const size_t functions = static_cast<size_t>(table.size());
  if (functions > kMaxProfileFunctions)
    return InvalidArgument(std::string(owner) + " has " + std::to_string(functions) +
                           " functions; the limit is " + std::to_string(kMaxProfileFunctions));
  for (size_t i = 0; i < functions; ++i) {
    const ProfileFunction& f = table.Get(static_cast<int>(i));
    CL_RETURN_IF_ERROR(CheckProfileString(list, i, "file", f.file()));
    CL_RETURN_IF_ERROR(CheckProfileString(list, i, "name", f.name()));
  }
  return OkStatus();
}

// CheckProfile() — ValidateProfile()'s rules. `batch_functions`: the size of
// the batch's function table, which a profile with functions_in_batch
// indexes; none outside a batch, where such a profile cannot be checked.
Status CheckProfile(const Profile& p, std::optional<size_t> batch_functions) {
  CL_RETURN_IF_ERROR(CheckOneOf("profile.unit", p.unit(), kKnownProfileUnits));
  CL_RETURN_IF_ERROR(CheckOneOf("profile.mode", p.mode(), kKnownProfileModes));
  CL_RETURN_IF_ERROR(CheckDimension("profile.source", p.source()));
  const size_t nodes = static_cast<size_t>(p.nodes_size());
  if (nodes > kMaxProfileNodes)
    return InvalidArgument("profile has " + std::to_string(nodes) + " nodes; the limit is " +
                           std::to_string(kMaxProfileNodes));
  size_t functions = static_cast<size_t>(p.functions_size());
  std::string_view table = "profile.functions";
  if (p.functions_in_batch()) {
    if (!batch_functions)
      return InvalidArgument(
          "profile lists its functions in its batch (functions_in_batch): "
          "it can only be checked with its batch");
    if (functions != 0)
      return InvalidArgument("field 'profile.functions' must be empty with functions_in_batch");
    functions = *batch_functions;
    table = "the batch's functions";
  } else {
    CL_RETURN_IF_ERROR(CheckFunctionTable("profile", "profile.functions", p.functions()));
  }
  if (nodes == 0) return InvalidArgument("profile has no nodes (node 0 must be the root)");
  const ProfileNode& root = p.nodes(0);
  if (root.parent() != 0 || root.function() != 0)
    return InvalidArgument("profile.nodes[0] is the root: its parent and function must be 0, got " +
                           std::to_string(root.parent()) + " and " +
                           std::to_string(root.function()));
  for (size_t i = 1; i < nodes; ++i) {
    const ProfileNode& n = p.nodes(static_cast<int>(i));
    // parent < i makes the nodes a tree listed parents first: no cycles, and
    // one forward pass can build or walk it.
    if (n.parent() >= i)
      return InvalidArgument("field '" + ProfileItem("nodes", i) + ".parent' must be below " +
                             std::to_string(i) + " (a parent comes before its children), got " +
                             std::to_string(n.parent()));
    if (n.function() >= functions)
      return InvalidArgument("field '" + ProfileItem("nodes", i) + ".function' must index " +
                             std::string(table) + " (" + std::to_string(functions) +
                             " of them), got " + std::to_string(n.function()));
  }
  return OkStatus();
}

// ValidateRecordAt() — ValidateRecord() at `now_us`; `batch_functions` as
// for CheckProfile().
Status ValidateRecordAt(const RequestRecord& r, int64_t now_us,
                        std::optional<size_t> batch_functions) {
  CL_RETURN_IF_ERROR(CheckRequired("service", r.service()));
  CL_RETURN_IF_ERROR(CheckRequired("endpoint", r.endpoint()));
  CL_RETURN_IF_ERROR(CheckStartTime(r.start_time_unix_us(), now_us));
  const double rate = r.sample_rate();
  if (!(rate > 0 && rate <= 1))  // NaN fails too
    return InvalidArgument("field 'sample_rate' must be in (0, 1], got " + FormatDouble(rate));
  CL_RETURN_IF_ERROR(CheckBill(r.cpu(), "", /*source_required=*/true));
  if (r.status() >= 1000)
    return InvalidArgument("field 'status' must be below 1000, got " + std::to_string(r.status()));
  CL_RETURN_IF_ERROR(CheckDimension("method", r.method()));
  CL_RETURN_IF_ERROR(CheckDimension("host", r.host()));
  CL_RETURN_IF_ERROR(CheckDimension("cluster", r.cluster()));
  CL_RETURN_IF_ERROR(CheckDimension("region", r.region()));
  CL_RETURN_IF_ERROR(CheckDimension("commit", r.commit()));
  CL_RETURN_IF_ERROR(CheckDimension("user", r.user()));
  CL_RETURN_IF_ERROR(CheckDimension("request_id", r.request_id()));
  CL_RETURN_IF_ERROR(CheckFlags(r));
  CL_RETURN_IF_ERROR(CheckNamedSpan(r.has_db(), r.db(), "db", "db.cpu."));
  CL_RETURN_IF_ERROR(CheckNamedSpan(r.has_cache(), r.cache(), "cache", "cache.cpu."));
  CL_RETURN_IF_ERROR(CheckCustomSpans(r));
  if (r.has_profile()) return CheckProfile(r.profile(), batch_functions);
  return OkStatus();
}

Status CheckHll(const WorkerTally& t) {
  if (t.active_users_hll().empty()) {
    if (t.hll_precision() != 0)
      return InvalidArgument("field 'hll_precision' is set but 'active_users_hll' is empty");
    return OkStatus();
  }
  if (t.hll_precision() == 0)
    return InvalidArgument("field 'active_users_hll' needs 'hll_precision'");
  if (t.hll_precision() > static_cast<uint32_t>(HyperLogLog::kMaxPrecision))
    return InvalidArgument(
        "field 'hll_precision' must be in [" + std::to_string(HyperLogLog::kMinPrecision) + ", " +
        std::to_string(HyperLogLog::kMaxPrecision) + "], got " + std::to_string(t.hll_precision()));
  Result<HyperLogLog> hll =
      HyperLogLog::FromRegisters(t.active_users_hll(), static_cast<int>(t.hll_precision()));
  if (!hll.ok()) return Prefixed("field 'active_users_hll': ", hll.status());
  return OkStatus();
}

Status CheckEndpoints(const WorkerTally& t) {
  std::vector<std::string_view> names;
  names.reserve(t.endpoints_size());
  for (const EndpointCount& e : t.endpoints()) {
    if (e.endpoint().empty()) return InvalidArgument("endpoint count with an empty endpoint name");
    CL_RETURN_IF_ERROR(CheckDimension("endpoints.endpoint", e.endpoint()));
    if (e.sampled() > e.requests())
      return InvalidArgument("endpoint " + Quote(e.endpoint()) + ": sampled (" +
                             std::to_string(e.sampled()) + ") exceeds requests (" +
                             std::to_string(e.requests()) + ")");
    names.push_back(e.endpoint());
  }
  std::sort(names.begin(), names.end());
  const auto dup = std::adjacent_find(names.begin(), names.end());
  if (dup != names.end()) return InvalidArgument("endpoint " + Quote(*dup) + " appears twice");
  return OkStatus();
}

Status CheckSender(const Batch& batch) { return CheckDimension("sender", batch.sender()); }

// IsEmpty() — nothing to store: no records, no tallies, no drop count. An
// identity alone (sender, sequence) says nothing.
bool IsEmpty(const Batch& batch) {
  return batch.records_size() == 0 && batch.tallies_size() == 0 && batch.dropped_records() == 0;
}

// ---------------------------------------------------------------------------
// Canonical form (see the banner): applied to protobuf input before
// validation; NDJSON input comes out of the parser already canonical.

bool SpanNameLess(const Span* a, const Span* b) { return a->name() < b->name(); }
bool EndpointLess(const EndpointCount* a, const EndpointCount* b) {
  return a->endpoint() < b->endpoint();
}

void Canonicalize(RequestRecord* r) {
  if (r->has_db() && r->db().name().empty()) r->mutable_db()->set_name("db");
  if (r->has_cache() && r->cache().name().empty()) r->mutable_cache()->set_name("cache");
  auto* custom = r->mutable_custom();
  if (!std::is_sorted(custom->pointer_begin(), custom->pointer_end(), SpanNameLess))
    std::sort(custom->pointer_begin(), custom->pointer_end(), SpanNameLess);
}

void Canonicalize(WorkerTally* t) {
  auto* endpoints = t->mutable_endpoints();
  if (!std::is_sorted(endpoints->pointer_begin(), endpoints->pointer_end(), EndpointLess))
    std::sort(endpoints->pointer_begin(), endpoints->pointer_end(), EndpointLess);
}

}  // namespace checks

using namespace checks;

Status ValidateRecord(const RequestRecord& record) {
  return ValidateRecordAt(record, NowUnixUs(), std::nullopt);
}

Status ValidateProfile(const Profile& profile) { return CheckProfile(profile, std::nullopt); }

Status ValidateTally(const WorkerTally& tally) {
  const int64_t minute = tally.minute_unix();
  if (minute == 0) return InvalidArgument("missing required field 'minute_unix'");
  if (minute < 0 || minute % 60 != 0)
    return InvalidArgument(
        "field 'minute_unix' must be a positive multiple of 60 (unix seconds), got " +
        std::to_string(minute));
  CL_RETURN_IF_ERROR(CheckRequired("service", tally.service()));
  CL_RETURN_IF_ERROR(CheckDimension("host", tally.host()));
  CL_RETURN_IF_ERROR(CheckDimension("cluster", tally.cluster()));
  CL_RETURN_IF_ERROR(CheckDimension("region", tally.region()));
  CL_RETURN_IF_ERROR(CheckDimension("commit", tally.commit()));
  CL_RETURN_IF_ERROR(CheckDimension("sender", tally.sender()));
  CL_RETURN_IF_ERROR(CheckEndpoints(tally));
  return CheckHll(tally);
}

}  // namespace cpuledger::record
