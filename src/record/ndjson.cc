// src/record/ndjson.cc — the NDJSON form of a batch: DecodeNdjson() and
// EncodeNdjson(). Keys beyond the list in codec.h, so that every valid
// protobuf batch has an NDJSON spelling: the rest of the CpuBill
// (multiplex_scale, user_ns, kernel_ns) at record level; a span's own CpuBill
// as the same keys with the span's prefix (db_cpu_ns, cache_instructions,
// ...) or, for custom spans, inside the span's object (custom: {name:
// {wall_us, calls, cpu_ns, ...}}). The record's profile is one nested object
// with the Profile message's field names (codec.h). The batch line also
// carries Batch.dropped_records and Batch.functions. A null value is the same
// as an absent key (flags excepted: a flag value must be a string, boolean or
// number).
#include "record/ndjson.h"

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
#include <nlohmann/json.hpp>

#include "record/base64.h"
#include "record/hll.h"

#include "record/checks.h"
#include "record/codec.h"

namespace cpuledger::record {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;
using namespace checks;

// ---------------------------------------------------------------------------
// NDJSON: reading typed values out of a parsed line.

// FieldName — where a value sits, for messages: "custom.render.cpu_ns" is
// {"custom", "render", "cpu_ns"}. Joined only when a message is built.
struct FieldName {
  std::string_view parent;
  std::string_view child;
  std::string_view key;

