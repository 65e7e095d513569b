#include "store/sqlite/profile_shapes.h"

#include <xxhash.h>

#include <string>

#include "store/functions.h"

namespace cpuledger::store::sqlite {

void FunctionIds::Reset(const Table* table) {
  table_ = table;
  ids_.assign(static_cast<size_t>(table->size()), 0);
}

int64_t FunctionIds::Of(uint32_t index, ProfileInterner& ids) {
  int64_t& id = ids_[index];
  if (id == 0) {
    const record::ProfileFunction& fn = table_->Get(static_cast<int>(index));
    key_.clear();
    profile::AppendFunctionKey(&key_, fn.file(), fn.line(), fn.name());
    id = ids.Function(key_);
  }
  return id;
}

// HashShape() — one XXH3-128 over the nodes laid out in scratch_: a single
// call over a few KiB is several times faster than an update per piece.
ProfileShapes::Hash128 ProfileShapes::HashShape(const record::Profile& p, FunctionIds& functions,
                                                ProfileInterner& ids) {
  std::string& out = scratch_;
  out.clear();
  const auto put = [&out](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
  const int nodes = p.nodes_size();
  put(static_cast<uint32_t>(nodes));
  node_ids_.assign(static_cast<size_t>(nodes), 0);
  for (int i = 1; i < nodes; ++i) {
    const record::ProfileNode& n = p.nodes(i);
    const int64_t id = functions.Of(n.function(), ids);
    node_ids_[static_cast<size_t>(i)] = id;
    put(n.parent());
    put(id);
  }
  const XXH128_hash_t h = XXH3_128bits(out.data(), out.size());
  return {h.low64, h.high64};
}

Result<std::unique_ptr<ProfileShape>> ProfileShapes::Intern(const record::Profile& p,
                                                            ProfileInterner& ids) const {
  auto shape = std::make_unique<ProfileShape>();
  std::unordered_map<int64_t, uint32_t> position;  // function id -> index in shape->functions
  const size_t n = static_cast<size_t>(p.nodes_size());
  shape->path.assign(n, 0);
  shape->node_function.assign(n, 0);
  for (size_t i = 1; i < n; ++i) {
    const uint32_t parent = p.nodes(static_cast<int>(i)).parent();
    if (parent >= i)
      return InvalidArgument("profile.nodes[" + std::to_string(i) + "] is out of order");
    const int64_t id = node_ids_[i];
    auto [it, added] = position.try_emplace(id, static_cast<uint32_t>(shape->functions.size()));
    if (added) shape->functions.push_back(id);
    shape->node_function[i] = it->second;
    shape->path[i] = ids.Path(shape->path[parent], id);
  }
  return shape;
}

Result<const ProfileShape*> ProfileShapes::Find(const record::Profile& profile,
                                                FunctionIds& functions, ProfileInterner& ids) {
  const Hash128 hash = HashShape(profile, functions, ids);
  if (auto it = by_hash_.find(hash); it != by_hash_.end()) return it->second.get();
  Result<std::unique_ptr<ProfileShape>> shape = Intern(profile, ids);
  if (!shape.ok()) return shape.status();
  (*shape)->serial = by_hash_.size();
  return by_hash_.emplace(hash, std::move(*shape)).first->second.get();
}

void ProfileShapes::Clear() { by_hash_.clear(); }

void ProfileShapes::TrimToBound() {
  if (by_hash_.size() > kMaxShapes) Clear();
}

}  // namespace cpuledger::store::sqlite
