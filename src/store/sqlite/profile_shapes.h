// src/store/sqlite/profile_shapes.h — a profile's interned ids, found by its
// shape instead of by one lookup per node.
//
// A profile's shape is what it is apart from its costs: the function table
// (file, line, name) and the tree of (parent, function) nodes. The requests
// of an endpoint repeat a few shapes, so the writer interns a shape's
// functions and call paths once; afterwards a profile of that shape costs one
// XXH3-128 hash of its shape, not a string key and a path lookup per node.
//
//   ProfileShapes shapes;                          // the writer's, one thread
//   Result<const ProfileShape*> s = shapes.Find(profile, profile_ids_);
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

  // ProfileShapes::Find() — the ids of `profile`'s shape, interned through
  // `ids` on first sight. RETURNS: InvalidArgument when a node's parent or
  // function index is out of order. The pointer stays valid until Clear()
  // or TrimToBound().
  Result<const ProfileShape*> Find(const record::Profile& profile, ProfileInterner& ids);

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
  Hash128 HashShape(const record::Profile& profile);
  static Result<std::unique_ptr<ProfileShape>> Intern(const record::Profile& profile,
                                                      ProfileInterner& ids);

  std::unordered_map<Hash128, std::unique_ptr<ProfileShape>, Hash128Hasher> by_hash_;
  std::string scratch_;  // HashShape()'s buffer, kept for its capacity
};

}  // namespace cpuledger::store::sqlite