  std::string str() const {
    std::string out;
    for (std::string_view part : {parent, child, key}) {
      if (part.empty()) continue;
      if (!out.empty()) out += '.';
      out += SafeText(part, 64);  // span and endpoint names come from the input
    }
    return out;
  }
};

std::string Describe(const Json& v) {
  if (v.is_number()) return v.dump();
  return v.type_name();
}

Status WrongType(const FieldName& f, std::string_view want, const Json& v) {
  return InvalidArgument("field '" + f.str() + "' must be " + std::string(want) + ", got " +
                         Describe(v));
}

// AsUint64() / AsInt64() — a JSON integer, or a float with no fraction
// (12.0) that fits. Anything else is not an integer.
bool AsUint64(const Json& v, uint64_t* out) {
  switch (v.type()) {
    case Json::value_t::number_unsigned:
      *out = v.get<uint64_t>();
      return true;
    case Json::value_t::number_integer: {
      const int64_t i = v.get<int64_t>();
      if (i < 0) return false;
      *out = static_cast<uint64_t>(i);
      return true;
    }
    case Json::value_t::number_float: {
      const double d = v.get<double>();
      if (!(d >= 0 && d < 0x1p64) || d != std::trunc(d)) return false;
      *out = static_cast<uint64_t>(d);
      return true;
    }
    default:
      return false;
  }
}

bool AsInt64(const Json& v, int64_t* out) {
  switch (v.type()) {
    case Json::value_t::number_unsigned: {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return false;
      *out = static_cast<int64_t>(u);
      return true;
    }
    case Json::value_t::number_integer:
      *out = v.get<int64_t>();
      return true;
    case Json::value_t::number_float: {
      const double d = v.get<double>();
      if (!(d >= -0x1p63 && d < 0x1p63) || d != std::trunc(d)) return false;
      *out = static_cast<int64_t>(d);
      return true;
    }
    default:
      return false;
  }
}

Status ReadUint64(const Json& v, const FieldName& f, uint64_t* out) {
  if (!AsUint64(v, out)) return WrongType(f, "a non-negative integer", v);
  return OkStatus();
}

Status ReadUint32(const Json& v, const FieldName& f, uint32_t* out) {
  uint64_t u;
  if (!AsUint64(v, &u) || u > UINT32_MAX) return WrongType(f, "an integer in [0, 4294967295]", v);
  *out = static_cast<uint32_t>(u);
  return OkStatus();
}

Status ReadInt64(const Json& v, const FieldName& f, int64_t* out) {
  if (!AsInt64(v, out)) return WrongType(f, "an integer", v);
  return OkStatus();
}

Status ReadDouble(const Json& v, const FieldName& f, double* out) {
  if (!v.is_number()) return WrongType(f, "a number", v);
  *out = v.get<double>();
  return OkStatus();
}

Status ReadBool(const Json& v, const FieldName& f, bool* out) {
  if (!v.is_boolean()) return WrongType(f, "a boolean", v);
  *out = v.get<bool>();
  return OkStatus();
}

Status ReadString(const Json& v, const FieldName& f, std::string* out) {
  if (!v.is_string()) return WrongType(f, "a string", v);
  *out = v.get_ref<const std::string&>();
  return OkStatus();
}

const Json::object_t* AsObject(const Json& v) {
  return v.is_object() ? &v.get_ref<const Json::object_t&>() : nullptr;
}

// ---------------------------------------------------------------------------
// NDJSON: the CpuBill keys, shared by the request and its spans.

enum class BillKey {
  kInstructions,
  kCycles,
  kCpuNs,
  kCounterSource,
  kKernelIncluded,
  kMultiplexScale,
  kUserNs,
  kKernelNs
};

constexpr std::pair<std::string_view, BillKey> kBillKeys[] = {
    {"instructions", BillKey::kInstructions},
    {"cycles", BillKey::kCycles},
    {"cpu_ns", BillKey::kCpuNs},
    {"counter_source", BillKey::kCounterSource},
    {"kernel_included", BillKey::kKernelIncluded},
    {"multiplex_scale", BillKey::kMultiplexScale},
    {"user_ns", BillKey::kUserNs},
    {"kernel_ns", BillKey::kKernelNs},
};

std::optional<BillKey> FindBillKey(std::string_view key) {
  for (const auto& [name, k] : kBillKeys)
    if (key == name) return k;
  return std::nullopt;
}

Status ReadBillField(BillKey key, const Json& v, const FieldName& f, CpuBill* bill) {
  uint64_t u = 0;
  switch (key) {
    case BillKey::kInstructions:
      CL_RETURN_IF_ERROR(ReadUint64(v, f, &u));
      bill->set_instructions(u);
      return OkStatus();
    case BillKey::kCycles:
      CL_RETURN_IF_ERROR(ReadUint64(v, f, &u));
      bill->set_cycles(u);
      return OkStatus();
    case BillKey::kCpuNs:
      CL_RETURN_IF_ERROR(ReadUint64(v, f, &u));
      bill->set_cpu_ns(u);
      return OkStatus();
    case BillKey::kCounterSource:
      return ReadString(v, f, bill->mutable_counter_source());
    case BillKey::kKernelIncluded: {
      bool b = false;
      CL_RETURN_IF_ERROR(ReadBool(v, f, &b));
      bill->set_kernel_included(b);
      return OkStatus();
    }
    case BillKey::kMultiplexScale: {
      double d = 0;
      CL_RETURN_IF_ERROR(ReadDouble(v, f, &d));
      bill->set_multiplex_scale(d);
      return OkStatus();
    }
    case BillKey::kUserNs:
      CL_RETURN_IF_ERROR(ReadUint64(v, f, &u));
      bill->set_user_ns(u);
      return OkStatus();
    case BillKey::kKernelNs:
      CL_RETURN_IF_ERROR(ReadUint64(v, f, &u));
      bill->set_kernel_ns(u);
      return OkStatus();
  }
  return Internal("unhandled CpuBill key");
}

// ReadSpanField() — `key` is one span key with any prefix removed: the
// wall-time key (`wall_key`), "calls", or a CpuBill key; any other key is
// ignored. `span()` yields the span to fill, so that a record gets a db or
// cache span only when a key for it is present.
template <typename MutableSpan>
Status ReadSpanField(std::string_view key, std::string_view wall_key, const Json& v,
                     const FieldName& f, MutableSpan span) {
  if (key == wall_key) {
    uint64_t u = 0;
    CL_RETURN_IF_ERROR(ReadUint64(v, f, &u));
    span()->set_wall_us(u);
  } else if (key == "calls") {
    uint32_t u = 0;
    CL_RETURN_IF_ERROR(ReadUint32(v, f, &u));
    span()->set_calls(u);
  } else if (const auto bill_key = FindBillKey(key)) {
    return ReadBillField(*bill_key, v, f, span()->mutable_cpu());
  }
  return OkStatus();
}

Status ReadCustomSpans(const Json& v, RequestRecord* r) {
  const Json::object_t* spans = AsObject(v);
  if (!spans) return WrongType({"", "", "custom"}, "an object of spans", v);
  if (spans->size() > kMaxCustomSpans)
    return InvalidArgument(std::to_string(spans->size()) + " custom spans; the limit is " +
                           std::to_string(kMaxCustomSpans));
  // The object is sorted by name, which is the canonical span order.
  for (const auto& [name, body] : *spans) {
    if (body.is_null()) continue;
    const Json::object_t* fields = AsObject(body);
    if (!fields) return WrongType({"custom", name, ""}, "an object", body);
    Span* span = r->add_custom();
    span->set_name(name);
    for (const auto& [key, value] : *fields) {
      if (value.is_null()) continue;
      CL_RETURN_IF_ERROR(
          ReadSpanField(key, "wall_us", value, {"custom", name, key}, [span] { return span; }));
    }
  }
  return OkStatus();
}

Status ReadFlags(const Json& v, RequestRecord* r) {
  const Json::object_t* flags = AsObject(v);
  if (!flags) return WrongType({"", "", "flags"}, "an object", v);
  if (flags->size() > kMaxFlags)
    return InvalidArgument(std::to_string(flags->size()) + " flags; the limit is " +
                           std::to_string(kMaxFlags));
  auto* out = r->mutable_flags();
  for (const auto& [name, value] : *flags) {
    switch (value.type()) {
      case Json::value_t::string:
        (*out)[name] = value.get_ref<const std::string&>();
        break;
      case Json::value_t::boolean:
        (*out)[name] = value.get<bool>() ? "on" : "off";
        break;
      case Json::value_t::number_integer:
      case Json::value_t::number_unsigned:
      case Json::value_t::number_float:
        (*out)[name] = value.dump();
        break;
      default:
        return InvalidArgument("flag " + Quote(name) +
                               " must be a string, boolean or number, got " + value.type_name());
    }
  }
  return OkStatus();
}

// --- the profile object

Status ProfileWrongType(std::string_view list, size_t i, std::string_view key,
                        std::string_view want, const Json& v) {
  const std::string item = std::string(list) + "[" + std::to_string(i) + "]";
  return WrongType({"profile", item, key}, want, v);
}

// ReadCodeHash() — a ProfileFunction.code_hash: a JSON integer, or its
// decimal string (JavaScript and other readers that hold numbers as doubles
// keep integers exactly only up to 2^53). Not a float: a hash that went
// through one has lost its low bits.
Status ReadCodeHash(const Json& v, const FieldName& f, uint64_t* out) {
  constexpr std::string_view kWant =
      "an integer in [0, 18446744073709551615] or its decimal string";
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), *out);
    if (!s.empty() && error == std::errc() && end == s.data() + s.size()) return OkStatus();
    return InvalidArgument("field '" + f.str() + "' must be " + std::string(kWant) + ", got " +
                           Quote(s));
  }
  if (v.is_number_integer() && AsUint64(v, out)) return OkStatus();  // unsigned or >= 0
  return WrongType(f, kWant, v);
}

