// src/store/sqlite/profile_shapes.h — a profile's interned ids, found by its
// shape instead of by one lookup per node.
//
// A profile's shape is what it is apart from its costs: the tree of
// (parent, function id) nodes. The requests of an endpoint repeat a few
// shapes, so the writer interns a shape's call paths once; afterwards a
// profile of that shape costs one XXH3-128 hash of its nodes, not a path
// lookup per node. A function table's ids (FunctionIds) are interned once
// per table: once per batch for profiles that share the batch's table.
//
//   FunctionIds table;                              // per table
//   table.Reset(&record::ProfileFunctions(batch, profile));
//   Result<const ProfileShape*> s = shapes.Find(profile, table, profile_ids_);
//   (*s)->path[i]                                   // node i's call path id
//   shapes.Clear();                                 // after profile_ids_.Abort()
//
// A 128-bit hash makes two shapes that collide a practical impossibility,
// not only an unlikely accident.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "record/record.pb.h"
#include "store/sqlite/profile_ids.h"

namespace cpuledger::store::sqlite {

// FunctionIds — the function ids of one function table (a batch's or a
// profile's own), each interned on its first use. Thread-safety: one thread.
class FunctionIds {
 public:
  using Table = google::protobuf::RepeatedPtrField<record::ProfileFunction>;

  // FunctionIds::Reset() — start on `table`, with no ids yet (a new table
  // may sit where an old one was). REQUIRES: `table` outlives its use here.
  void Reset(const Table* table);

  // FunctionIds::Of() — the id of entry `index` (in range: validated).
  int64_t Of(uint32_t index, ProfileInterner& ids);

  // FunctionIds::table() — the table of the last Reset(). REQUIRES: Reset() called.
  const Table& table() const { return *table_; }

 private:
  const Table* table_ = nullptr;
  std::vector<int64_t> ids_;  // per entry; 0: not interned yet
  std::string key_;           // Of()'s buffer, kept for its capacity
};

// ProfileShape — the ids of one shape. A function listed twice in a profile's
// table (the same key) is one entry of `functions`.
struct ProfileShape {
  uint64_t serial = 0;                  // dense from 0 among the cached shapes
  std::vector<int64_t> path;            // per node: its call path id (node 0: 0)
  std::vector<uint32_t> node_function;  // per node: an index into `functions`
  std::vector<int64_t> functions;       // the shape's distinct function ids
};

// ProfileShapes — the writer's cache of shapes, bounded by kMaxShapes.
// Thread-safety: one thread (the writer's lock).
class ProfileShapes {
 public:
  static constexpr size_t kMaxShapes = 2048;

  // ProfileShapes::Find() — the ids of `profile`'s shape, whose nodes index
  // the table of `functions`, interned through `ids` on first sight.
  // RETURNS: InvalidArgument when a node's parent or function index is out
  // of order. The pointer stays valid until Clear() or TrimToBound().
  Result<const ProfileShape*> Find(const record::Profile& profile, FunctionIds& functions,
                                   ProfileInterner& ids);

  // Clear() — forget every shape: after ids.Abort() or Load() the cached ids
  // may no longer exist. TrimToBound() clears when over kMaxShapes; call it
  // only between writes, when no pointer from Find() is held.
  void Clear();
  void TrimToBound();
  size_t size() const { return by_hash_.size(); }

 private:
  struct Hash128 {
    uint64_t low = 0, high = 0;
    bool operator==(const Hash128&) const = default;
  };
  struct Hash128Hasher {
    size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.low); }
  };
  // HashShape() fills node_ids_ (per node: its function id) for Intern().
  Hash128 HashShape(const record::Profile& profile, FunctionIds& functions, ProfileInterner& ids);
  Result<std::unique_ptr<ProfileShape>> Intern(const record::Profile& profile,
                                               ProfileInterner& ids) const;

  std::unordered_map<Hash128, std::unique_ptr<ProfileShape>, Hash128Hasher> by_hash_;
  std::string scratch_;            // HashShape()'s buffer, kept for its capacity
  std::vector<int64_t> node_ids_;  // HashShape()'s function id per node
};

}  // namespace cpuledger::store::sqlite
