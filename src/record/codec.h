// src/record/codec.h — batches in and out: protobuf and NDJSON, validated.
//
// Every batch that enters cpuledger passes DecodeBatch(), which parses and
// validates it as a whole: one bad record rejects the batch (nothing of it is
// stored), and the error names the record (NDJSON: line number) and field.
//
//   Result<Encoding> enc = EncodingForContentType(req.get_header_value("Content-Type"));
//   Result<Batch> batch = DecodeBatch(*enc, req.body);
//   if (!batch.ok()) -> 400 with batch.status().message()
//
// NDJSON (one JSON object a line, blank lines ignored):
//   record lines: service, endpoint, method, status, host, cluster, region,
//     commit, flags (object of strings/bools/numbers, stored as strings), user,
//     start_time_unix_us, wall_us, instructions, cycles (null or absent: not
//     available), cpu_ns, counter_source, kernel_included, db_us, db_calls,
//     cache_us, cache_calls, sample_rate, request_id, custom (object: name ->
//     {wall_us, calls, cpu_ns, ...}), multiplex_scale, user_ns, kernel_ns, and
//     span CPU as db_cpu_ns, db_instructions, cache_cpu_ns, ... Unknown
//     fields are ignored. profile (optional): {unit, source, mode, functions:
//     [{file, line, name, code_hash (an integer or its decimal string; written
//     as the string)}], nodes: [{parent, function, calls, primitive_calls,
//     self_cost, total_cost}], builtins_folded, overhead_per_event, requests,
//     functions_in_batch (nodes index the batch line's functions instead)}.
//   tally lines: {"type": "tally", minute_unix, service, host, cluster,
//     region, commit, sender, endpoints: {name: requests | {requests,
//     sampled}}, users: [keys] (hashed into the HLL) or active_users_hll
//     (base64) + hll_precision}.
//   batch lines: {"type": "batch", sender, sequence, dropped_records,
//     functions} sets the batch identity (and the sender's drop count) and
//     the function table of profiles with functions_in_batch, which must come
//     after it.
//
// DecodeBatch returns a canonical batch: db/cache spans named "db"/"cache",
// custom spans and tally endpoints sorted by name, so that
// DecodeBatch(kNdjson, EncodeNdjson(b)) == b for every batch it returned.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "record/record.pb.h"

namespace cpuledger::record {

// Limits — a batch over these is rejected, not truncated.
inline constexpr size_t kMaxRecordsPerBatch = 100'000;
inline constexpr size_t kMaxDimensionBytes = 256;  // any one dimension value or flag name
inline constexpr size_t kMaxFlags = 64;
inline constexpr size_t kMaxCustomSpans = 32;
inline constexpr size_t kMaxProfileNodes = 200'000;
inline constexpr size_t kMaxProfileFunctions = 100'000;
inline constexpr size_t kMaxProfileStringBytes = 1024;  // a function's file or name

// Encoding — the two wire formats of a batch.
enum class Encoding { kProtobuf, kNdjson };

// EncodingForContentType() — "application/x-protobuf" or
// "application/protobuf" -> kProtobuf; "application/x-ndjson",
// "application/ndjson", "application/jsonl" -> kNdjson (parameters such as
// "; charset=utf-8" ignored). RETURNS: InvalidArgument naming the accepted types.
Result<Encoding> EncodingForContentType(std::string_view content_type);

// DecodeBatch() — parse and validate. RETURNS: the batch, or InvalidArgument
// (what is wrong, where) / ResourceExhausted (more than kMaxRecordsPerBatch).
Result<Batch> DecodeBatch(Encoding encoding, std::string_view body);

// ArenaBatch — a decoded batch with the arena it lives on. A profiled record
// is hundreds of messages: on an arena they are a few block allocations,
// freed at once, where the heap would take one malloc and free each (the
// server's main cost before). Move-only; `batch` is owned by `arena`.
struct ArenaBatch {
  std::unique_ptr<google::protobuf::Arena> arena;
  Batch* batch = nullptr;
};

// DecodeBatchOnArena() — DecodeBatch(), onto a new arena. The server's way in.
Result<ArenaBatch> DecodeBatchOnArena(Encoding encoding, std::string_view body);

// ValidateRecord() / ValidateTally() — the checks DecodeBatch applies to each
// item: required dimensions present, sizes within limits, sample_rate in
// (0, 1], a known counter_source, a plausible time, status < 1000.
// A record's profile, when set, must pass ValidateProfile().
Status ValidateRecord(const RequestRecord& record);
Status ValidateTally(const WorkerTally& tally);

// ValidateProfile() — the rules every Profile obeys (ValidateRecord applies
// them; profile::CallTree::FromProto too): node 0 is the root (parent 0,
// function 0); every other node's parent index is below its own index, so
// the nodes form a tree listed parents first; function indices in range; at
// most kMaxProfileNodes nodes and kMaxProfileFunctions functions; file and
// name at most kMaxProfileStringBytes, UTF-8; unit one of
// kKnownProfileUnits, mode one of kKnownProfileModes. A profile whose
// functions are in its batch (functions_in_batch) is checked with its batch
// by DecodeBatch, and refused here. RETURNS:
// InvalidArgument naming the field ("profile.nodes[3].parent").
// COST: one pass over the nodes and functions; allocates only for a message.
Status ValidateProfile(const Profile& profile);

// ShareProfileFunctions() — lists the functions of `batch`'s profiles once,
// in Batch.functions (one entry per distinct file, line and name), and points
// their nodes there (Profile.functions_in_batch). A batch's profiles come
// from a few endpoints and repeat their functions hundreds of times: shared,
// the batch is a fraction of the bytes, and the server checks and interns
// each function once per batch instead of once per profile. Senders call it
// before serializing. Profiles already sharing are left as they are.
void ShareProfileFunctions(Batch* batch);

// ProfileFunctions() — the function table `profile`'s nodes index: its own,
// or, with functions_in_batch, its batch's.
const google::protobuf::RepeatedPtrField<ProfileFunction>& ProfileFunctions(const Batch& batch,
                                                                            const Profile& profile);

// EncodeNdjson() — the NDJSON form of a batch (records, tallies as
// active_users_hll); DecodeBatch(kNdjson, EncodeNdjson(b)) == b.
std::string EncodeNdjson(const Batch& batch);

// kKnownCounterSources — the values counter_source may take.
inline constexpr std::string_view kKnownCounterSources[] = {"hardware", "task_clock",
                                                            "thread_cputime"};

// kKnownProfileUnits / kKnownProfileModes — the values Profile.unit and
// Profile.mode may take.
inline constexpr std::string_view kKnownProfileUnits[] = {"instructions", "cycles", "cpu_ns",
                                                          "tsc"};
inline constexpr std::string_view kKnownProfileModes[] = {"exact", "fast"};

}  // namespace cpuledger::record