// ReadProfileFunction() — item i of a function table; `owner` is "profile"
// for a profile's own table, "" for the batch line's.
Status ReadProfileFunction(const Json& v, std::string_view owner, size_t i, ProfileFunction* f) {
  const std::string item = "functions[" + std::to_string(i) + "]";
  const Json::object_t* fields = AsObject(v);
  if (!fields) return WrongType({owner, item, ""}, "an object", v);
  for (const auto& [key, value] : *fields) {
    if (value.is_null()) continue;
    if (key == "file" || key == "name") {
      if (!value.is_string()) return WrongType({owner, item, key}, "a string", value);
      (key == "file" ? f->mutable_file() : f->mutable_name())
          ->assign(value.get_ref<const std::string&>());
    } else if (key == "line") {
      uint64_t u = 0;
      if (!AsUint64(value, &u) || u > UINT32_MAX)
        return WrongType({owner, item, key}, "an integer in [0, 4294967295]", value);
      f->set_line(static_cast<uint32_t>(u));
    } else if (key == "code_hash") {
      uint64_t u = 0;
      CL_RETURN_IF_ERROR(ReadCodeHash(value, {owner, item, key}, &u));
      f->set_code_hash(u);
    }
  }
  return OkStatus();
}

// ReadFunctionTable() — a JSON array of functions into `table`; `owner` as
// for ReadProfileFunction(), "batch" in the size message when "".
Status ReadFunctionTable(const Json& value, std::string_view owner,
                         google::protobuf::RepeatedPtrField<ProfileFunction>* table) {
  if (!value.is_array()) return WrongType({owner, "", "functions"}, "an array of functions", value);
  // Checked before reading, so an oversized table costs no messages.
  if (value.size() > kMaxProfileFunctions)
    return InvalidArgument((owner.empty() ? "batch" : std::string(owner)) + " has " +
                           std::to_string(value.size()) + " functions; the limit is " +
                           std::to_string(kMaxProfileFunctions));
  table->Reserve(static_cast<int>(value.size()));
  for (size_t i = 0; i < value.size(); ++i)
    CL_RETURN_IF_ERROR(ReadProfileFunction(value[i], owner, i, table->Add()));
  return OkStatus();
}

