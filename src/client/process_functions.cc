#include "client/process_functions.h"

#include <google/protobuf/io/coded_stream.h>

#include "record/record.pb.h"

namespace cpuledger::client {
namespace {

// AppendVarint() — protobuf's base-128 varint, by protobuf's own writer.
void AppendVarint(std::string* out, uint64_t v) {
  uint8_t buf[10];  // a varint of 64 bits takes at most 10 bytes
  const uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(v, buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(end - buf));
}

constexpr uint64_t kFunctionsTag =
    record::Batch::kFunctionsFieldNumber << 3 | 2;  // length-delimited

}  // namespace

ProcessFunctions& ProcessFunctions::Get() {
  static auto* table = new ProcessFunctions();  // never destroyed: threads may outlive statics
  return *table;
}

std::optional<uint32_t> ProcessFunctions::Add(std::string body) {
  std::lock_guard lock(mu_);
  if (bodies_.size() >= kMaxFunctions) return std::nullopt;
  bodies_.push_back(std::move(body));
  return static_cast<uint32_t>(bodies_.size() - 1);
}

void ProcessFunctions::AppendTable(std::span<const uint32_t> ids, std::string* batch_bytes) const {
  if (ids.empty()) return;
  std::lock_guard lock(mu_);
  size_t next = 0;
  for (uint32_t id = 0; id <= ids.back(); ++id) {
    AppendVarint(batch_bytes, kFunctionsTag);
    if (next < ids.size() && ids[next] == id) {
      const std::string& body = bodies_[id];
      AppendVarint(batch_bytes, body.size());
      batch_bytes->append(body);
      ++next;
    } else {
      batch_bytes->push_back('\0');  // an empty entry: no profile of the batch uses it
    }
  }
}

}  // namespace cpuledger::client
