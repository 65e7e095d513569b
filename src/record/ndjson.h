// src/record/ndjson.h — the NDJSON decoder (record/ndjson.cc), for
// DecodeBatch; the format is codec.h's. EncodeNdjson() is in codec.h.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "record/record.pb.h"

namespace cpuledger::record {

// DecodeNdjson() — parses and validates `body` into `batch` (the caller's,
// maybe on an arena). RETURNS: the first error, prefixed "line N: ".
Status DecodeNdjson(std::string_view body, int64_t now_us, Batch& batch);

}  // namespace cpuledger::record