// kNodeKeys — the integer keys of a profile node.
using NodeSetter = void (*)(ProfileNode*, uint64_t);
constexpr std::pair<std::string_view, NodeSetter> kNodeKeys[] = {
    {"calls", [](ProfileNode* n, uint64_t u) { n->set_calls(u); }},
    {"primitive_calls", [](ProfileNode* n, uint64_t u) { n->set_primitive_calls(u); }},
    {"self_cost", [](ProfileNode* n, uint64_t u) { n->set_self_cost(u); }},
    {"total_cost", [](ProfileNode* n, uint64_t u) { n->set_total_cost(u); }},
};

Status ReadProfileNode(const Json& v, size_t i, ProfileNode* n) {
  const Json::object_t* fields = AsObject(v);
  if (!fields) return ProfileWrongType("nodes", i, "", "an object", v);
  for (const auto& [key, value] : *fields) {
    if (value.is_null()) continue;
    uint64_t u = 0;
    if (key == "parent" || key == "function") {
      if (!AsUint64(value, &u) || u > UINT32_MAX)
        return ProfileWrongType("nodes", i, key, "an integer in [0, 4294967295]", value);
      if (key == "parent")
        n->set_parent(static_cast<uint32_t>(u));
      else
        n->set_function(static_cast<uint32_t>(u));
      continue;
    }
    for (const auto& [name, set] : kNodeKeys) {
      if (key != name) continue;
      if (!AsUint64(value, &u))
        return ProfileWrongType("nodes", i, key, "a non-negative integer", value);
      set(n, u);
    }
  }
  return OkStatus();
}

Status ReadProfile(const Json& v, Profile* p) {
  const Json::object_t* fields = AsObject(v);
  if (!fields) return WrongType({"", "", "profile"}, "an object", v);
  for (const auto& [key, value] : *fields) {
    if (value.is_null()) continue;
    const FieldName f{"profile", "", key};
    uint64_t u = 0;
    if (key == "unit") {
      CL_RETURN_IF_ERROR(ReadString(value, f, p->mutable_unit()));
    } else if (key == "source") {
      CL_RETURN_IF_ERROR(ReadString(value, f, p->mutable_source()));
    } else if (key == "mode") {
      CL_RETURN_IF_ERROR(ReadString(value, f, p->mutable_mode()));
    } else if (key == "functions") {
      CL_RETURN_IF_ERROR(ReadFunctionTable(value, "profile", p->mutable_functions()));
    } else if (key == "nodes") {
      if (!value.is_array()) return WrongType(f, "an array of nodes", value);
      if (value.size() > kMaxProfileNodes)
        return InvalidArgument("profile has " + std::to_string(value.size()) +
                               " nodes; the limit is " + std::to_string(kMaxProfileNodes));
      p->mutable_nodes()->Reserve(static_cast<int>(value.size()));
      for (size_t i = 0; i < value.size(); ++i)
        CL_RETURN_IF_ERROR(ReadProfileNode(value[i], i, p->add_nodes()));
    } else if (key == "builtins_folded") {
      bool b = false;
      CL_RETURN_IF_ERROR(ReadBool(value, f, &b));
      p->set_builtins_folded(b);
    } else if (key == "functions_in_batch") {
      bool b = false;
      CL_RETURN_IF_ERROR(ReadBool(value, f, &b));
      p->set_functions_in_batch(b);
    } else if (key == "overhead_per_event") {
      CL_RETURN_IF_ERROR(ReadUint64(value, f, &u));
      p->set_overhead_per_event(u);
    } else if (key == "requests") {
      CL_RETURN_IF_ERROR(ReadUint64(value, f, &u));
      p->set_requests(u);
    }
  }
  return OkStatus();
}

// String dimensions of a record line, by key.
using RecordString = std::string* (RequestRecord::*)();
constexpr std::pair<std::string_view, RecordString> kRecordStrings[] = {
    {"service", &RequestRecord::mutable_service},
    {"endpoint", &RequestRecord::mutable_endpoint},
    {"method", &RequestRecord::mutable_method},
    {"host", &RequestRecord::mutable_host},
    {"cluster", &RequestRecord::mutable_cluster},
    {"region", &RequestRecord::mutable_region},
    {"commit", &RequestRecord::mutable_commit},
    {"user", &RequestRecord::mutable_user},
    {"request_id", &RequestRecord::mutable_request_id},
};

