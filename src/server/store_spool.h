// src/server/store_spool.h — the server's disk spool: batches acknowledged
// while the store was down (or slow), kept in order until the store takes
// them.
//
// The IngestWriter (ingest_writer.h) appends a group's batches here instead
// of failing them when the store answers Unavailable, and acknowledges them
// once they are on disk; its replay thread reads the oldest entries back,
// appends them to the store and pops them. The format is the recorder's
// (base/spool.h), one directory "<dir>/ingest/" and one file per batch:
//   <spool sequence, 20 digits>-<records>-<dropped_records>.batch
// holding the batch as serialized protobuf. The spool sequence is this
// server's own counter (the file order is arrival order across senders); the
// batch inside keeps its (sender, sequence), which the store de-duplicates.
//
// Invariants (on top of base/spool.h's):
//  1. Append() returns OK only after the batch's file is written, fdatasync'd
//     and renamed: an acknowledged batch survives a crash of the server
//     process. (Not guaranteed: an OS crash, as for the stores themselves.)
//  2. A crash mid-write leaves only a ".tmp" file, deleted at Open(): never a
//     listed entry (that batch was never acknowledged).
//  3. An entry that does not decode, or whose record count differs from its
//     name's, is dropped with a log line when it reaches the front (it cannot
//     be replayed; it was damaged on disk).
//  4. Pop() follows the store's OK: a crash between the two replays the
//     entries again, and the store skips them as duplicates.
//  5. Only one server uses a directory (a flock; a second Open() fails).
//
//   Result<std::unique_ptr<StoreSpool>> spool = StoreSpool::Open(dir, 1 << 30, log);
//   (*spool)->Append(batch);                              // then acknowledge
//   Result<std::vector<record::ArenaBatch>> oldest = (*spool)->Peek(64);
//   store.AppendBatches(...oldest...); (*spool)->Pop(oldest->size());
//
// Which stores: by default only ClickHouse (config key `spool = "auto"`): it
// is a remote service that goes down and comes back. SQLite is a local file
// on the same disk; when it fails (disk full, I/O errors) the spool would
// fail the same way, so there the clients' own spools keep the batches.
//
// Thread-safety: every method is thread-safe (one mutex); Append() runs on the
// writer thread and Peek()/Pop() on the replay thread at the same time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/spool.h"
#include "base/status.h"
#include "record/codec.h"

namespace cpuledger::server {

// StoreSpoolStats — what /metrics shows of the spool.
struct StoreSpoolStats {
  uint64_t batches = 0;          // entries waiting
  uint64_t bytes = 0;            // their file sizes
  int64_t oldest_unix_us = 0;    // the oldest entry's file time; 0 when empty
  uint64_t dropped_damaged = 0;  // entries dropped by invariant 3 since Open()
};

class StoreSpool {
 public:
  // The directory under `dir` that holds the files (a name of base/spool.h).
  static constexpr char kSpoolName[] = "ingest";

  // StoreSpool::Open() — creates and locks <dir>/ingest/ and lists what a
  // previous run left there. `log` hears dropped entries (nullptr: stderr).
  // RETURNS: Io when the directory cannot be made; Unavailable when another
  // live server holds it.
  static Result<std::unique_ptr<StoreSpool>> Open(const std::string& dir, uint64_t max_bytes,
                                                  std::function<void(const std::string&)> log);

  // StoreSpool::Append() — writes `batch` as the newest entry (invariant 1).
  // RETURNS: ResourceExhausted when it would pass max_bytes (nothing
  // written); Io when the disk refuses.
  // COST: serialize, open, write, fdatasync, rename.
  Status Append(const record::Batch& batch);

  // StoreSpool::Peek() — up to `max` oldest entries, decoded, oldest first
  // (entries stay until Pop()). Damaged entries at the front are dropped
  // first (invariant 3); a damaged one further back ends the list there.
  // RETURNS: Io when an entry cannot be read (left in place, retried).
  Result<std::vector<record::ArenaBatch>> Peek(size_t max);

  // StoreSpool::Pop() — deletes the `n` oldest entries (after the store took
  // them). REQUIRES: n <= the entries waiting.
  void Pop(size_t n);

  bool empty() const;
  StoreSpoolStats Stats() const;

 private:
  StoreSpool(Spool spool, std::function<void(const std::string&)> log);
  // DropDamagedFront() — invariant 3 for the front entry; mu_ held.
  void DropDamagedFront(const std::string& why);

  mutable std::mutex mu_;
  Spool spool_;                   // guarded by mu_
  uint64_t next_sequence_;        // guarded by mu_
  uint64_t dropped_damaged_ = 0;  // guarded by mu_
  std::function<void(const std::string&)> log_;
};

}  // namespace cpuledger::server
