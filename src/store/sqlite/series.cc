#include "store/sqlite/series.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <mutex>

#include "store/histogram.h"  // AppendVarint

namespace cpuledger::store::sqlite {
namespace {

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out->append("\\u00");
          out->push_back(kHex[(c >> 4) & 0xf]);
          out->push_back(kHex[c & 0xf]);
        } else {
          out->push_back(c);  // UTF-8 passes through unchanged
        }
    }
  }
  out->push_back('"');
}

void AppendPart(std::string* key, std::string_view part) {
  AppendVarint(key, part.size());
  key->append(part);
}

}  // namespace

std::string_view SeriesInfo::Value(const DimensionRef& d) const {
  switch (d.dim) {
    case Dimension::kService:
      return service;
    case Dimension::kEndpoint:
      return endpoint;
    case Dimension::kMethod:
      return method;
    case Dimension::kStatus:
      return status_text;
    case Dimension::kHost:
      return host;
    case Dimension::kCluster:
      return cluster;
    case Dimension::kRegion:
      return region;
    case Dimension::kCommit:
      return commit;
    case Dimension::kFlag: {
      auto it = std::lower_bound(flags.begin(), flags.end(), d.flag,
                                 [](const std::pair<std::string, std::string>& f,
                                    const std::string& name) { return f.first < name; });
      return it != flags.end() && it->first == d.flag ? std::string_view(it->second)
                                                      : std::string_view();
    }
    case Dimension::kUser:
      break;
  }
  return {};
}

std::string CanonicalFlagsJson(const Flags& flags) {
  std::string out = "{";
  for (size_t i = 0; i < flags.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonString(&out, flags[i].first);
    out.push_back(':');
    AppendJsonString(&out, flags[i].second);
  }
  out.push_back('}');
  return out;
}

Result<Flags> ParseFlagsJson(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return InvalidArgument("flags_json is not a JSON object: " + std::string(json.substr(0, 80)));
  Flags flags;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string())
      return InvalidArgument("flags_json value of \"" + it.key() + "\" is not a string");
    flags.emplace_back(it.key(), it.value().get<std::string>());
  }
  std::sort(flags.begin(), flags.end());
  return flags;
}

Flags SortedFlags(const record::RequestRecord& r) {
  Flags flags(r.flags().begin(), r.flags().end());
  std::sort(flags.begin(), flags.end());
  return flags;
}

int64_t SeriesCatalog::next_id() const {
  std::shared_lock lock(mu_);
  return static_cast<int64_t>(infos_.size()) + 1;
}

const SeriesInfo* SeriesCatalog::Get(int64_t id) const {
  std::shared_lock lock(mu_);
  if (id < 1 || id > static_cast<int64_t>(infos_.size())) return nullptr;
  return &infos_[static_cast<size_t>(id - 1)];
}

void SeriesCatalog::Extend(std::vector<SeriesInfo> infos) {
  std::unique_lock lock(mu_);
  for (SeriesInfo& info : infos)
    if (info.id == static_cast<int64_t>(infos_.size()) + 1) infos_.push_back(std::move(info));
}

namespace {

inline uint64_t Mix(uint64_t h, uint64_t x) {
  h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}
inline uint64_t HashText(std::string_view s) { return std::hash<std::string_view>()(s); }

}  // namespace

void SeriesInterner::Reset() {
  coarse_of_.clear();
  infos_.clear();
  committed_ = 0;
  by_hash_.clear();
  collided_.clear();
}

uint64_t SeriesInterner::Hash(const record::RequestRecord& r) {
  uint64_t h = HashText(r.service());
  h = Mix(h, HashText(r.endpoint()));
  h = Mix(h, HashText(r.method()));
  h = Mix(h, r.status());
  h = Mix(h, HashText(r.host()));
  h = Mix(h, HashText(r.cluster()));
  h = Mix(h, HashText(r.region()));
  h = Mix(h, HashText(r.commit()));
  uint64_t flags = r.flags().size();  // a sum: the same whatever the order
  for (const auto& [name, value] : r.flags()) flags += Mix(HashText(name), HashText(value));
  return Mix(h, flags);
}