// ReadRecordField() — one key of a record line; unknown keys are ignored.
Status ReadRecordField(std::string_view key, const Json& v, RequestRecord* r) {
  const FieldName f{"", "", key};
  for (const auto& [name, member] : kRecordStrings)
    if (key == name) return ReadString(v, f, (r->*member)());
  if (const auto bill_key = FindBillKey(key))
    return ReadBillField(*bill_key, v, f, r->mutable_cpu());
  if (key == "start_time_unix_us") {
    int64_t t = 0;
    CL_RETURN_IF_ERROR(ReadInt64(v, f, &t));
    r->set_start_time_unix_us(t);
  } else if (key == "wall_us") {
    uint64_t u = 0;
    CL_RETURN_IF_ERROR(ReadUint64(v, f, &u));
    r->set_wall_us(u);
  } else if (key == "status") {
    uint64_t u = 0;
    CL_RETURN_IF_ERROR(ReadUint64(v, f, &u));
    if (u >= 1000) return InvalidArgument("field 'status' must be below 1000, got " + v.dump());
    r->set_status(static_cast<uint32_t>(u));
  } else if (key == "sample_rate") {
    double d = 0;
    CL_RETURN_IF_ERROR(ReadDouble(v, f, &d));
    r->set_sample_rate(d);
  } else if (key == "flags") {
    return ReadFlags(v, r);
  } else if (key == "custom") {
    return ReadCustomSpans(v, r);
  } else if (key == "profile") {
    return ReadProfile(v, r->mutable_profile());
  } else if (key.starts_with("db_")) {
    return ReadSpanField(key.substr(3), "us", v, f, [r] { return r->mutable_db(); });
  } else if (key.starts_with("cache_")) {
    return ReadSpanField(key.substr(6), "us", v, f, [r] { return r->mutable_cache(); });
  }
  return OkStatus();
}

Status RecordFromJson(const Json::object_t& line, RequestRecord* r) {
  r->mutable_cpu();  // every record has a bill; validation wants its counter_source
  bool has_sample_rate = false;
  for (const auto& [key, value] : line) {
    if (value.is_null() || key == "type") continue;
    if (key == "sample_rate") has_sample_rate = true;
    CL_RETURN_IF_ERROR(ReadRecordField(key, value, r));
  }
  if (!has_sample_rate) r->set_sample_rate(1.0);
  if (r->has_db()) r->mutable_db()->set_name("db");
  if (r->has_cache()) r->mutable_cache()->set_name("cache");
  return OkStatus();
}

// --- tally lines

Status ReadEndpoints(const Json& v, WorkerTally* t) {
  const Json::object_t* endpoints = AsObject(v);
  if (!endpoints) return WrongType({"", "", "endpoints"}, "an object", v);
  for (const auto& [name, count] : *endpoints) {
    EndpointCount* e = t->add_endpoints();
    e->set_endpoint(name);
    if (const Json::object_t* fields = AsObject(count)) {
      uint64_t u = 0;
      for (const auto& [key, value] : *fields) {
        if (value.is_null()) continue;
        if (key == "requests") {
          CL_RETURN_IF_ERROR(ReadUint64(value, {"endpoints", name, key}, &u));
          e->set_requests(u);
        } else if (key == "sampled") {
          CL_RETURN_IF_ERROR(ReadUint64(value, {"endpoints", name, key}, &u));
          e->set_sampled(u);
        }
      }
    } else {
      uint64_t requests = 0;
      if (!AsUint64(count, &requests))
        return WrongType({"endpoints", name, ""}, "a request count or {requests, sampled}", count);
      e->set_requests(requests);
    }
  }
  return OkStatus();
}

Status ReadUsers(const Json& v, WorkerTally* t) {
  if (!v.is_array()) return WrongType({"", "", "users"}, "an array of strings", v);
  HyperLogLog hll(HyperLogLog::kDefaultPrecision);
  size_t i = 0;
  for (const Json& user : v) {
    if (!user.is_string())
      return InvalidArgument("field 'users[" + std::to_string(i) + "]' must be a string, got " +
                             Describe(user));
    hll.Add(user.get_ref<const std::string&>());
    ++i;
  }
  t->set_active_users_hll(hll.registers());
  t->set_hll_precision(static_cast<uint32_t>(hll.precision()));
  return OkStatus();
}

using TallyString = std::string* (WorkerTally::*)();
constexpr std::pair<std::string_view, TallyString> kTallyStrings[] = {
    {"service", &WorkerTally::mutable_service}, {"host", &WorkerTally::mutable_host},
    {"cluster", &WorkerTally::mutable_cluster}, {"region", &WorkerTally::mutable_region},
    {"commit", &WorkerTally::mutable_commit},   {"sender", &WorkerTally::mutable_sender},
};

