// fuzz/decode_fuzz.cc — libFuzzer target for record::DecodeBatch.
//
// Each input is decoded as protobuf and as NDJSON. Whatever decodes must
// survive the round trips that ingest and the recorder rely on, or the
// target prints the difference and aborts (libFuzzer keeps the input):
//   DecodeBatch(kNdjson, EncodeNdjson(b)) == b     (protobuf unknown fields aside)
//   DecodeBatch(kProtobuf, serialized b) == b
//
//   scripts/fuzz 60          # build with clang + ASan/UBSan, run 60 s on fuzz/corpus
//
// Seeds (fuzz/corpus/): NDJSON records, tallies and a batch line; junk; and
// batch.pb and shared_profiles.pb (profiles sharing the batch's function
// table), each made from its text form beside it:
//   protoc --encode=cpuledger.record.Batch -I src src/record/record.proto \
//     < fuzz/corpus/batch.textproto > fuzz/corpus/batch.pb
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "record/codec.h"

namespace {

using cpuledger::record::Batch;
using cpuledger::record::DecodeBatch;
using cpuledger::record::Encoding;

[[noreturn]] void Fail(const char* what, const std::string& detail, std::string_view text) {
  std::fprintf(stderr, "decode_fuzz: %s\n%s\n--- encoded form ---\n%.*s\n", what, detail.c_str(),
               static_cast<int>(text.size()), text.data());
  std::abort();
}

void ExpectSame(const char* what, const Batch& want, const Batch& got, std::string_view text) {
  google::protobuf::util::MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  if (!diff.Compare(want, got)) Fail(what, report, text);
}

void RoundTrips(Batch batch) {
  batch.DiscardUnknownFields();  // NDJSON has no place for them

  const std::string ndjson = cpuledger::record::EncodeNdjson(batch);
  auto again = DecodeBatch(Encoding::kNdjson, ndjson);
  if (!again.ok()) Fail("EncodeNdjson output does not decode", again.status().ToString(), ndjson);
  ExpectSame("NDJSON round trip differs", batch, *again, ndjson);

  const std::string wire = batch.SerializeAsString();
  auto reparsed = DecodeBatch(Encoding::kProtobuf, wire);
  if (!reparsed.ok())
    Fail("serialized batch does not decode", reparsed.status().ToString(), ndjson);
  ExpectSame("protobuf round trip differs", batch, *reparsed, ndjson);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // keep the fuzzer's output readable
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (Encoding encoding : {Encoding::kProtobuf, Encoding::kNdjson}) {
    auto batch = DecodeBatch(encoding, body);
    if (batch.ok()) RoundTrips(std::move(*batch));
  }
  return 0;
}
