#include "store/sqlite/profile_ids.h"

#include <algorithm>

namespace cpuledger::store::sqlite {

Status ProfileInterner::Load(Db& db) {
  functions_.clear();
  paths_.Clear();
  slices_.clear();
  ClearPending();
  next_function_ = next_path_ = next_slice_ = 1;
  auto read = [&](const char* sql, auto&& fn) -> Status {
    Result<Stmt> st = db.Prepare(sql);
    if (!st.ok()) return st.status();
    StmtUse use(*st);
    return ForEachRow(use, fn);
  };
  Status s = read("SELECT id, key FROM functions", [&](StmtUse& u) -> Status {
    functions_.emplace(std::string(u.Text(1)), u.Int64(0));
    next_function_ = std::max(next_function_, u.Int64(0) + 1);
    return OkStatus();
  });
  if (s.ok())
    s = read("SELECT id, parent, function FROM call_paths", [&](StmtUse& u) -> Status {
      *paths_.TryEmplace(u.Int64(1), u.Int64(2)).first = u.Int64(0);
      next_path_ = std::max(next_path_, u.Int64(0) + 1);
      return OkStatus();
    });
  if (s.ok())
    s = read("SELECT id, service, endpoint, commit_id, unit, flag, flag_value FROM profile_slices",
             [&](StmtUse& u) -> Status {
               slices_.emplace(
                   SliceKey(u.Text(1), u.Text(2), u.Text(3), u.Text(4), u.Text(5), u.Text(6)),
                   u.Int64(0));
               next_slice_ = std::max(next_slice_, u.Int64(0) + 1);
               return OkStatus();
             });
  if (!s.ok()) return s;
  committed_functions_ = next_function_;
  committed_paths_ = next_path_;
  committed_slices_ = next_slice_;
  auto prepare = [&](Stmt* st, const char* sql) -> Status {
    Result<Stmt> p = db.Prepare(sql);
    if (!p.ok()) return p.status();
    *st = std::move(*p);
    return OkStatus();
  };
  if (s = prepare(&insert_function_, "INSERT INTO functions (id, key) VALUES (?1, ?2)"); !s.ok())
    return s;
  if (s = prepare(&insert_path_,
                  "INSERT INTO call_paths (id, parent, function) VALUES (?1, ?2, ?3)");
      !s.ok())
    return s;
  return prepare(&insert_slice_,
                 "INSERT INTO profile_slices (id, service, endpoint, commit_id, unit, flag,"
                 " flag_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
}

int64_t ProfileInterner::Function(std::string_view key) {
  if (auto it = functions_.find(key); it != functions_.end()) return it->second;
  pending_functions_.emplace_back(key);
  functions_.emplace(std::string(key), next_function_);
  return next_function_++;
}

int64_t ProfileInterner::Path(int64_t parent, int64_t function) {
  auto [id, added] = paths_.TryEmplace(parent, function);
  if (added) {
    *id = next_path_++;
    pending_paths_.emplace_back(parent, function);
  }
  return *id;
}

int64_t ProfileInterner::Slice(const SliceKey& key) {
  auto [it, added] = slices_.try_emplace(key, next_slice_);
  if (added) {
    pending_slices_.push_back(&it->first);
    ++next_slice_;
  }
  return it->second;
}

Status ProfileInterner::WritePending() {
  int64_t id = committed_functions_;
  for (const std::string& key : pending_functions_) {
    StmtUse use(insert_function_);
    use.Bind(1, id++);
    use.Bind(2, std::string_view(key));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  id = committed_paths_;
  for (const auto& [parent, function] : pending_paths_) {
    StmtUse use(insert_path_);
    use.Bind(1, id++);
    use.Bind(2, parent);
    use.Bind(3, function);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  id = committed_slices_;
  for (const SliceKey* key : pending_slices_) {
    StmtUse use(insert_slice_);
    use.Bind(1, id++);
    use.Bind(2, std::string_view(std::get<0>(*key)));
    use.Bind(3, std::string_view(std::get<1>(*key)));
    use.Bind(4, std::string_view(std::get<2>(*key)));
    use.Bind(5, std::string_view(std::get<3>(*key)));
    use.Bind(6, std::string_view(std::get<4>(*key)));
    use.Bind(7, std::string_view(std::get<5>(*key)));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return OkStatus();
}

void ProfileInterner::Commit() {
  committed_functions_ = next_function_;
  committed_paths_ = next_path_;
  committed_slices_ = next_slice_;
  ClearPending();
}

void ProfileInterner::Abort() {
  for (const std::string& key : pending_functions_) functions_.erase(key);
  for (const auto& [parent, function] : pending_paths_) paths_.Erase(parent, function);
  // Copies: a key must not be erased through a reference into its own node.
  std::vector<SliceKey> slices;
  for (const SliceKey* key : pending_slices_) slices.push_back(*key);
  for (const SliceKey& key : slices) slices_.erase(key);
  next_function_ = committed_functions_;
  next_path_ = committed_paths_;
  next_slice_ = committed_slices_;
  ClearPending();
}

void ProfileInterner::ClearPending() {
  pending_functions_.clear();
  pending_paths_.clear();
  pending_slices_.clear();
}

}  // namespace cpuledger::store::sqlite