Status TallyFromJson(const Json::object_t& line, WorkerTally* t) {
  const Json* users = nullptr;
  bool has_hll = false;
  for (const auto& [key, value] : line) {
    if (value.is_null() || key == "type") continue;
    const FieldName f{"", "", key};
    bool done = false;
    for (const auto& [name, member] : kTallyStrings) {
      if (key != name) continue;
      CL_RETURN_IF_ERROR(ReadString(value, f, (t->*member)()));
      done = true;
    }
    if (done) continue;
    if (key == "minute_unix") {
      int64_t m = 0;
      CL_RETURN_IF_ERROR(ReadInt64(value, f, &m));
      t->set_minute_unix(m);
    } else if (key == "endpoints") {
      CL_RETURN_IF_ERROR(ReadEndpoints(value, t));
    } else if (key == "users") {
      users = &value;
    } else if (key == "active_users_hll") {
      std::string text;
      CL_RETURN_IF_ERROR(ReadString(value, f, &text));
      Result<std::string> bytes = Base64Decode(text);
      if (!bytes.ok()) return Prefixed("field 'active_users_hll': ", bytes.status());
      t->set_active_users_hll(std::move(bytes).value());
      has_hll = true;
    } else if (key == "hll_precision") {
      uint32_t p = 0;
      CL_RETURN_IF_ERROR(ReadUint32(value, f, &p));
      t->set_hll_precision(p);
    }
  }
  if (users) {
    if (has_hll || t->hll_precision() != 0)
      return InvalidArgument(
          "a tally takes 'users' or 'active_users_hll' + 'hll_precision', not both");
    CL_RETURN_IF_ERROR(ReadUsers(*users, t));
  }
  return OkStatus();
}

// --- batch lines

Status BatchIdentityFromJson(const Json::object_t& line, Batch* batch) {
  for (const auto& [key, value] : line) {
    if (value.is_null()) continue;
    if (key == "sender") {
      CL_RETURN_IF_ERROR(ReadString(value, {"", "", key}, batch->mutable_sender()));
    } else if (key == "sequence") {
      uint64_t u = 0;
      CL_RETURN_IF_ERROR(ReadUint64(value, {"", "", key}, &u));
      batch->set_sequence(u);
    } else if (key == "dropped_records") {
      uint64_t u = 0;
      CL_RETURN_IF_ERROR(ReadUint64(value, {"", "", key}, &u));
      batch->set_dropped_records(u);
    } else if (key == "functions") {
      CL_RETURN_IF_ERROR(ReadFunctionTable(value, "", batch->mutable_functions()));
      CL_RETURN_IF_ERROR(CheckFunctionTable("batch", "functions", batch->functions()));
    }
  }
  return CheckSender(*batch);
}

// --- lines

enum class LineType { kRecord, kTally, kBatch };

Result<LineType> TypeOf(const Json::object_t& line) {
  const auto it = line.find("type");
  if (it == line.end() || it->second.is_null()) return LineType::kRecord;
  if (!it->second.is_string()) return WrongType({"", "", "type"}, "a string", it->second);
  const std::string& type = it->second.get_ref<const std::string&>();
  if (type == "record") return LineType::kRecord;
  if (type == "tally") return LineType::kTally;
  if (type == "batch") return LineType::kBatch;
  return InvalidArgument("unknown line type " + Quote(type) + " (expected record, tally or batch)");
}

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// NdjsonDecoder — the state carried from line to line.
class NdjsonDecoder {
 public:
  // Decodes into `batch` (the caller's, maybe on an arena: no copy after).
  NdjsonDecoder(int64_t now_us, Batch& batch) : now_us_(now_us), batch_(batch) {}

  // NdjsonDecoder::Line() — RETURNS: the error for this line, without its
  // "line N" prefix.
  Status Line(std::string_view text, size_t line_no);

 private:
  int64_t now_us_;
  Batch& batch_;
  size_t batch_line_ = 0;  // the line that set the identity; 0: none yet
};

