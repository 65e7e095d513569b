#include "client/process_functions.h"

#include "record/record.pb.h"

namespace cpuledger::client {
namespace {

// AppendVarint() — protobuf's base-128 varint.
void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
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
