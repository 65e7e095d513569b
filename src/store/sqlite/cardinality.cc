#include "store/sqlite/cardinality.h"

#include <utility>

namespace cpuledger::store::sqlite {
namespace {

// The dimension a flag's values count under: one per flag name.
std::string FlagDimension(std::string_view name) { return "flag:" + std::string(name); }

}  // namespace

CardinalityGuard::CardinalityGuard(size_t max_values, OnFull on_full)
    : max_values_(max_values), on_full_(std::move(on_full)) {}

void CardinalityGuard::Reset() { services_.clear(); }

std::map<std::string, uint64_t> CardinalityGuard::Folded() const {
  std::map<std::string, uint64_t> out;
  for (size_t i = 0; i < folded_.size(); ++i)
    out[kDimensions[i]] = folded_[i].load(std::memory_order_relaxed);
  return out;
}

void CardinalityGuard::Load(const SeriesInfo& info) {
  if (max_values_ == 0) return;
  Service& s = services_[info.service];
  for (const auto& [dim, value] :
       {std::pair<const char*, const std::string&>{"endpoint", info.endpoint},
        {"method", info.method},
        {"host", info.host},
        {"cluster", info.cluster},
        {"region", info.region}})
    s.by_dimension[dim].seen.emplace(value);
  for (const auto& [name, value] : info.flags) {
    s.by_dimension["flag_name"].seen.emplace(name);
    s.by_dimension[FlagDimension(name)].seen.emplace(value);
  }
}

bool CardinalityGuard::Admit(std::string_view service, std::string_view dimension,
                             std::string_view value) {
  auto s = services_.find(service);
  if (s == services_.end()) s = services_.emplace(std::string(service), Service{}).first;
  auto d = s->second.by_dimension.find(dimension);
  if (d == s->second.by_dimension.end())
    d = s->second.by_dimension.emplace(std::string(dimension), Values{}).first;
  Values& v = d->second;
  if (v.seen.find(value) != v.seen.end()) return true;
  if (v.seen.size() < max_values_) {
    v.seen.emplace(value);
    return true;
  }
  if (!v.reported) {
    v.reported = true;
    if (on_full_) on_full_(service, dimension);
  }
  return false;
}

const record::RequestRecord& CardinalityGuard::Guard(const record::RequestRecord& r,
                                                     record::RequestRecord* scratch) {
  if (max_values_ == 0) return r;
  const std::string& service = r.service();
  bool copied = false;
  auto fold = [&](size_t dimension) -> record::RequestRecord& {
    folded_[dimension].fetch_add(1, std::memory_order_relaxed);
    if (!copied) {
      *scratch = r;
      copied = true;
    }
    return *scratch;
  };
  if (!Admit(service, "endpoint", r.endpoint())) fold(0).set_endpoint(std::string(kOther));
  if (!Admit(service, "method", r.method())) fold(1).set_method(std::string(kOther));
  if (!Admit(service, "host", r.host())) fold(2).set_host(std::string(kOther));
  if (!Admit(service, "cluster", r.cluster())) fold(3).set_cluster(std::string(kOther));
  if (!Admit(service, "region", r.region())) fold(4).set_region(std::string(kOther));
  for (const auto& [name, value] : r.flags()) {
    if (!Admit(service, "flag_name", name)) {
      auto& flags = *fold(5).mutable_flags();
      flags.erase(name);
      flags[std::string(kOther)] = std::string(kOther);
    } else if (!Admit(service, FlagDimension(name), value)) {
      (*fold(6).mutable_flags())[name] = std::string(kOther);
    }
  }
  return copied ? *scratch : r;
}

}  // namespace cpuledger::store::sqlite
