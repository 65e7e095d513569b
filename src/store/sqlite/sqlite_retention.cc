// SqliteStore::ApplyRetention() and its phases: raw samples, profile hours
// and worker tallies past their retention, deleted in one transaction.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "store/sqlite/raw_chunk.h"
#include "store/sqlite/sqlite_store.h"
#include "store/sqlite/sqlite_store_internal.h"

namespace cpuledger::store::sqlite {

namespace {

// TrimMinute() — the samples of `minute` that started before `cutoff_us`
// deleted: each raw chunk of the minute rewritten with the rest, or deleted
// when none is left. RETURNS: the samples deleted.
Result<uint64_t> TrimMinute(Db& db, int64_t minute, int64_t cutoff_us) {
  uint64_t deleted = 0;
  struct Rewrite {
    int64_t id;
    std::string data;  // empty: delete the chunk
    size_t samples;
  };
  std::vector<Rewrite> rewrites;
  {
    Result<Stmt> sel = db.Prepare("SELECT id, data FROM raw_chunks WHERE minute = ?1");
    if (!sel.ok()) return sel.status();
    StmtUse use(*sel);
    use.Bind(1, minute);
    Status s = ForEachRow(use, [&](StmtUse& u) -> Status {
      ChunkWriter kept(minute);
      size_t dropped = 0;
      Status ds = ForEachSample(u.Blob(1), minute, [&](const StoredRecord& sample) {
        if (sample.start_us < cutoff_us)
          ++dropped;
        else
          kept.Add(sample);
      });
      if (!ds.ok()) return ds;
      if (dropped == 0) return OkStatus();
      deleted += dropped;
      rewrites.push_back({u.Int64(0),
                          kept.samples() == 0 ? std::string() : std::string(kept.Finish()),
                          kept.samples()});
      return OkStatus();
    });
    if (!s.ok()) return s;
  }
  Result<Stmt> upd = db.Prepare("UPDATE raw_chunks SET data = ?2, samples = ?3 WHERE id = ?1");
  if (!upd.ok()) return upd.status();
  Result<Stmt> del = db.Prepare("DELETE FROM raw_chunks WHERE id = ?1");
  if (!del.ok()) return del.status();
  for (const Rewrite& r : rewrites) {
    StmtUse use(r.samples == 0 ? *del : *upd);
    use.Bind(1, r.id);
    if (r.samples > 0) {
      use.BindBlob(2, r.data);
      use.Bind(3, static_cast<int64_t>(r.samples));
    }
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return deleted;
}

}  // namespace

Result<uint64_t> SqliteStore::ApplyRetention(int64_t now_us) {
  std::lock_guard lock(write_mu_);
  // Pending sums of hours past retention would otherwise come back later.
  if (Status s = CheckpointProfilesLocked(); !s.ok()) return s;
  Txn txn(writer_);
  if (Status s = txn.Begin(Txn::kImmediate); !s.ok()) return s;
  Result<uint64_t> raw = DeleteRawSamples(now_us - options_.raw_retention_us);
  if (!raw.ok()) return raw.status();
  if (Status s = DeleteProfiles(now_us - options_.profile_retention_us); !s.ok()) return s;
  Result<uint64_t> tallies = DeleteTallies(now_us - options_.tally_retention_us);
  if (!tallies.ok()) return tallies.status();
  const uint64_t raw_left = raw_samples_ >= *raw ? raw_samples_ - *raw : 0;
  const uint64_t tallies_left = tallies_ >= *tallies ? tallies_ - *tallies : 0;
  auto set = [&](const char* key, uint64_t value) {
    StmtUse use(stmts_->meta_set);
    use.Bind(1, key);
    use.Bind(2, static_cast<int64_t>(value));
    return use.Run();
  };
  if (*raw > 0)
    if (Status s = set("raw_samples", raw_left); !s.ok()) return s;
  if (*tallies > 0)
    if (Status s = set("tallies", tallies_left); !s.ok()) return s;
  // What the writer remembers of function_codes may be gone now.
  codes_stored_.Clear();
  if (Status s = txn.Commit(); !s.ok()) return s;
  raw_samples_ = raw_left;
  tallies_ = tallies_left;
  return *raw;
}

// DeleteRawSamples(): never past the minute seal point: later samples are the
// only copy of the open buckets.
Result<uint64_t> SqliteStore::DeleteRawSamples(int64_t before_us) {
  const int64_t cutoff_us = std::min(before_us, sealed_[TierIndex(Tier::kMinute)] * kUs);
  if (cutoff_us <= 0) return uint64_t{0};
  const int64_t whole_minutes_before = FloorTo(cutoff_us, 60 * kUs) / kUs;
  uint64_t deleted = 0;
  {
    Result<Stmt> count =
        writer_.Prepare("SELECT coalesce(sum(samples), 0) FROM raw_chunks WHERE minute < ?1");
    if (!count.ok()) return count.status();
    StmtUse use(*count);
    use.Bind(1, whole_minutes_before);
    Result<bool> row = use.Step();
    if (!row.ok()) return row.status();
    deleted = static_cast<uint64_t>(use.Int64(0));
  }
  {
    Result<Stmt> del = writer_.Prepare("DELETE FROM raw_chunks WHERE minute < ?1");
    if (!del.ok()) return del.status();
    StmtUse use(*del);
    use.Bind(1, whole_minutes_before);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  // The minute the cutoff falls in: keep the samples at or after it.
  if (cutoff_us % (60 * kUs) == 0) return deleted;
  Result<uint64_t> trimmed = TrimMinute(writer_, whole_minutes_before, cutoff_us);
  if (!trimmed.ok()) return trimmed.status();
  return deleted + *trimmed;
}

// DeleteProfiles(): whole hours only, so a kept hour keeps all its profiles
// and moments and their request counts agree; a function code goes with the
// last hour it was seen in. The interned ids stay: they are bounded by the
// code base, not by time.
Status SqliteStore::DeleteProfiles(int64_t before_us) {
  if (before_us <= 0) return OkStatus();
  const int64_t before_hour = FloorTo(before_us, 3600 * kUs) / kUs;
  for (const char* table : {"path_costs", "function_moments", "profile_requests"}) {
    Result<Stmt> del = writer_.Prepare(std::string("DELETE FROM ") + table + " WHERE bucket < ?1");
    if (!del.ok()) return del.status();
    StmtUse use(*del);
    use.Bind(1, before_hour);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  Result<Stmt> del = writer_.Prepare("DELETE FROM function_codes WHERE last_hour < ?1");
  if (!del.ok()) return del.status();
  StmtUse use(*del);
  use.Bind(1, before_hour);
  return use.Run();
}

// DeleteTallies(): whole minutes, both tally tables. RETURNS: the `tallies`
// rows deleted (the Stats() counter).
Result<uint64_t> SqliteStore::DeleteTallies(int64_t before_us) {
  if (before_us <= 0) return uint64_t{0};
  const int64_t before_minute = FloorTo(before_us, 60 * kUs) / kUs;
  Result<Stmt> count = writer_.Prepare("SELECT count(*) FROM tallies WHERE minute < ?1");
  if (!count.ok()) return count.status();
  uint64_t deleted = 0;
  {
    StmtUse use(*count);
    use.Bind(1, before_minute);
    Result<bool> row = use.Step();
    if (!row.ok()) return row.status();
    deleted = static_cast<uint64_t>(use.Int64(0));
  }
  for (const char* table : {"tallies", "tally_endpoints"}) {
    Result<Stmt> del = writer_.Prepare(std::string("DELETE FROM ") + table + " WHERE minute < ?1");
    if (!del.ok()) return del.status();
    StmtUse use(*del);
    use.Bind(1, before_minute);
    if (Status s = use.Run(); !s.ok()) return s;
  }
  return deleted;
}

}  // namespace cpuledger::store::sqlite
