#include "store/clickhouse/profiles.h"

#include <xxhash.h>

#include <map>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "record/codec.h"
#include "store/clickhouse/tsv.h"
#include "store/efficiency.h"
#include "store/profile_sums.h"

namespace cpuledger::store::clickhouse {
namespace {

constexpr int64_t kUs = 1'000'000;
constexpr int64_t kHourS = 3600;

uint64_t FunctionHash(std::string_view key) { return XXH64(key.data(), key.size(), 0); }

// PathHash() — never 0, the root's id.
uint64_t PathHash(uint64_t parent, uint64_t function) {
  const uint64_t v[2] = {parent, function};
  const uint64_t h = XXH64(v, sizeof v, 0);
  return h == 0 ? 1 : h;
}

int64_t HourOf(int64_t start_us) {
  int64_t h = start_us / (kHourS * kUs);
  if (start_us < 0 && start_us % (kHourS * kUs) != 0) --h;
  return h * kHourS;
}

// (hour, service, endpoint, commit, unit, flag, flag value)
using SliceKey = std::tuple<int64_t, std::string, std::string, std::string, std::string,
                            std::string, std::string>;

// BatchProfiles — one batch's profile sums per slice, before they become rows.
class BatchProfiles {
 public:
  explicit BatchProfiles(const record::Batch& batch) : batch_(batch) {}

  Status Add(const record::RequestRecord& rec, const std::optional<std::set<std::string>>& flags);
  void Write(RowBinary& out) const;

 private:
  struct Path {
    uint64_t parent = 0;
    const std::string* key = nullptr;
    uint64_t calls = 0, primitive_calls = 0, self_cost = 0, total_cost = 0;
  };
  struct Moment {
    const std::string* key = nullptr;
    double sum = 0, sum_sq = 0, share_sum = 0, share_sq = 0;
  };
  struct Slice {
    uint64_t requests = 0;
    std::unordered_map<uint64_t, Path> paths;      // by path id
    std::unordered_map<uint64_t, Moment> moments;  // by function id
  };
  using Table = google::protobuf::RepeatedPtrField<record::ProfileFunction>;

  // FunctionIds() — the ids of `table`'s entries, their keys kept in keys_.
  const std::vector<uint64_t>& FunctionIds(const Table& table, bool shared);
  void AddToSlice(const record::RequestRecord& rec, const std::string& flag,
                  const std::string& value, bool with_paths);

