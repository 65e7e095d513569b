// src/record/codec.cc — DecodeBatch (the protobuf decoder, and NDJSON
// through record/ndjson.h) and the function tables batches share.
//
// Canonical form. DecodeBatch returns every batch in one canonical form, so
// that both encodings of one batch decode to equal messages and
// DecodeBatch(kNdjson, EncodeNdjson(b)) == b holds for any b it returned:
//   - RequestRecord.db / .cache, when present, are named "db" / "cache"
//     (the field already says which; an empty name is filled in);
//   - custom spans and tally endpoints are sorted by name (NDJSON carries
//     them as JSON objects, which have no order), and names are unique;
//   - an empty batch (no records, no tallies, no dropped_records) is an
//     error in both encodings.
// Protobuf unknown fields are kept in the decoded message (proto3 rules) and
// ignored; NDJSON unknown keys are dropped.
//
// Error positions: NDJSON names the 1-based line ("line 7: ..."), protobuf the
// 0-based index into Batch.records / Batch.tallies ("record 12: ...").
//
// The checks are in record/checks.cc, the NDJSON form in record/ndjson.cc.
#include "record/codec.h"

#include <algorithm>
#include <climits>
#include <string>
#include <unordered_map>
#include <vector>

#include <google/protobuf/stubs/logging.h>
#include <xxhash.h>

#include "record/checks.h"
#include "record/ndjson.h"

