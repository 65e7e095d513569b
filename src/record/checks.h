// src/record/checks.h — the checks and the canonical form both decoders
// apply (record/checks.cc), for src/record's own files: not part of the API,
// which is codec.h. The rules themselves are stated there (ValidateRecord,
// ValidateProfile, ValidateTally).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "record/record.pb.h"

// CL_RETURN_IF_ERROR() — early return of a non-OK Status.
#define CL_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::cpuledger::Status cl_status_ = (expr); \
    if (!cl_status_.ok()) return cl_status_; \
  } while (0)

namespace cpuledger::record::checks {

// NowUnixUs() — the wall clock, for the plausible-time rule.
int64_t NowUnixUs();

// SafeText() — text from the input made safe to put in a message: at most
// about `max_bytes` of it, control bytes, broken UTF-8 and any of `escape`
// written as \xNN. Quote() — the same, quoted.
std::string SafeText(std::string_view s, size_t max_bytes, std::string_view escape = "");
std::string Quote(std::string_view s);

// Prefixed() — `s` with its message prefixed ("record 3: ...").
Status Prefixed(std::string_view prefix, const Status& s);

// The rules of codec.h, each returning InvalidArgument naming the field.
Status CheckDimension(std::string_view field, std::string_view value);
Status CheckRequired(std::string_view field, std::string_view value);
Status CheckSender(const Batch& batch);
// CheckFunctionTable() — a profile's or a batch's function table; `owner`
// ("profile", "batch") and `list` ("profile.functions", "functions") name it.
Status CheckFunctionTable(std::string_view owner, std::string_view list,
                          const google::protobuf::RepeatedPtrField<ProfileFunction>& table);
// ValidateRecordAt() — ValidateRecord() at `now_us`. `batch_functions`: the
// size of the batch's function table, which a profile with
// functions_in_batch indexes; none outside a batch.
Status ValidateRecordAt(const RequestRecord& r, int64_t now_us,
                        std::optional<size_t> batch_functions);

// IsEmpty() — nothing to store: no records, no tallies, no drop count.
bool IsEmpty(const Batch& batch);

// Canonicalize() — the canonical form (codec.cc's banner), in place.
void Canonicalize(RequestRecord* r);
void Canonicalize(WorkerTally* t);

}  // namespace cpuledger::record::checks
