// src/store/sqlite/profile_ids.h — the small integer ids the profile
// aggregates are keyed by: functions, call paths and profile slices.
//
// A function is its key "file:line:name" (profile/function_key.h). A call path is
// (parent path id, function id), path 0 being the root, so one integer names
// a frame with its whole chain of callers and a deep path costs no more than
// a shallow one. A slice is (service, endpoint, commit, unit, flag, flag
// value), flag "" standing for all requests. Ids are dense from 1 and never
// change; a path is interned after its parent, so a parent's id is below its
// children's and rows in id order list callers first.
//
//   ProfileInterner ids;                      // the writer's, one thread
//   if (Status s = ids.Load(db); !s.ok()) ... // what the file holds
//   int64_t f = ids.Function("app.py:10:view");
//   int64_t p = ids.Path(0, f);               // new ids are pending ...
//   if (Status s = ids.WritePending(); ...)   // ... inserted in the transaction
//   ids.Commit();                             // or Abort() if it rolled back
//
// At steady state (a stable code base) every id already exists and interning
// is a hash lookup: nothing is written.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "store/sqlite/db.h"
#include "store/sqlite/pair_map.h"

namespace cpuledger::store::sqlite {

// SliceKey — (service, endpoint, commit, unit, flag, flag value).
using SliceKey =
    std::tuple<std::string, std::string, std::string, std::string, std::string, std::string>;

// ProfileInterner — the ids of one writer connection, with the new ones
// pending until the transaction that inserts them commits.
// Thread-safety: one thread (the writer's lock).
class ProfileInterner {
 public:
  // ProfileInterner::Load() — forgets everything, reads the three tables of
  // `db` and prepares the inserts on it. REQUIRES: `db` outlives this.
  Status Load(Db& db);

  // Function() / Path() / Slice() — the id, a new pending one if unseen.
  // COST: one hash lookup (Slice: a map lookup), no allocation when known.
  int64_t Function(std::string_view key);
  int64_t Path(int64_t parent, int64_t function);
  int64_t Slice(const SliceKey& key);

  // ProfileInterner::WritePending() — inserts the pending ids (in the caller's
  // transaction); Commit() makes them known, Abort() forgets them.
  Status WritePending();
  void Commit();
  void Abort();

 private:
  void ClearPending();

  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };

  std::unordered_map<std::string, int64_t, TextHash, std::equal_to<>> functions_;
  PairMap<int64_t> paths_;  // (parent, function) -> path id
  std::map<SliceKey, int64_t> slices_;
  int64_t next_function_ = 1, next_path_ = 1, next_slice_ = 1;
  // The pending ids, in id order from committed_*: what WritePending()
  // inserts and Abort() takes back.
  std::vector<std::string> pending_functions_;
  std::vector<std::pair<int64_t, int64_t>> pending_paths_;
  std::vector<const SliceKey*> pending_slices_;  // keys of slices_ (stable in a std::map)
  int64_t committed_functions_ = 1, committed_paths_ = 1, committed_slices_ = 1;
  Stmt insert_function_, insert_path_, insert_slice_;
};

}  // namespace cpuledger::store::sqlite