uint64_t SeriesInterner::Hash(const SeriesInfo& info) {
  uint64_t h = HashText(info.service);
  h = Mix(h, HashText(info.endpoint));
  h = Mix(h, HashText(info.method));
  h = Mix(h, info.status);
  h = Mix(h, HashText(info.host));
  h = Mix(h, HashText(info.cluster));
  h = Mix(h, HashText(info.region));
  h = Mix(h, HashText(info.commit));
  uint64_t flags = info.flags.size();
  for (const auto& [name, value] : info.flags) flags += Mix(HashText(name), HashText(value));
  return Mix(h, flags);
}

bool SeriesInterner::Same(const record::RequestRecord& r, const SeriesInfo& info) {
  if (r.status() != info.status || r.endpoint() != info.endpoint || r.host() != info.host ||
      r.service() != info.service || r.method() != info.method || r.commit() != info.commit ||
      r.cluster() != info.cluster || r.region() != info.region ||
      static_cast<size_t>(r.flags().size()) != info.flags.size())
    return false;
  for (const auto& [name, value] : r.flags()) {
    auto it = std::lower_bound(info.flags.begin(), info.flags.end(), name,
                               [](const std::pair<std::string, std::string>& f,
                                  const std::string& n) { return f.first < n; });
    if (it == info.flags.end() || it->first != name || it->second != value) return false;
  }
  return true;
}

bool SeriesInterner::Same(const SeriesInfo& a, const SeriesInfo& b) {
  return a.status == b.status && a.endpoint == b.endpoint && a.host == b.host &&
         a.service == b.service && a.method == b.method && a.commit == b.commit &&
         a.cluster == b.cluster && a.region == b.region && a.flags == b.flags;
}

std::string SeriesInterner::FullKey(const SeriesInfo& info) {
  std::string key;
  for (std::string_view part :
       {std::string_view(info.service), std::string_view(info.endpoint),
        std::string_view(info.method), std::string_view(info.status_text),
        std::string_view(info.host), std::string_view(info.cluster), std::string_view(info.region),
        std::string_view(info.commit), std::string_view(info.flags_json)})
    AppendPart(&key, part);
  return key;
}

void SeriesInterner::Index(const SeriesInfo& info, uint64_t hash) {
  auto [it, inserted] = by_hash_.try_emplace(hash, info.id);
  if (!inserted) collided_.emplace(FullKey(info), info.id);
}

void SeriesInterner::Load(SeriesInfo info) {
  const uint64_t hash = Hash(info);
  infos_.push_back(std::move(info));
  committed_ = infos_.size();
  Index(infos_.back(), hash);
}

const SeriesInfo* SeriesInterner::Get(int64_t id) const {
  if (id < 1 || id > static_cast<int64_t>(infos_.size())) return nullptr;
  return &infos_[static_cast<size_t>(id - 1)];
}

int64_t SeriesInterner::Find(const record::RequestRecord& r) const {
  auto it = by_hash_.find(Hash(r));
  if (it == by_hash_.end() || !Same(r, infos_[static_cast<size_t>(it->second - 1)])) return 0;
  return it->second;
}

