// SqliteStore's function store: the profile deltas an append writes, the
// checkpoints that fold them into the hourly rows, and the reads of those
// rows (FunctionTree(), Functions()).
#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "record/codec.h"
#include "store/profile_sums.h"
#include "store/sqlite/sqlite_store.h"
#include "store/sqlite/sqlite_store_internal.h"

namespace cpuledger::store::sqlite {
namespace {

// SortedRows() — a PairMap's (slot, id) entries in (hour, slice, id) order, so
// the upserts walk the B-tree forward instead of jumping about it.
template <typename V, typename Slots>
std::vector<std::tuple<int64_t, int64_t, int64_t, const V*>> SortedRows(const PairMap<V>& map,
                                                                        const Slots& slots) {
  std::vector<std::tuple<int64_t, int64_t, int64_t, const V*>> rows;
  rows.reserve(map.size());
  map.ForEach([&](int64_t slot, int64_t id, const V& v) {
    const auto& s = slots[static_cast<size_t>(slot)];
    rows.emplace_back(s.hour, s.slice, id, &v);
  });
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace

Status SqliteStore::WriteProfileDelta(const ProfileRows& rows) {
  if (rows.empty()) return OkStatus();
  rows.ToDelta(&delta_scratch_);
  delta_scratch_.SerializeToString(&delta_bytes_);
  StmtUse use(stmts_->delta_insert);
  use.BindBlob(1, delta_bytes_);
  return use.Run();
}

Status SqliteStore::WriteProfileRows(const ProfileRows& rows) {
  for (const auto& [hour, slice, path, row] : SortedRows(rows.paths, rows.slots)) {
    StmtUse use(stmts_->path_cost_upsert);
    BindAll(use, std::make_tuple(hour, slice, path, static_cast<int64_t>(row->calls),
                                 static_cast<int64_t>(row->primitive_calls),
                                 static_cast<int64_t>(row->self_cost),
                                 static_cast<int64_t>(row->total_cost)));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  for (const ProfileRows::Slot& slot : rows.slots) {
    if (slot.requests == 0) continue;  // a slot of path sums only
    StmtUse use(stmts_->profile_requests_upsert);
    BindAll(use, std::make_tuple(slot.hour, slot.slice, static_cast<int64_t>(slot.requests)));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  for (const auto& [hour, slice, function, m] : SortedRows(rows.moments, rows.slots)) {
    StmtUse use(stmts_->moment_upsert);
    BindAll(use,
            std::make_tuple(hour, slice, function, m->sum, m->sum_sq, m->share_sum, m->share_sq));
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return OkStatus();
}

Status SqliteStore::Checkpoint() {
  std::lock_guard lock(write_mu_);
  return CheckpointProfilesLocked();
}

Status SqliteStore::CheckpointProfilesLocked() {
  if (pending_deltas_ == 0) return OkStatus();
  Txn txn(writer_);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  if (Status s = WriteProfileRows(pending_profiles_); !s.ok()) return s;
  if (Status s = writer_.Exec("DELETE FROM profile_deltas"); !s.ok()) return s;
  if (Status s = txn.Commit(); !s.ok()) return s;
  pending_profiles_.Clear();
  pending_deltas_ = 0;
  return OkStatus();
}

Status SqliteStore::LoadProfileDeltas() {
  pending_profiles_.Clear();
  pending_deltas_ = 0;
  Result<Stmt> st = writer_.Prepare("SELECT delta FROM profile_deltas ORDER BY id");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  ProfileDelta delta;
  return ForEachRow(use, [&](StmtUse& u) -> Status {
    const std::string_view bytes = u.Blob(0);
    if (!delta.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
        !pending_profiles_.AddDelta(delta))
      return IoError("a stored profile delta does not parse");
    ++pending_deltas_;
    return OkStatus();
  });
}

namespace {

// The query's slices (?6: of one unit, or any when NULL; ?7 and ?8: the flag
// and its value, '' and '' for all requests).
constexpr const char* kSlices =
    " slice IN (SELECT id FROM profile_slices WHERE flag = ?7 AND flag_value = ?8"
    " AND (?3 IS NULL OR service = ?3)"
    " AND (?4 IS NULL OR endpoint = ?4) AND (?5 IS NULL OR commit_id = ?5)"
    " AND (?6 IS NULL OR unit = ?6))";

// BindSlice() — ?1 to ?5, ?7 and ?8 of a statement over kSlices: the query's
// hours, service, endpoint, commit and flag value.
void BindSlice(StmtUse& use, const FunctionQuery& query) {
  const auto [lo, hi] = HourBuckets(query.from_us, query.to_us);
  use.Bind(1, lo);
  use.Bind(2, hi);
  BindOptional(use, 3, query.service);
  BindOptional(use, 4, query.endpoint);
  BindOptional(use, 5, query.commit);
  use.Bind(7, query.flag ? std::string_view(*query.flag) : std::string_view(""));
  use.Bind(8, query.flag ? std::string_view(query.flag_value) : std::string_view(""));
}

// ReadUnits() — the slice's units and their profiled requests, by unit.
Status ReadUnits(Db& db, const FunctionQuery& query, SliceSums& sums) {
  Result<Stmt> st = db.Prepare(
      std::string("SELECT s.unit, sum(r.requests) FROM profile_requests r JOIN profile_slices s"
                  " ON s.id = r.slice WHERE r.bucket >= ?1 AND r.bucket < ?2 AND r.") +
      kSlices + " GROUP BY s.unit ORDER BY s.unit");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  BindSlice(use, query);
  use.BindNull(6);
  return ForEachRow(use, [&](StmtUse& u) -> Status {
    sums.units.emplace_back(std::string(u.Text(0)), u.Int64(1));
    return OkStatus();
  });
}

// ReadPathSums() — the sums per path id of the slice in `unit`.
Status ReadPathSums(Db& db, const FunctionQuery& query, std::string_view unit, SliceSums& sums) {
  Result<Stmt> st = db.Prepare(
      std::string("SELECT path, sum(calls), sum(primitive_calls), sum(self_cost),"
                  " sum(total_cost) FROM path_costs WHERE bucket >= ?1 AND bucket < ?2 AND") +
      kSlices + " GROUP BY path");
  if (!st.ok()) return st.status();
  StmtUse use(*st);
  BindSlice(use, query);
  use.Bind(6, unit);
  return ForEachRow(use, [&](StmtUse& u) -> Status {
    SliceSums::PathNode& n = sums.paths[u.Int64(0)];
    n.calls = static_cast<uint64_t>(u.Int64(1));
    n.primitive_calls = static_cast<uint64_t>(u.Int64(2));
    n.self_cost = static_cast<uint64_t>(u.Int64(3));
    n.total_cost = static_cast<uint64_t>(u.Int64(4));
    return OkStatus();
  });
}

// ReadAncestors() — every path's parent and function from call_paths, with
// the ancestors that have no sums of their own added (zero sums), and the key
// of every function named. RETURNS: InvalidArgument past
// record::kMaxProfileNodes paths; IoError for a path or function missing.
Status ReadAncestors(Db& db, SliceSums& sums) {
  std::unordered_map<int64_t, SliceSums::PathNode>& paths = sums.paths;
  std::unordered_map<int64_t, std::string>& keys = sums.keys;
  Result<Stmt> path_st = db.Prepare("SELECT parent, function FROM call_paths WHERE id = ?1");
  if (!path_st.ok()) return path_st.status();
  Result<Stmt> key_st = db.Prepare("SELECT key FROM functions WHERE id = ?1");
  if (!key_st.ok()) return key_st.status();
  std::vector<int64_t> todo;
  todo.reserve(paths.size());
  for (const auto& [id, n] : paths) todo.push_back(id);
  while (!todo.empty()) {
    const int64_t id = todo.back();
    todo.pop_back();
    if (paths.size() > record::kMaxProfileNodes) return TooManyPaths();
    StmtUse use(*path_st);
    use.Bind(1, id);
    Result<bool> row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) return IoError("corrupt store: call path " + std::to_string(id) + " is missing");
    const int64_t parent = use.Int64(0), function = use.Int64(1);
    SliceSums::PathNode& n = paths[id];
    n.parent = parent;
    n.function = function;
    if (parent != 0 && paths.try_emplace(parent).second) todo.push_back(parent);
    if (keys.count(function) == 0) {
      StmtUse k(*key_st);
      k.Bind(1, function);
      Result<bool> krow = k.Step();
      if (!krow.ok()) return krow.status();
      if (!*krow)
        return IoError("corrupt store: function " + std::to_string(function) + " is missing");
      keys.emplace(function, std::string(k.Text(0)));
    }
  }
  return OkStatus();
}

// ReadSliceSums() — the query's slice as SliceSums, read on `db` (in the
// caller's transaction). RETURNS: no units when the slice has no profiles;
// InvalidArgument when it has profiles in several units, and as
// ReadAncestors().
Result<SliceSums> ReadSliceSums(Db& db, const FunctionQuery& query) {
  SliceSums sums;
  if (Status s = ReadUnits(db, query, sums); !s.ok()) return s;
  if (sums.units.empty()) return sums;
  if (Status s = OneUnit(sums.units); !s.ok()) return s;
  // The sums per path id, then every path's ancestors from call_paths.
  if (Status s = ReadPathSums(db, query, sums.units[0].first, sums); !s.ok()) return s;
  if (Status s = ReadAncestors(db, sums); !s.ok()) return s;
  return sums;
}

}  // namespace

// FunctionTree(): the slice's rows read in one snapshot, then built into a tree.
Result<profile::CallTree> SqliteStore::FunctionTree(const FunctionQuery& query) {
  if (Status s = CheckProfileFlag(options_.profile_flags, query); !s.ok()) return s;
  if (Status s = Checkpoint(); !s.ok()) return s;
  ReadSession session(*readers_, catalog_);
  if (Status s = session.Begin(); !s.ok()) return s;
  Result<SliceSums> sums = ReadSliceSums(session.conn().db, query);
  if (!sums.ok()) return sums.status();
  return BuildCallTree(*sums);
}
Result<FunctionReport> SqliteStore::Functions(const FunctionQuery& query) {
  Result<profile::CallTree> tree = FunctionTree(query);
  if (!tree.ok()) return tree.status();
  if (tree->requests() == 0) return FunctionReport{};
  return ReportFromTree(*tree, query);
}

}  // namespace cpuledger::store::sqlite
