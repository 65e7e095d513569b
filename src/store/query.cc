#include "store/query.h"

#include <algorithm>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

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

QueryResult RankQueryRows(std::vector<QueryRow> rows, const QuerySpec& spec) {
  QueryResult result;
  auto heavier = [](double a_total, const std::vector<std::string>& a_keys, double b_total,
                    const std::vector<std::string>& b_keys) {
    if (a_total != b_total) return a_total > b_total;
    return a_keys < b_keys;
  };

  if (spec.bucket == Bucket::kNone) {
    std::sort(rows.begin(), rows.end(), [&](const QueryRow& a, const QueryRow& b) {
      return heavier(a.cpu_ns.est_total, a.keys, b.cpu_ns.est_total, b.keys);
    });
    if (rows.size() > spec.limit) {
      rows.resize(spec.limit);
      result.truncated = true;
    }
    result.rows = std::move(rows);
    return result;
  }

  // Time series: rank the groups by their total over the range, keep whole
  // groups, heaviest first, while the rows fit.
  struct GroupTotal {
    double cpu = 0;
    size_t rows = 0;
    size_t rank = 0;
  };
  std::map<std::vector<std::string>, GroupTotal> totals;
  for (const QueryRow& r : rows) {
    GroupTotal& t = totals[r.keys];
    t.cpu += r.cpu_ns.est_total;
    t.rows += 1;
  }
  std::vector<std::pair<const std::vector<std::string>*, GroupTotal*>> ranked;
  for (auto& [keys, total] : totals) ranked.emplace_back(&keys, &total);
  std::sort(ranked.begin(), ranked.end(), [&](const auto& a, const auto& b) {
    return heavier(a.second->cpu, *a.first, b.second->cpu, *b.first);
  });
  size_t kept_rows = 0, kept_groups = 0;
  for (; kept_groups < ranked.size(); ++kept_groups) {
    if (kept_rows + ranked[kept_groups].second->rows > spec.limit) break;
    kept_rows += ranked[kept_groups].second->rows;
  }
  for (size_t i = 0; i < ranked.size(); ++i)
    ranked[i].second->rank = i < kept_groups ? i : std::numeric_limits<size_t>::max();
  const bool partial_first = kept_groups == 0 && !ranked.empty() && spec.limit > 0;
  if (partial_first) ranked[0].second->rank = 0;  // its first `limit` buckets, below

  std::vector<QueryRow> kept;
  for (QueryRow& r : rows)
    if (totals[r.keys].rank != std::numeric_limits<size_t>::max()) kept.push_back(std::move(r));
  std::sort(kept.begin(), kept.end(), [&](const QueryRow& a, const QueryRow& b) {
    if (a.bucket_start_us != b.bucket_start_us) return a.bucket_start_us < b.bucket_start_us;
    return totals[a.keys].rank < totals[b.keys].rank;
  });
  if (kept.size() > spec.limit) kept.resize(spec.limit);
  result.truncated = kept.size() < rows.size();
  result.rows = std::move(kept);
  return result;
}

}  // namespace cpuledger::store
