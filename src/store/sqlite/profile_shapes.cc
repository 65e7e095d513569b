#include "store/sqlite/profile_shapes.h"

#include <xxhash.h>

#include <string>

#include "store/functions.h"

namespace cpuledger::store::sqlite {

// HashShape() — one XXH3-128 over the shape laid out in scratch_: a single
// call over a few KiB is several times faster than an update per piece.
ProfileShapes::Hash128 ProfileShapes::HashShape(const record::Profile& p) {
  std::string& out = scratch_;
  out.clear();
  const auto put = [&out](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(static_cast<uint32_t>(p.functions_size()));
  put(static_cast<uint32_t>(p.nodes_size()));
  for (const record::ProfileFunction& f : p.functions()) {
    // Lengths first, so that ("ab", "c") and ("a", "bc") differ.
    put(static_cast<uint32_t>(f.file().size()));
    put(f.line());
    put(static_cast<uint32_t>(f.name().size()));
    out += f.file();
    out += f.name();
  }
  for (const record::ProfileNode& n : p.nodes()) {
    put(n.parent());
    put(n.function());
  }
  const XXH128_hash_t h = XXH3_128bits(out.data(), out.size());
  return {h.low64, h.high64};
}

Result<std::unique_ptr<ProfileShape>> ProfileShapes::Intern(const record::Profile& p,
                                                            ProfileInterner& ids) {
  auto shape = std::make_unique<ProfileShape>();
  // Table index -> position in shape->functions, one position per distinct id.
  std::vector<uint32_t> position(static_cast<size_t>(p.functions_size()));
  std::unordered_map<int64_t, uint32_t> seen;
  std::string key;
  for (int f = 0; f < p.functions_size(); ++f) {
    const record::ProfileFunction& fn = p.functions(f);
    key.clear();
    AppendFunctionKey(&key, fn.file(), fn.line(), fn.name());
    const int64_t id = ids.Function(key);
    auto [it, added] = seen.try_emplace(id, static_cast<uint32_t>(shape->functions.size()));
    if (added) shape->functions.push_back(id);
    position[static_cast<size_t>(f)] = it->second;
  }
  const size_t n = static_cast<size_t>(p.nodes_size());
  shape->path.assign(n, 0);
  shape->node_function.assign(n, 0);
  for (size_t i = 1; i < n; ++i) {
    const record::ProfileNode& node = p.nodes(static_cast<int>(i));
    if (node.parent() >= i || node.function() >= position.size())
      return InvalidArgument("profile.nodes[" + std::to_string(i) + "] is out of order");
    shape->node_function[i] = position[node.function()];
    shape->path[i] =
        ids.Path(shape->path[node.parent()], shape->functions[shape->node_function[i]]);
  }
  return shape;
}

Result<const ProfileShape*> ProfileShapes::Find(const record::Profile& profile,
                                                ProfileInterner& ids) {
  const Hash128 hash = HashShape(profile);
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
