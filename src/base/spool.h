// src/base/spool.h — the disk spool: batches the next hop did not take, kept
// in order until it does. Two users: the recorder (src/client), for batches
// the server refused, and the server (src/server/store_spool.h), for batches
// it acknowledged while its store was down.
//
// Layout: <root>/<sender_id>/ holds one file per batch, named
//   <sequence, 20 digits>-<records>-<dropped_records>.batch
// so that a directory listing in lexical order is sequence order, and the
// counts needed for bookkeeping are known without parsing the file. The file
// holds the serialized record::Batch, exactly the bytes that were POSTed.
//
// Invariants:
//  1. A file with a valid name is complete: it is written as ".<name>.tmp",
//     fdatasync'd, then renamed. Leftover ".tmp" files (a crash mid-write)
//     are deleted when the directory is opened.
//  2. Each <root>/<sender_id>/ is owned by the process holding an exclusive
//     flock() on its ".lock" file. Open() adopts the directories of other
//     senders whose lock it can take (their process is dead) and replays
//     their files too; their batches carry their own (sender, sequence), so
//     the server still de-duplicates them correctly.
//  3. bytes() is the total size of the files in front()..back(), own and
//     adopted; Append() never lets it exceed max_bytes.
// Not guaranteed: durability of the newest files against an OS crash (the
// directory is not fsync'd); ordering between different senders' files.
//
//   Result<Spool> spool = Spool::Open("/var/spool/cpuledger", "web-1-4242-9f3a", 256 << 20);
//   spool->Append({.sequence = 7, .records = 1000, .dropped = 0}, bytes);
//   Result<std::string> oldest = spool->ReadFront();   // POST it...
//   spool->PopFront();                                   // ...after a 200
//
// Thread-safety: none; its owner serializes the calls (the recorder's sender
// thread; the server's StoreSpool under its mutex).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace cpuledger {

// SpoolEntry — one batch file.
struct SpoolEntry {
  uint64_t sequence = 0;  // the batch's sequence (of its own sender)
  uint64_t records = 0;   // RequestRecords in the batch
  uint64_t dropped = 0;   // the batch's dropped_records
  uint64_t bytes = 0;     // file size
  std::string path;       // absolute or root-relative path of the file
  size_t dir = 0;         // index into the Spool's directories (0: own)
};

// SpoolFileName() — "00000000000000000007-1000-0.batch".
std::string SpoolFileName(uint64_t sequence, uint64_t records, uint64_t dropped);
// ParseSpoolFileName() — the inverse; nullopt for any other name (".lock",
// temp files, strangers).
std::optional<SpoolEntry> ParseSpoolFileName(std::string_view name);

class Spool {
 public:
  // Spool::Open() — creates <root>/<sender_id>/, locks it, lists the files a
  // previous process with the same sender id left there, then adopts the
  // directories of dead senders (invariant 2). Empty adopted directories are
  // removed at once.
  // REQUIRES: sender_id is a plain name (no '/', not starting with '.').
  // RETURNS: Io when the directories cannot be made or locked; Unavailable
  // when another live process holds <root>/<sender_id>/.lock.
  // COST: one directory listing per sender directory under root.
  static Result<Spool> Open(const std::string& root, const std::string& sender_id,
                            uint64_t max_bytes);

  Spool(Spool&&) = default;
  Spool& operator=(Spool&&) = default;
  // ~Spool() — releases the locks; removes the own directory when it is empty.
  ~Spool();

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  uint64_t bytes() const { return bytes_; }
  uint64_t max_bytes() const { return max_bytes_; }
  // Spool::front() — the oldest entry. REQUIRES: !empty().
  const SpoolEntry& front() const { return entries_.front(); }
  // Spool::at() — the i-th oldest entry. REQUIRES: i < size().
  const SpoolEntry& at(size_t i) const { return entries_[i]; }
  // Spool::own_dir() — <root>/<sender_id>.
  const std::string& own_dir() const { return dirs_.front().path; }
  // Spool::max_own_sequence() — the highest sequence found in the own
  // directory at Open() (0 if none): new batches must be numbered above it.
  uint64_t max_own_sequence() const { return max_own_sequence_; }
  // Spool::adopted() — how many dead senders' directories Open() adopted.
  size_t adopted() const { return dirs_.size() - 1; }

  // Spool::Append() — writes one batch as the newest entry (invariant 1).
  // RETURNS: ResourceExhausted when it would take bytes() past max_bytes
  // (nothing written); Io when the file cannot be written (nothing kept).
  // COST: open, write, fdatasync, rename.
  Status Append(uint64_t sequence, uint64_t records, uint64_t dropped, std::string_view bytes);

  // Spool::ReadFront() — the bytes of the oldest entry.
  // RETURNS: Io when it cannot be read (the caller should PopFront() it).
  // REQUIRES: !empty().
  Result<std::string> ReadFront() const { return Read(0); }
  // Spool::Read() — the bytes of the i-th oldest entry. REQUIRES: i < size().
  Result<std::string> Read(size_t i) const;

  // Spool::PopFront() — deletes the oldest entry's file (after the server
  // took it, or refused it for good). An adopted directory is removed with
  // its last file. REQUIRES: !empty().
  void PopFront();

  // Spool::CloseInheritedLocks() — in a forked child only: closes the
  // child's copies of the lock descriptors without unlocking them (the
  // parent keeps its locks), so the parent's directories become adoptable
  // once the parent dies even while the child lives. The Spool must not be
  // used or destroyed afterwards (its memory is the parent's snapshot).
  void CloseInheritedLocks();

 private:
  struct Dir {
    std::string path;
    UniqueFd lock;
    size_t files = 0;  // entries still in this directory
  };
  Spool() = default;

  std::vector<Dir> dirs_;  // [0] is the own directory; fixed after Open()
  std::deque<SpoolEntry> entries_;
  uint64_t bytes_ = 0;
  uint64_t max_bytes_ = 0;
  uint64_t max_own_sequence_ = 0;
};

}  // namespace cpuledger
