// src/store/sqlite/profile_rows.h — profile sums keyed the way the hourly
// profile tables are (schema.h, version 4): per slot, an (hour, slice) pair,
// its profiled requests; per (slot, path id) a call path's sums; per (slot,
// function id) a function's moments.
//
// The writer keeps two: the one an AppendBatches() call builds, and the ones
// committed since the last checkpoint (sqlite_store.h, "Profile checkpoints").
// A call's rows go to the file as one ProfileDelta row and into the pending
// rows in memory; a checkpoint upserts the pending rows into the tables.
//
//   ProfileRows call;
//   int64_t slot = call.SlotOf(hour, slice);
//   call.paths.TryEmplace(slot, path_id).first->calls += 1;
//   ProfileDelta delta; call.ToDelta(&delta);   // what the file keeps
//   pending.Add(call);                          // after the commit
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "store/sqlite/pair_map.h"
#include "store/sqlite/profile_delta.pb.h"

namespace cpuledger::store::sqlite {

struct ProfileRows {
  struct Path {
    uint64_t calls = 0, primitive_calls = 0, self_cost = 0, total_cost = 0;
    Path& operator+=(const Path& v) {
      calls += v.calls;
      primitive_calls += v.primitive_calls;
      self_cost += v.self_cost;
      total_cost += v.total_cost;
      return *this;
    }
  };
  struct Moments {
    double sum = 0, sum_sq = 0, share_sum = 0, share_sq = 0;
    Moments& operator+=(const Moments& v) {
      sum += v.sum;
      sum_sq += v.sum_sq;
      share_sum += v.share_sum;
      share_sq += v.share_sq;
      return *this;
    }
  };
  struct Slot {
    int64_t hour = 0, slice = 0;
    uint64_t requests = 0;  // counted in moment slots only
  };

  std::map<std::pair<int64_t, int64_t>, int64_t> slot_of;  // (hour s, slice id) -> slot
  std::vector<Slot> slots;
  PairMap<Path> paths;       // (slot, path id)
  PairMap<Moments> moments;  // (slot, function id)

  // SlotOf() — the slot of (hour, slice), added if new.
  int64_t SlotOf(int64_t hour, int64_t slice);
  bool empty() const { return slots.empty(); }
  // Rows in all: what a checkpoint would upsert.
  size_t size() const { return slots.size() + paths.size() + moments.size(); }
  void Clear();

  // Add() — `other`'s sums added into these (slots matched by (hour, slice)).
  void Add(const ProfileRows& other);
  // ToDelta() / AddDelta() — the rows as a ProfileDelta, and back (added).
  // RETURNS (AddDelta): false when the delta's columns disagree in length.
  void ToDelta(ProfileDelta* out) const;
  bool AddDelta(const ProfileDelta& delta);
};

}  // namespace cpuledger::store::sqlite
