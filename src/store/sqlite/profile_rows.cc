#include "store/sqlite/profile_rows.h"

namespace cpuledger::store::sqlite {

int64_t ProfileRows::SlotOf(int64_t hour, int64_t slice) {
  auto [it, added] = slot_of.try_emplace({hour, slice}, static_cast<int64_t>(slots.size()));
  if (added) slots.push_back({hour, slice, 0});
  return it->second;
}

void ProfileRows::Clear() {
  slot_of.clear();
  slots.clear();
  paths.Clear();
  moments.Clear();
}

void ProfileRows::Add(const ProfileRows& other) {
  std::vector<int64_t> mine(other.slots.size());
  for (size_t i = 0; i < other.slots.size(); ++i) {
    const Slot& s = other.slots[i];
    mine[i] = SlotOf(s.hour, s.slice);
    slots[static_cast<size_t>(mine[i])].requests += s.requests;
  }
  other.paths.ForEach([&](int64_t slot, int64_t path, const Path& v) {
    *paths.TryEmplace(mine[static_cast<size_t>(slot)], path).first += v;
  });
  other.moments.ForEach([&](int64_t slot, int64_t function, const Moments& v) {
    *moments.TryEmplace(mine[static_cast<size_t>(slot)], function).first += v;
  });
}

void ProfileRows::ToDelta(ProfileDelta* out) const {
  out->Clear();
  for (const Slot& s : slots) {
    out->add_slot_hour(s.hour);
    out->add_slot_slice(s.slice);
    out->add_slot_requests(s.requests);
  }
  paths.ForEach([&](int64_t slot, int64_t path, const Path& v) {
    out->add_path_slot(static_cast<uint32_t>(slot));
    out->add_path(path);
    out->add_calls(v.calls);
    out->add_primitive_calls(v.primitive_calls);
    out->add_self_cost(v.self_cost);
    out->add_total_cost(v.total_cost);
  });
  moments.ForEach([&](int64_t slot, int64_t function, const Moments& v) {
    out->add_moment_slot(static_cast<uint32_t>(slot));
    out->add_function(function);
    out->add_sum(v.sum);
    out->add_sum_sq(v.sum_sq);
    out->add_share_sum(v.share_sum);
    out->add_share_sq(v.share_sq);
  });
}

bool ProfileRows::AddDelta(const ProfileDelta& d) {
  const int slot_count = d.slot_hour_size();
  const int path_count = d.path_size();
  const int moment_count = d.function_size();
  const bool consistent =
      d.slot_slice_size() == slot_count && d.slot_requests_size() == slot_count &&
      d.path_slot_size() == path_count && d.calls_size() == path_count &&
      d.primitive_calls_size() == path_count && d.self_cost_size() == path_count &&
      d.total_cost_size() == path_count && d.moment_slot_size() == moment_count &&
      d.sum_size() == moment_count && d.sum_sq_size() == moment_count &&
      d.share_sum_size() == moment_count && d.share_sq_size() == moment_count;
  if (!consistent) return false;
  for (uint32_t s : d.path_slot())
    if (s >= static_cast<uint32_t>(slot_count)) return false;
  for (uint32_t s : d.moment_slot())
    if (s >= static_cast<uint32_t>(slot_count)) return false;
  std::vector<int64_t> mine(static_cast<size_t>(slot_count));
  for (int i = 0; i < slot_count; ++i) {
    mine[static_cast<size_t>(i)] = SlotOf(d.slot_hour(i), d.slot_slice(i));
    slots[static_cast<size_t>(mine[static_cast<size_t>(i)])].requests += d.slot_requests(i);
  }
  for (int i = 0; i < path_count; ++i)
    *paths.TryEmplace(mine[d.path_slot(i)], d.path(i)).first +=
        Path{d.calls(i), d.primitive_calls(i), d.self_cost(i), d.total_cost(i)};
  for (int i = 0; i < moment_count; ++i)
    *moments.TryEmplace(mine[d.moment_slot(i)], d.function(i)).first +=
        Moments{d.sum(i), d.sum_sq(i), d.share_sum(i), d.share_sq(i)};
  return true;
}

}  // namespace cpuledger::store::sqlite