int64_t SeriesInterner::Intern(const record::RequestRecord& r) {
  const uint64_t hash = Hash(r);
  auto it = by_hash_.find(hash);
  if (it != by_hash_.end()) {
    if (Same(r, infos_[static_cast<size_t>(it->second - 1)])) return it->second;
    // A collision (or a tuple that collided before): the slow, exact path.
    SeriesInfo probe;
    probe.service = r.service();
    probe.endpoint = r.endpoint();
    probe.method = r.method();
    probe.status_text = std::to_string(r.status());
    probe.host = r.host();
    probe.cluster = r.cluster();
    probe.region = r.region();
    probe.commit = r.commit();
    probe.flags_json = CanonicalFlagsJson(SortedFlags(r));
    if (auto c = collided_.find(FullKey(probe)); c != collided_.end()) return c->second;
  }
  SeriesInfo info;
  info.id = static_cast<int64_t>(infos_.size()) + 1;
  info.service = r.service();
  info.endpoint = r.endpoint();
  info.method = r.method();
  info.status = r.status();
  info.status_text = std::to_string(r.status());
  info.host = r.host();
  info.cluster = r.cluster();
  info.region = r.region();
  info.commit = r.commit();
  info.flags = SortedFlags(r);
  info.flags_json = CanonicalFlagsJson(info.flags);
  infos_.push_back(std::move(info));
  Index(infos_.back(), hash);
  return infos_.back().id;
}

int64_t SeriesInterner::CoarseOf(int64_t id) {
  const size_t i = static_cast<size_t>(id);
  if (i < coarse_of_.size() && coarse_of_[i] != 0) return coarse_of_[i];
  SeriesInfo tuple = infos_[i - 1];
  tuple.host.clear();
  tuple.cluster.clear();
  tuple.region.clear();
  const uint64_t hash = Hash(tuple);
  int64_t coarse = 0;
  if (auto it = by_hash_.find(hash); it != by_hash_.end()) {
    if (Same(tuple, infos_[static_cast<size_t>(it->second - 1)]))
      coarse = it->second;
    else if (auto c = collided_.find(FullKey(tuple)); c != collided_.end())
      coarse = c->second;
  }
  if (coarse == 0) {
    tuple.id = static_cast<int64_t>(infos_.size()) + 1;
    infos_.push_back(std::move(tuple));
    Index(infos_.back(), hash);
    coarse = infos_.back().id;
  }
  if (coarse_of_.size() <= i) coarse_of_.resize(i + 1, 0);
  coarse_of_[i] = coarse;
  return coarse;
}

std::vector<const SeriesInfo*> SeriesInterner::pending() const {
  std::vector<const SeriesInfo*> out;
  for (size_t i = committed_; i < infos_.size(); ++i) out.push_back(&infos_[i]);
  return out;
}

std::vector<SeriesInfo> SeriesInterner::Commit() {
  std::vector<SeriesInfo> out(infos_.begin() + static_cast<std::ptrdiff_t>(committed_),
                              infos_.end());
  committed_ = infos_.size();
  return out;
}

void SeriesInterner::Abort() {
  // Forget coarse ids of and to the tuples that go.
  const int64_t last_kept = static_cast<int64_t>(committed_);
  if (coarse_of_.size() > committed_ + 1) coarse_of_.resize(committed_ + 1);
  for (int64_t& c : coarse_of_)
    if (c > last_kept) c = 0;
  while (infos_.size() > committed_) {
    const SeriesInfo& info = infos_.back();
    auto it = by_hash_.find(Hash(info));
    if (it != by_hash_.end() && it->second == info.id)
      by_hash_.erase(it);
    else
      collided_.erase(FullKey(info));
    infos_.pop_back();
  }
}

Result<SeriesInfo> SeriesFromRow(StmtUse& row) {
  SeriesInfo info;
  info.id = row.Int64(0);
  info.service = row.Text(1);
  info.endpoint = row.Text(2);
  info.method = row.Text(3);
  info.status = static_cast<uint32_t>(row.Int64(4));
  info.status_text = std::to_string(info.status);
  info.host = row.Text(5);
  info.cluster = row.Text(6);
  info.region = row.Text(7);
  info.commit = row.Text(8);
  info.flags_json = row.Text(9);
  Result<Flags> flags = ParseFlagsJson(info.flags_json);
  if (!flags.ok())
    return IoError("corrupt series " + std::to_string(info.id) + ": " + flags.status().message());
  info.flags = std::move(*flags);
  return info;
}

}  // namespace cpuledger::store::sqlite