  const record::Batch& batch_;
  std::map<SliceKey, Slice> slices_;
  std::unordered_map<uint64_t, std::string> keys_;  // function id -> key (stable addresses)
  std::vector<uint64_t> batch_ids_, own_ids_;       // the batch's table's, a profile's own
  bool batch_ids_ready_ = false;
  // The record being added: its nodes' path ids, its self cost per function.
  std::vector<uint64_t> path_;
  std::vector<std::pair<uint64_t, double>> self_;
  const std::vector<uint64_t>* ids_ = nullptr;
};

const std::vector<uint64_t>& BatchProfiles::FunctionIds(const Table& table, bool shared) {
  if (shared && batch_ids_ready_) return batch_ids_;
  std::vector<uint64_t>& ids = shared ? batch_ids_ : own_ids_;
  ids.clear();
  std::string key;
  for (const record::ProfileFunction& f : table) {
    key.clear();
    profile::AppendFunctionKey(&key, f.file(), f.line(), f.name());
    const uint64_t id = FunctionHash(key);
    keys_.try_emplace(id, key);
    ids.push_back(id);
  }
  batch_ids_ready_ = batch_ids_ready_ || shared;
  return ids;
}

Status BatchProfiles::Add(const record::RequestRecord& rec,
                          const std::optional<std::set<std::string>>& flags) {
  const record::Profile& p = rec.profile();
  ids_ = &FunctionIds(record::ProfileFunctions(batch_, p), p.functions_in_batch());
  const size_t n = static_cast<size_t>(p.nodes_size());
  path_.assign(n, 0);
  // Self cost per distinct function (a table may list one key twice).
  std::unordered_map<uint64_t, size_t> position;
  self_.clear();
  for (size_t i = 1; i < n; ++i) {
    const record::ProfileNode& node = p.nodes(static_cast<int>(i));
    if (node.parent() >= i || node.function() >= ids_->size())
      return InvalidArgument("profile.nodes[" + std::to_string(i) + "] is out of order");
    const uint64_t f = (*ids_)[node.function()];
    path_[i] = PathHash(path_[node.parent()], f);
    auto [it, added] = position.try_emplace(f, self_.size());
    if (added) self_.emplace_back(f, 0.0);
    self_[it->second].second += static_cast<double>(node.self_cost());
  }
  AddToSlice(rec, "", "", /*with_paths=*/true);
  for (const auto& [flag, value] : rec.flags())
    AddToSlice(rec, flag, value, !flags || flags->count(flag) > 0);
  return OkStatus();
}

void BatchProfiles::AddToSlice(const record::RequestRecord& rec, const std::string& flag,
                               const std::string& value, bool with_paths) {
  const record::Profile& p = rec.profile();
  Slice& s = slices_[SliceKey(HourOf(rec.start_time_unix_us()), rec.service(), rec.endpoint(),
                              rec.commit(), p.unit(), flag, value)];
  s.requests += p.requests() == 0 ? 1 : p.requests();
  if (with_paths) {
    for (size_t i = 1; i < path_.size(); ++i) {
      const record::ProfileNode& node = p.nodes(static_cast<int>(i));
      auto [it, added] = s.paths.try_emplace(path_[i]);
      Path& sums = it->second;
      if (added) {
        sums.parent = path_[node.parent()];
        sums.key = &keys_.at((*ids_)[node.function()]);
      }
      sums.calls += node.calls();
      sums.primitive_calls += node.primitive_calls();
      sums.self_cost += node.self_cost();
      sums.total_cost += node.total_cost();
    }
  }
  double total = 0;
  for (const auto& [f, cost] : self_) total += cost;
  for (const auto& [f, cost] : self_) {
    if (cost == 0) continue;
    const double share = cost / total;  // total >= cost > 0
    Moment& m = s.moments[f];
    m.key = &keys_.at(f);
    m.sum += cost;
    m.sum_sq += cost * cost;
    m.share_sum += share;
    m.share_sq += share * share;
  }
}

// One row of ProfileSumColumns(); the sums a kind does not use are 0.
struct SumRow {
  ProfileKind kind = ProfileKind::kRequests;
  uint64_t id = 0, parent = 0;
  std::string_view function = {};
  uint64_t requests = 0, calls = 0, primitive_calls = 0, self_cost = 0, total_cost = 0;
  double sum = 0, sum_sq = 0, share_sum = 0, share_sq = 0;
  std::string_view batch_sender = {};
  uint64_t batch_sequence = 0;
};

void WriteRow(const SliceKey& k, const SumRow& r, RowBinary& out) {
  const int64_t hour_us = std::get<0>(k) * kUs;
  out.Date(DayOf(hour_us))
      .DateTime(SecondsOf(hour_us))
      .String(std::get<1>(k))
      .String(std::get<2>(k))
      .String(std::get<3>(k))
      .String(std::get<4>(k))
      .String(std::get<5>(k))
      .String(std::get<6>(k))
      .UInt8(static_cast<uint8_t>(r.kind))
      .UInt64(r.id)
      .UInt64(r.parent)
      .String(r.function)
      .UInt64(1)  // rows
      .UInt64(r.requests)
      .UInt64(r.calls)
      .UInt64(r.primitive_calls)
      .UInt64(r.self_cost)
      .UInt64(r.total_cost)
      .Float64(r.sum)
      .Float64(r.sum_sq)
      .Float64(r.share_sum)
      .Float64(r.share_sq)
      .String(r.batch_sender)
      .UInt64(r.batch_sequence);
}

void BatchProfiles::Write(RowBinary& out) const {
  for (const auto& [key, s] : slices_) {
    WriteRow(key, {.kind = ProfileKind::kRequests, .requests = s.requests}, out);
    for (const auto& [id, p] : s.paths)
      WriteRow(key,
               {.kind = ProfileKind::kPath,
                .id = id,
                .parent = p.parent,
                .function = *p.key,
                .calls = p.calls,
                .primitive_calls = p.primitive_calls,
                .self_cost = p.self_cost,
                .total_cost = p.total_cost},
               out);
    for (const auto& [id, m] : s.moments)
      WriteRow(key,
               {.kind = ProfileKind::kMoment,
                .id = id,
                .function = *m.key,
                .sum = m.sum,
                .sum_sq = m.sum_sq,
                .share_sum = m.share_sum,
                .share_sq = m.share_sq},
               out);
  }
}

std::set<int64_t> DaysOf(const record::Batch& batch) {
  std::set<int64_t> days;
  for (const record::RequestRecord& r : batch.records())
    if (r.has_profile()) days.insert(DayOf(HourOf(r.start_time_unix_us()) * kUs));
  return days;
}

}  // namespace

size_t ProfileDays(const record::Batch& batch) { return DaysOf(batch).size(); }

Status AppendProfileRows(const record::Batch& batch,
                         const std::optional<std::set<std::string>>& profile_flags,
                         RowBinary& out) {
  BatchProfiles profiles(batch);
  for (const record::RequestRecord& r : batch.records())
    if (r.has_profile())
      if (Status s = profiles.Add(r, profile_flags); !s.ok()) return s;
  profiles.Write(out);
  if (batch.sender().empty()) return OkStatus();
  for (int64_t day : DaysOf(batch))
    WriteRow(SliceKey(day * 86400, "", "", "", "", "", ""),
             {.kind = ProfileKind::kBatchMarker,
              .batch_sender = batch.sender(),
              .batch_sequence = batch.sequence()},
             out);
  return OkStatus();
}

namespace {

// BatchCodes — a batch's function codes per (service, commit) and key.
class BatchCodes {
 public:
  explicit BatchCodes(const record::Batch& batch)
      : batch_(batch), batch_marks_(static_cast<size_t>(batch.functions_size())) {}

