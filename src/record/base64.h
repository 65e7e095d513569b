// src/record/base64.h — RFC 4648 base64, for the bytes fields NDJSON carries
// as text (WorkerTally.active_users_hll).
//
//   std::string text = Base64Encode(tally.active_users_hll());
//   Result<std::string> bytes = Base64Decode(text);
//
// Standard alphabet ("+/"). Encoding always pads with '='; decoding accepts
// padded or unpadded text, and nothing else: no whitespace, no URL-safe
// alphabet, no stray bits after the last byte. Strict so that one byte string
// has exactly one accepted spelling, and a typo is an error, not other bytes.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace cpuledger::record {

// Base64Encode() — padded base64 of `bytes`. COST: one allocation.
std::string Base64Encode(std::string_view bytes);

// Base64Decode() — RETURNS: the bytes, or InvalidArgument saying what is
// wrong (a character outside the alphabet, a bad length, misplaced padding).
Result<std::string> Base64Decode(std::string_view text);

}  // namespace cpuledger::record