Status NdjsonDecoder::Line(std::string_view text, size_t line_no) {
  const Json json = Json::parse(text.data(), text.data() + text.size());
  const Json::object_t* line = AsObject(json);
  if (!line) return InvalidArgument("expected a JSON object, got " + std::string(json.type_name()));
  Result<LineType> type = TypeOf(*line);
  if (!type.ok()) return type.status();
  switch (*type) {
    case LineType::kRecord: {
      if (static_cast<size_t>(batch_.records_size()) >= kMaxRecordsPerBatch)
        return ResourceExhausted("more than " + std::to_string(kMaxRecordsPerBatch) +
                                 " records in one batch");
      RequestRecord* r = batch_.add_records();
      CL_RETURN_IF_ERROR(RecordFromJson(*line, r));
      // A profile that shares the batch's functions comes after the batch line.
      return ValidateRecordAt(*r, now_us_, static_cast<size_t>(batch_.functions_size()));
    }
    case LineType::kTally: {
      if (static_cast<size_t>(batch_.tallies_size()) >= kMaxRecordsPerBatch)
        return ResourceExhausted("more than " + std::to_string(kMaxRecordsPerBatch) +
                                 " tallies in one batch");
      WorkerTally* t = batch_.add_tallies();
      CL_RETURN_IF_ERROR(TallyFromJson(*line, t));
      return ValidateTally(*t);
    }
    case LineType::kBatch:
      if (batch_line_ != 0)
        return InvalidArgument("a second batch line (the first is line " +
                               std::to_string(batch_line_) + ")");
      batch_line_ = line_no;
      return BatchIdentityFromJson(*line, &batch_);
  }
  return Internal("unhandled line type");
}

// ---------------------------------------------------------------------------
// NDJSON encoding. ordered_json keeps the keys in the order written here,
// which is the order a person reads them in.

void PutBill(const CpuBill& bill, std::string_view prefix, OrderedJson& out) {
  const auto key = [&](std::string_view k) { return std::string(prefix) + std::string(k); };
  out[key("cpu_ns")] = bill.cpu_ns();  // always: it marks the bill as present
  if (!bill.counter_source().empty()) out[key("counter_source")] = bill.counter_source();
  if (bill.has_instructions()) out[key("instructions")] = bill.instructions();
  if (bill.has_cycles()) out[key("cycles")] = bill.cycles();
  if (bill.has_kernel_included()) out[key("kernel_included")] = bill.kernel_included();
  if (bill.multiplex_scale() != 0) out[key("multiplex_scale")] = bill.multiplex_scale();
  if (bill.has_user_ns()) out[key("user_ns")] = bill.user_ns();
  if (bill.has_kernel_ns()) out[key("kernel_ns")] = bill.kernel_ns();
}

void PutNamedSpan(const Span& span, std::string_view prefix, OrderedJson& out) {
  out[std::string(prefix) + "us"] = span.wall_us();  // always: it marks the span as present
  out[std::string(prefix) + "calls"] = span.calls();
  if (span.has_cpu()) PutBill(span.cpu(), prefix, out);
}

void PutString(std::string_view key, const std::string& value, OrderedJson& out) {
  if (!value.empty()) out[std::string(key)] = value;
}

OrderedJson FunctionsToJson(const google::protobuf::RepeatedPtrField<ProfileFunction>& table) {
  OrderedJson out = OrderedJson::array();
  for (const ProfileFunction& f : table) {
    OrderedJson& item =
        out.emplace_back(OrderedJson{{"file", f.file()}, {"line", f.line()}, {"name", f.name()}});
    // A string: exact for every reader (see ReadCodeHash()); absent when unknown.
    if (f.code_hash() != 0) item["code_hash"] = std::to_string(f.code_hash());
  }
  return out;
}

// ProfileToJson() — every key always, so the shape is plain to a reader.
OrderedJson ProfileToJson(const Profile& p) {
  OrderedJson out = OrderedJson::object();
  out["unit"] = p.unit();
  out["source"] = p.source();
  out["mode"] = p.mode();
  out["functions"] = FunctionsToJson(p.functions());
  OrderedJson& nodes = out["nodes"] = OrderedJson::array();
  for (const ProfileNode& n : p.nodes())
    nodes.push_back({{"parent", n.parent()},
                     {"function", n.function()},
                     {"calls", n.calls()},
                     {"primitive_calls", n.primitive_calls()},
                     {"self_cost", n.self_cost()},
                     {"total_cost", n.total_cost()}});
  out["builtins_folded"] = p.builtins_folded();
  out["overhead_per_event"] = p.overhead_per_event();
  out["requests"] = p.requests();
  if (p.functions_in_batch()) out["functions_in_batch"] = true;
  return out;
}