  void Add(const record::RequestRecord& rec);
  void Write(RowBinary& out) const;

 private:
  struct Code {
    uint64_t hash = 0;
    int64_t seen_us = 0;
  };
  // Mark — the group an entry of a table was noted for last, and its code
  // there (nullptr: the entry's hash is 0).
  struct Mark {
    int group = -1;
    Code* code = nullptr;
  };

  int GroupOf(const record::RequestRecord& rec);

  const record::Batch& batch_;
  std::map<std::pair<std::string_view, std::string_view>, int> groups_;  // into the batch
  std::vector<std::pair<std::string_view, std::string_view>> group_names_;
  std::vector<std::map<std::string, Code, std::less<>>> codes_;  // per group, by key
  std::vector<Mark> batch_marks_, own_marks_;
  std::string key_;  // Add()'s buffer, kept for its capacity
};

int BatchCodes::GroupOf(const record::RequestRecord& rec) {
  auto [it, added] =
      groups_.try_emplace({rec.service(), rec.commit()}, static_cast<int>(group_names_.size()));
  if (added) {
    group_names_.push_back(it->first);
    codes_.emplace_back();
  }
  return it->second;
}

// Add(): an entry already noted for the record's (service, commit) costs one
// array check (and, on a newer record, a store through the mark's pointer:
// map nodes stay put); the nodes (not the whole table) say which entries are
// the record's.
void BatchCodes::Add(const record::RequestRecord& rec) {
  const record::Profile& p = rec.profile();
  const auto& table = record::ProfileFunctions(batch_, p);
  std::vector<Mark>* marks = &batch_marks_;
  if (!p.functions_in_batch()) {
    marks = &own_marks_;
    marks->assign(static_cast<size_t>(table.size()), Mark{});
  }
  const int group = GroupOf(rec);
  const int64_t at = rec.start_time_unix_us();
  for (int i = 1; i < p.nodes_size(); ++i) {
    const uint32_t entry = p.nodes(i).function();
    if (entry >= marks->size()) continue;  // refused by DecodeBatch
    Mark& mark = (*marks)[entry];
    const record::ProfileFunction& f = table.Get(static_cast<int>(entry));
    if (mark.group != group) {
      mark = {group, nullptr};
      if (f.code_hash() == 0) continue;  // unknown: a builtin, or an older sender
      key_.clear();
      profile::AppendFunctionKey(&key_, f.file(), f.line(), f.name());
      std::map<std::string, Code, std::less<>>& codes = codes_[static_cast<size_t>(group)];
      auto it = codes.find(std::string_view(key_));
      if (it == codes.end()) it = codes.emplace(key_, Code{f.code_hash(), at}).first;
      mark.code = &it->second;
    }
    // Two entries of one key (two versions) share the code: the newer record's wins.
    if (mark.code != nullptr && at >= mark.code->seen_us) *mark.code = {f.code_hash(), at};
  }
}

void BatchCodes::Write(RowBinary& out) const {
  for (size_t g = 0; g < codes_.size(); ++g)
    for (const auto& [key, code] : codes_[g])
      out.Date(DayOf(code.seen_us))
          .String(group_names_[g].first)
          .String(group_names_[g].second)
          .String(key)
          .UInt64(code.hash)
          .UInt64(code.seen_us <= 0 ? 0 : static_cast<uint64_t>(code.seen_us));
}

}  // namespace

void AppendFunctionCodeRows(const record::Batch& batch, RowBinary& out) {
  BatchCodes codes(batch);
  for (const record::RequestRecord& r : batch.records())
    if (r.has_profile()) codes.Add(r);
  codes.Write(out);
}

// ---- reads ----

namespace {

// Each answer's rows point into the body they were read from: one body a read.

// SliceOf() — the rows of a query's slice, as SQLite selects them: a
// FunctionQuery's (one flag value) or a FunctionMomentsQuery's (every value
// of its flag).
template <typename Query>
ProfileSlice SliceOf(const Query& q) {
  ProfileSlice s;
  s.from_us = q.from_us;
  s.to_us = q.to_us;
  s.service = q.service;
  s.endpoint = q.endpoint;
  s.commit = q.commit;
  s.flag = q.flag.value_or("");
  if constexpr (std::is_same_v<Query, FunctionQuery>) {
    s.flag_value = q.flag ? q.flag_value : std::string();
  }
  return s;
}

Result<std::vector<TsvRow>> Rows(ShardClient& shard, const std::string& sql, size_t columns,
                                 std::string* body) {
  Result<std::string> r = shard.Run(sql);
  if (!r.ok()) return r.status();
  *body = std::move(*r);
  std::vector<TsvRow> rows = SplitTsv(*body);
  for (const TsvRow& f : rows)
    if (f.size() != columns)
      return Internal("ClickHouse answered a row of " + std::to_string(f.size()) +
                      " columns, not " + std::to_string(columns));
  return rows;
}

std::string FromHex(std::string_view hex) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

}  // namespace

Result<profile::CallTree> ReadFunctionTree(ShardClient& shard, const SchemaNames& names,
                                           const FunctionQuery& query) {
  ProfileSlice slice = SliceOf(query);
  SliceSums sums;
  std::string body;
  Result<std::vector<TsvRow>> units = Rows(shard, ProfileUnitsSql(names, slice), 2, &body);
  if (!units.ok()) return units.status();
  for (const TsvRow& f : *units) sums.units.emplace_back(Unescape(f[0]), TsvInt64(f[1]));
  if (Status s = OneUnit(sums.units); !s.ok()) return s;
  if (sums.units.empty()) return BuildCallTree(sums);

  slice.unit = sums.units[0].first;
  std::string paths_body;
  Result<std::vector<TsvRow>> paths =
      Rows(shard, ProfilePathsSql(names, slice, record::kMaxProfileNodes + 1), 7, &paths_body);
  if (!paths.ok()) return paths.status();
  if (paths->size() > record::kMaxProfileNodes) return TooManyPaths();
  std::unordered_map<std::string, int64_t> function_ids;  // key -> its id in sums.keys
  for (const TsvRow& f : *paths) {
    std::string key = Unescape(f[2]);
    auto [it, added] = function_ids.try_emplace(key, static_cast<int64_t>(function_ids.size()) + 1);
    if (added) sums.keys.emplace(it->second, std::move(key));
    SliceSums::PathNode& n = sums.paths[static_cast<int64_t>(TsvUInt64(f[0]))];
    n.parent = static_cast<int64_t>(TsvUInt64(f[1]));
    n.function = it->second;
    n.calls = TsvUInt64(f[3]);
    n.primitive_calls = TsvUInt64(f[4]);
    n.self_cost = TsvUInt64(f[5]);
    n.total_cost = TsvUInt64(f[6]);
  }
  return BuildCallTree(sums);
}

Result<std::vector<FunctionCode>> ReadFunctionCodes(ShardClient& shard, const SchemaNames& names,
                                                    const FunctionCodesQuery& query) {
  std::string body;
  Result<std::vector<TsvRow>> rows = Rows(shard, FunctionCodesSql(names, query), 2, &body);
  if (!rows.ok()) return rows.status();
  std::vector<FunctionCode> out;
  out.reserve(rows->size());
  for (const TsvRow& f : *rows) out.push_back({Unescape(f[0]), TsvUInt64(f[1])});
  return out;
}

Result<std::vector<FunctionMoments>> ReadFunctionMoments(ShardClient& shard,
                                                         const SchemaNames& names,
                                                         const FunctionMomentsQuery& query) {
  const ProfileSlice slice = SliceOf(query);
  using Key = std::tuple<std::string, std::string, std::string, std::string, std::string>;
  std::map<Key, double> requests;
  std::string body;
  Result<std::vector<TsvRow>> r = Rows(shard, MomentRequestsSql(names, slice), 6, &body);
  if (!r.ok()) return r.status();
  for (const TsvRow& f : *r)
    requests[Key(Unescape(f[0]), Unescape(f[1]), Unescape(f[2]), Unescape(f[3]), Unescape(f[4]))] =
        TsvDouble(f[5]);
  std::string moments_body;
  Result<std::vector<TsvRow>> rows = Rows(shard, MomentsSql(names, slice), 10, &moments_body);
  if (!rows.ok()) return rows.status();
  std::vector<FunctionMoments> out;
  out.reserve(rows->size());
  for (const TsvRow& f : *rows) {
    FunctionMoments m;
    m.service = Unescape(f[0]);
    m.endpoint = Unescape(f[1]);
    m.commit = Unescape(f[2]);
    m.unit = Unescape(f[3]);
    m.flag = slice.flag;
    m.flag_value = Unescape(f[4]);
    m.function = Unescape(f[5]);
    m.sum = TsvDouble(f[6]);
    m.sum_sq = TsvDouble(f[7]);
    m.share_sum = TsvDouble(f[8]);
    m.share_sq = TsvDouble(f[9]);
    auto it = requests.find(Key(m.service, m.endpoint, m.commit, m.unit, m.flag_value));
    m.requests = it == requests.end() ? 0 : it->second;
    out.push_back(std::move(m));
  }
  return out;
}

namespace {

// ActiveUsers() — `eff`'s peak minute's active users, as SQLite counts them.
Status ActiveUsers(ShardClient& shard, const SchemaNames& names, ServiceEfficiency& eff) {
  std::string body;
  if (eff.from_tallies) {
    Result<std::vector<TsvRow>> rows =
        Rows(shard, TallySketchesSql(names, eff.service, eff.peak_minute_unix), 2, &body);
    if (!rows.ok()) return rows.status();
    std::vector<HllSketch> sketches;
    for (const TsvRow& f : *rows)
      sketches.push_back({FromHex(f[0]), static_cast<int>(TsvUInt64(f[1]))});
    if (!sketches.empty()) {
      Result<double> users = MergedUsers(sketches);
      if (!users.ok()) return users.status();
      SetActiveUsers(*users, true, &eff);
      return OkStatus();
    }
  }
  Result<std::vector<TsvRow>> n =
      Rows(shard, DistinctUsersSql(names, eff.service, eff.peak_minute_unix), 1, &body);
  if (!n.ok()) return n.status();
  SetActiveUsers(n->empty() ? 0.0 : TsvDouble((*n)[0][0]), false, &eff);
  return OkStatus();
}

}  // namespace

Result<std::vector<ServiceEfficiency>> ReadEfficiency(ShardClient& shard, const SchemaNames& names,
                                                      const EfficiencySpec& spec) {
  std::vector<ServiceEfficiency> out;
  const auto [lo, hi] = EfficiencyMinutes(spec);
  if (lo >= hi) return out;
  std::map<std::string, ServiceWindow> services;
  std::string body;
  Result<std::vector<TsvRow>> samples =
      Rows(shard, EfficiencySamplesSql(names, spec.service, lo, hi), 9, &body);
  if (!samples.ok()) return samples.status();
  for (const TsvRow& f : *samples) {
    EfficiencyCell& c = services[Unescape(f[0])].samples[TsvInt64(f[1])][Unescape(f[2])];
    c.samples = TsvUInt64(f[3]);
    c.instr_n = TsvUInt64(f[4]);
    c.weight = TsvDouble(f[5]);
    c.instr_weight = TsvDouble(f[6]);
    c.instr_wsum = TsvDouble(f[7]);
    c.cpu_ns_wsum = TsvDouble(f[8]);
  }
  std::string tallied_body, tallies_body;
  Result<std::vector<TsvRow>> tallied =
      Rows(shard, TallyServicesSql(names, spec.service, lo, hi), 1, &tallied_body);
  if (!tallied.ok()) return tallied.status();
  for (const TsvRow& f : *tallied) services.try_emplace(Unescape(f[0]));
  Result<std::vector<TsvRow>> tallies =
      Rows(shard, TallyRequestsSql(names, spec.service, lo, hi), 4, &tallies_body);
  if (!tallies.ok()) return tallies.status();
  for (const TsvRow& f : *tallies)
    services[Unescape(f[0])].tallies[TsvInt64(f[1])][Unescape(f[2])] += TsvDouble(f[3]);

  for (const auto& [service, window] : services) {
    ServiceEfficiency eff = PeakMinute(service, window);
    if (Status s = ActiveUsers(shard, names, eff); !s.ok()) return s;
    out.push_back(std::move(eff));
  }
  return out;
}

}  // namespace cpuledger::store::clickhouse