namespace cpuledger::record {
namespace {

using namespace checks;

// ---------------------------------------------------------------------------
// Protobuf.

std::string Position(std::string_view what, size_t index) {
  return std::string(what) + " " + std::to_string(index) + ": ";
}

Status DecodeProtobuf(std::string_view body, int64_t now_us, Batch& batch) {
  if (body.size() > static_cast<size_t>(INT_MAX))
    return ResourceExhausted("protobuf batch of " + std::to_string(body.size()) +
                             " bytes is over 2 GiB");
  {
    // The parser logs each string that is not UTF-8 to stderr; a bad batch
    // is the sender's problem, answered by the message below, not a log line.
    google::protobuf::LogSilencer quiet;
    if (!batch.ParseFromArray(body.data(), static_cast<int>(body.size())))
      return InvalidArgument("protobuf batch does not parse (truncated, or not a cpuledger Batch)");
  }
  if (static_cast<size_t>(batch.records_size()) > kMaxRecordsPerBatch)
    return ResourceExhausted("batch has " + std::to_string(batch.records_size()) +
                             " records; the limit is " + std::to_string(kMaxRecordsPerBatch));
  if (static_cast<size_t>(batch.tallies_size()) > kMaxRecordsPerBatch)
    return ResourceExhausted("batch has " + std::to_string(batch.tallies_size()) +
                             " tallies; the limit is " + std::to_string(kMaxRecordsPerBatch));
  if (IsEmpty(batch)) return InvalidArgument("empty batch");
  CL_RETURN_IF_ERROR(CheckSender(batch));
  CL_RETURN_IF_ERROR(CheckFunctionTable("batch", "functions", batch.functions()));
  for (int i = 0; i < batch.records_size(); ++i) {
    RequestRecord* r = batch.mutable_records(i);
    Canonicalize(r);
    Status s = ValidateRecordAt(*r, now_us, static_cast<size_t>(batch.functions_size()));
    if (!s.ok()) return Prefixed(Position("record", i), s);
  }
  for (int i = 0; i < batch.tallies_size(); ++i) {
    WorkerTally* t = batch.mutable_tallies(i);
    Canonicalize(t);
    Status s = ValidateTally(*t);
    if (!s.ok()) return Prefixed(Position("tally", i), s);
  }
  return OkStatus();
}

}  // namespace

Result<Encoding> EncodingForContentType(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  const auto first = type.find_first_not_of(" \t");
  type = first == std::string_view::npos ? std::string_view() : type.substr(first);
  type = type.substr(0, type.find_last_not_of(" \t") + 1);
  const auto is = [&](std::string_view want) {  // media types are case-insensitive
    return type.size() == want.size() &&
           std::equal(type.begin(), type.end(), want.begin(), [](char a, char b) {
             return (a >= 'A' && a <= 'Z' ? a - 'A' + 'a' : a) == b;
           });
  };
  if (is("application/x-protobuf") || is("application/protobuf")) return Encoding::kProtobuf;
  if (is("application/x-ndjson") || is("application/ndjson") || is("application/jsonl"))
    return Encoding::kNdjson;
  return InvalidArgument("unsupported Content-Type " + Quote(content_type) +
                         "; use application/x-protobuf, application/protobuf, "
                         "application/x-ndjson, application/ndjson or application/jsonl");
}

namespace {

// DecodeInto() — DecodeBatch() into a message the caller owns (maybe on an
// arena, which then holds every message the body becomes).
Status DecodeInto(Encoding encoding, std::string_view body, Batch& batch) {
  if (body.empty()) return InvalidArgument("empty batch");
  const int64_t now_us = NowUnixUs();
  switch (encoding) {
    case Encoding::kProtobuf:
      return DecodeProtobuf(body, now_us, batch);
    case Encoding::kNdjson:
      return DecodeNdjson(body, now_us, batch);
  }
  return InvalidArgument("unknown encoding");
}

}  // namespace

Result<Batch> DecodeBatch(Encoding encoding, std::string_view body) {
  Batch batch;
  if (Status s = DecodeInto(encoding, body, batch); !s.ok()) return s;
  return batch;
}

Result<ArenaBatch> DecodeBatchOnArena(Encoding encoding, std::string_view body) {
  google::protobuf::ArenaOptions options;
  // Parsed messages take a few times their wire size. Blocks of up to 1 MiB:
  // each free of a block of 64 KiB or more makes glibc consolidate its free
  // lists, so a few large blocks cost less than many small ones.
  options.start_block_size = std::clamp<size_t>(body.size(), 4096, 1 << 20);
  options.max_block_size = 1 << 20;
  ArenaBatch out;
  out.arena = std::make_unique<google::protobuf::Arena>(options);
  out.batch = google::protobuf::Arena::CreateMessage<Batch>(out.arena.get());
  if (Status s = DecodeInto(encoding, body, *out.batch); !s.ok()) return s;
  return out;
}

namespace {

// FunctionRef — a function table entry by value, to find its duplicates
// (two versions of a function, from hosts on two commits, are two entries).
struct FunctionRef {
  std::string_view file, name;
  uint32_t line = 0;
  uint64_t code_hash = 0;
  bool operator==(const FunctionRef&) const = default;
};

// FunctionRefHash — XXH3 seeded with the line and code hash, over the
// file, then over the name seeded with that: a few times faster than
// std::hash on paths.
struct FunctionRefHash {
  size_t operator()(const FunctionRef& f) const {
    const uint64_t h = XXH3_64bits_withSeed(f.file.data(), f.file.size(), f.line ^ f.code_hash);
    return static_cast<size_t>(XXH3_64bits_withSeed(f.name.data(), f.name.size(), h));
  }
};

}  // namespace

void ShareProfileFunctions(Batch* batch) {
  // Keys view the table's strings, which stay where they are while the
  // table grows (each entry is a message of its own).
  std::unordered_map<FunctionRef, uint32_t, FunctionRefHash> index;
  const auto ref = [](const ProfileFunction& f) {
    return FunctionRef{f.file(), f.name(), f.line(), f.code_hash()};
  };
  for (int i = 0; i < batch->functions_size(); ++i)
    index.try_emplace(ref(batch->functions(i)), static_cast<uint32_t>(i));
  std::vector<uint32_t> moved;  // a profile's function index -> the batch's
  for (RequestRecord& r : *batch->mutable_records()) {
    if (!r.has_profile() || r.profile().functions_in_batch()) continue;
    Profile& p = *r.mutable_profile();
    moved.assign(static_cast<size_t>(p.functions_size()), 0);
    for (int f = 0; f < p.functions_size(); ++f) {
      auto it = index.find(ref(p.functions(f)));
      if (it == index.end()) {
        ProfileFunction* entry = batch->add_functions();
        entry->Swap(p.mutable_functions(f));
        it = index.try_emplace(ref(*entry), static_cast<uint32_t>(batch->functions_size() - 1))
                 .first;
      }
      moved[static_cast<size_t>(f)] = it->second;
    }
    // Node 0 is the root: function 0 stands for none there, in both tables.
    for (int n = 1; n < p.nodes_size(); ++n) {
      ProfileNode* node = p.mutable_nodes(n);
      if (node->function() < moved.size()) node->set_function(moved[node->function()]);
    }
    p.clear_functions();
    p.set_functions_in_batch(true);
  }
}

const google::protobuf::RepeatedPtrField<ProfileFunction>& ProfileFunctions(
    const Batch& batch, const Profile& profile) {
  return profile.functions_in_batch() ? batch.functions() : profile.functions();
}

}  // namespace cpuledger::record
