#include "store/query.h"

#include <string>

namespace cpuledger::store {
namespace {

struct NamedDimension {
  std::string_view name;
  Dimension dim;
};

// The one table of plain dimension names; ParseDimension and DimensionName
// both read it, so the two cannot drift apart.
constexpr NamedDimension kNamedDimensions[] = {
    {"service", Dimension::kService}, {"endpoint", Dimension::kEndpoint},
    {"method", Dimension::kMethod},   {"status", Dimension::kStatus},
    {"host", Dimension::kHost},       {"cluster", Dimension::kCluster},
    {"region", Dimension::kRegion},   {"commit", Dimension::kCommit},
    {"user", Dimension::kUser},
};

constexpr std::string_view kFlagPrefixes[] = {"flag:", "flags."};

}  // namespace

Result<DimensionRef> ParseDimension(std::string_view text) {
  for (const NamedDimension& d : kNamedDimensions)
    if (text == d.name) return DimensionRef{d.dim, {}};
  for (std::string_view prefix : kFlagPrefixes) {
    if (text.substr(0, prefix.size()) != prefix) continue;
    std::string_view flag = text.substr(prefix.size());
    if (flag.empty())
      return InvalidArgument("dimension \"" + std::string(text) + "\" names no flag");
    return DimensionRef{Dimension::kFlag, std::string(flag)};
  }
  std::string valid;
  for (const NamedDimension& d : kNamedDimensions) valid.append(d.name).append(", ");
  return InvalidArgument("unknown dimension \"" + std::string(text) + "\"; valid: " + valid +
                         "flag:NAME");
}

std::string DimensionName(const DimensionRef& d) {
  if (d.dim == Dimension::kFlag) return "flag:" + d.flag;
  for (const NamedDimension& n : kNamedDimensions)
    if (n.dim == d.dim) return std::string(n.name);
  return "unknown";
}

Result<Bucket> ParseBucket(std::string_view text) {
  if (text == "none") return Bucket::kNone;
  if (text == "minute") return Bucket::kMinute;
  if (text == "hour") return Bucket::kHour;
  if (text == "day") return Bucket::kDay;
  return InvalidArgument("unknown bucket \"" + std::string(text) +
                         "\"; valid: none, minute, hour, day");
}

int64_t BucketSeconds(Bucket b) {
  switch (b) {
    case Bucket::kNone:
      return 0;
    case Bucket::kMinute:
      return 60;
    case Bucket::kHour:
      return 3600;
    case Bucket::kDay:
      return 86400;
  }
  return 0;
}

}  // namespace cpuledger::store