OrderedJson RecordToJson(const RequestRecord& r) {
  OrderedJson out = OrderedJson::object();
  out["service"] = r.service();
  out["endpoint"] = r.endpoint();
  PutString("method", r.method(), out);
  if (r.status() != 0) out["status"] = r.status();
  PutString("host", r.host(), out);
  PutString("cluster", r.cluster(), out);
  PutString("region", r.region(), out);
  PutString("commit", r.commit(), out);
  if (!r.flags().empty()) {
    // Sorted, so that one batch always encodes to the same text.
    std::vector<std::pair<std::string_view, std::string_view>> flags(r.flags().begin(),
                                                                     r.flags().end());
    std::sort(flags.begin(), flags.end());
    OrderedJson& obj = out["flags"] = OrderedJson::object();
    for (const auto& [name, value] : flags) obj[std::string(name)] = std::string(value);
  }
  PutString("user", r.user(), out);
  out["start_time_unix_us"] = r.start_time_unix_us();
  out["wall_us"] = r.wall_us();
  PutBill(r.cpu(), "", out);
  if (r.has_db()) PutNamedSpan(r.db(), "db_", out);
  if (r.has_cache()) PutNamedSpan(r.cache(), "cache_", out);
  if (!r.custom().empty()) {
    OrderedJson& custom = out["custom"] = OrderedJson::object();
    for (const Span& span : r.custom()) {
      OrderedJson& s = custom[span.name()] = OrderedJson::object();
      s["wall_us"] = span.wall_us();
      s["calls"] = span.calls();
      if (span.has_cpu()) PutBill(span.cpu(), "", s);
    }
  }
  out["sample_rate"] = r.sample_rate();
  PutString("request_id", r.request_id(), out);
  if (r.has_profile()) out["profile"] = ProfileToJson(r.profile());
  return out;
}

OrderedJson TallyToJson(const WorkerTally& t) {
  OrderedJson out = OrderedJson::object();
  out["type"] = "tally";
  out["minute_unix"] = t.minute_unix();
  out["service"] = t.service();
  PutString("host", t.host(), out);
  PutString("cluster", t.cluster(), out);
  PutString("region", t.region(), out);
  PutString("commit", t.commit(), out);
  PutString("sender", t.sender(), out);
  if (!t.endpoints().empty()) {
    OrderedJson& endpoints = out["endpoints"] = OrderedJson::object();
    for (const EndpointCount& e : t.endpoints()) {
      if (e.sampled() == 0)
        endpoints[e.endpoint()] = e.requests();
      else
        endpoints[e.endpoint()] = {{"requests", e.requests()}, {"sampled", e.sampled()}};
    }
  }
  if (!t.active_users_hll().empty()) {
    out["active_users_hll"] = Base64Encode(t.active_users_hll());
    out["hll_precision"] = t.hll_precision();
  }
  return out;
}

void AppendLine(const OrderedJson& line, std::string& out) {
  // replace, not throw: EncodeNdjson has no error path, and a batch that
  // passed validation has no invalid UTF-8 to replace.
  out += line.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
  out += '\n';
}

}  // namespace

Status DecodeNdjson(std::string_view body, int64_t now_us, Batch& batch) {
  NdjsonDecoder decoder(now_us, batch);
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view text = body.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (IsBlank(text)) continue;
    const auto where = [line_no] { return "line " + std::to_string(line_no); };
    try {
      Status s = decoder.Line(text, line_no);
      if (!s.ok()) return Prefixed(where() + ": ", s);
    } catch (const Json::parse_error& e) {
      // nlohmann quotes the input it last read, raw and unbounded.
      return InvalidArgument(where() + " is not valid JSON: " + SafeText(e.what(), 256));
    } catch (const Json::out_of_range& e) {  // 1e400: a number no field can hold
      return InvalidArgument(where() + ": a number is out of range: " + SafeText(e.what(), 256));
    } catch (const Json::exception& e) {  // a bug here, not bad input: say so
      return Internal(where() + ": " + e.what());
    }
  }
  if (IsEmpty(batch)) return InvalidArgument("empty batch");
  return OkStatus();
}

std::string EncodeNdjson(const Batch& batch) {
  std::string out;
  if (!batch.sender().empty() || batch.sequence() != 0 || batch.dropped_records() != 0 ||
      batch.functions_size() != 0) {
    OrderedJson line = OrderedJson::object();
    line["type"] = "batch";
    line["sender"] = batch.sender();
    line["sequence"] = batch.sequence();
    if (batch.dropped_records() != 0) line["dropped_records"] = batch.dropped_records();
    // Before the records: a profile that shares them comes after the table.
    if (batch.functions_size() != 0) line["functions"] = FunctionsToJson(batch.functions());
    AppendLine(line, out);
  }
  for (const RequestRecord& r : batch.records()) AppendLine(RecordToJson(r), out);
  for (const WorkerTally& t : batch.tallies()) AppendLine(TallyToJson(t), out);
  return out;
}

}  // namespace cpuledger::record
