#include "base/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace cpuledger {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSuffix = ".batch";
constexpr std::string_view kTempSuffix = ".tmp";
constexpr char kLockName[] = ".lock";
constexpr size_t kSequenceDigits = 20;  // UINT64_MAX has 20 digits

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// ParseUint() — all of `text` as a decimal uint64.
std::optional<uint64_t> ParseUint(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// WriteAll() — the whole buffer, across short writes and EINTR.
bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// ListBatches() — the batch files of one directory, oldest first; deletes
// leftover temp files (invariant 1). Unreadable directories list as empty.
std::vector<SpoolEntry> ListBatches(const std::string& dir, size_t dir_index) {
  std::vector<SpoolEntry> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > 1 && name[0] == '.' && EndsWith(name, kTempSuffix)) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
      continue;
    }
    std::optional<SpoolEntry> entry = ParseSpoolFileName(name);
    if (!entry) continue;
    std::error_code size_ec;
    const uintmax_t size = fs::file_size(it->path(), size_ec);
    if (size_ec) continue;
    entry->bytes = size;
    entry->path = it->path().string();
    entry->dir = dir_index;
    out.push_back(std::move(*entry));
  }
  std::sort(out.begin(), out.end(),
            [](const SpoolEntry& a, const SpoolEntry& b) { return a.sequence < b.sequence; });
  return out;
}

// RemoveDirectory() — deletes the lock file and the (now empty) directory,
// best effort: a concurrent adopter may have re-created the lock file, then
// the directory stays and that adopter removes it.
void RemoveDirectory(const std::string& dir) {
  ::unlink((dir + "/" + kLockName).c_str());
  ::rmdir(dir.c_str());
}

// ClaimDirectory() — root/sender_id, created if need be, and its lock. A
// new directory is made and locked under a hidden name, which no Open()
// adopts, then renamed into place: made and locked in place, a sibling
// process opening beside it (gunicorn's workers start together) could find
// it unlocked in between, take it for a dead sender's, lock and remove it,
// and this process's lock then failed ("in use by a live process") and its
// worker did not boot. An existing directory (a chosen sender id used
// before) is locked in place.
Result<UniqueFd> ClaimDirectory(const std::string& root, const std::string& sender_id) {
  const std::string own = (fs::path(root) / sender_id).string();
  std::error_code ec;
  if (!fs::exists(own, ec)) {
    const std::string claim = (fs::path(root) / ("." + sender_id + ".claim")).string();
    fs::create_directory(claim, ec);
    if (ec) return IoError("cannot create spool directory " + claim + ": " + ec.message());
    Result<UniqueFd> lock = LockFile(claim + "/" + kLockName);
    if (!lock.ok()) return lock.status();
    fs::rename(claim, own, ec);
    if (!ec) return lock;
    RemoveDirectory(claim);  // `own` appeared meanwhile: lock that one in place
  }
  fs::create_directory(own, ec);
  if (ec) return IoError("cannot create spool directory " + own + ": " + ec.message());
  return LockFile(own + "/" + kLockName);
}

// kStaleClaimAge — a claim directory (ClaimDirectory) this old whose lock
// nobody holds was left by a process that died claiming it: a live claim
// lasts from mkdir to rename, microseconds.
constexpr auto kStaleClaimAge = std::chrono::seconds(60);

bool IsClaimName(std::string_view name) {
  return name.size() > 1 && name[0] == '.' && EndsWith(name, ".claim");
}

// RemoveIfStaleClaim() — removes `dir`, a claim directory, when it is
// stale. The age comes first: a fresh claim's owner may not hold its lock
// yet (between mkdir and lock), and taking it then would fail its Open().
void RemoveIfStaleClaim(const std::string& dir) {
  std::error_code ec;
  const fs::file_time_type made = fs::last_write_time(dir, ec);
  if (ec || fs::file_time_type::clock::now() - made < kStaleClaimAge) return;
  Result<UniqueFd> lock = LockFile(dir + "/" + kLockName);
  if (lock.ok()) RemoveDirectory(dir);
}

}  // namespace

std::string SpoolFileName(uint64_t sequence, uint64_t records, uint64_t dropped) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%020" PRIu64 "-%" PRIu64 "-%" PRIu64 ".batch", sequence, records,
                dropped);
  return buf;
}

std::optional<SpoolEntry> ParseSpoolFileName(std::string_view name) {
  if (!EndsWith(name, kSuffix)) return std::nullopt;
  name.remove_suffix(kSuffix.size());
  if (name.size() < kSequenceDigits + 1 || name[kSequenceDigits] != '-') return std::nullopt;
  const std::string_view seq_text = name.substr(0, kSequenceDigits);
  const std::string_view rest = name.substr(kSequenceDigits + 1);
  const size_t dash = rest.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  std::optional<uint64_t> seq = ParseUint(seq_text);
  std::optional<uint64_t> records = ParseUint(rest.substr(0, dash));
  std::optional<uint64_t> dropped = ParseUint(rest.substr(dash + 1));
  if (!seq || !records || !dropped) return std::nullopt;
  SpoolEntry e;
  e.sequence = *seq;
  e.records = *records;
  e.dropped = *dropped;
  return e;
}

Result<Spool> Spool::Open(const std::string& root, const std::string& sender_id,
                          uint64_t max_bytes) {
  if (sender_id.empty() || sender_id[0] == '.' || sender_id.find('/') != std::string::npos)
    return InvalidArgument("sender_id '" + sender_id + "' cannot name a spool directory");
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return IoError("cannot create spool directory " + root + ": " + ec.message());
  const std::string own = (fs::path(root) / sender_id).string();
  Result<UniqueFd> lock = ClaimDirectory(root, sender_id);
  if (!lock.ok()) return lock.status();

  Spool spool;
  spool.max_bytes_ = max_bytes;
  spool.dirs_.push_back(Dir{own, std::move(*lock), 0});
  auto add = [&spool](std::vector<SpoolEntry> files) {
    for (SpoolEntry& e : files) {
      spool.bytes_ += e.bytes;
      spool.dirs_[e.dir].files++;
      spool.entries_.push_back(std::move(e));
    }
  };
  std::vector<SpoolEntry> own_files = ListBatches(own, 0);
  for (const SpoolEntry& e : own_files)
    spool.max_own_sequence_ = std::max(spool.max_own_sequence_, e.sequence);
  add(std::move(own_files));

  // Adopt dead senders' directories, in name order (any order is correct).
  std::vector<std::string> others;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (name == sender_id || name.empty() || !it->is_directory(type_ec)) continue;
    if (IsClaimName(name)) RemoveIfStaleClaim(it->path().string());
    if (name[0] == '.') continue;
    others.push_back(it->path().string());
  }
  std::sort(others.begin(), others.end());
  for (const std::string& dir : others) {
    Result<UniqueFd> other_lock = LockFile(dir + "/" + kLockName);
    if (!other_lock.ok()) continue;  // alive (or unreadable): not ours to take
    std::vector<SpoolEntry> files = ListBatches(dir, spool.dirs_.size());
    if (files.empty()) {
      RemoveDirectory(dir);
      continue;
    }
    spool.dirs_.push_back(Dir{dir, std::move(*other_lock), 0});
    add(std::move(files));
  }
  // Adopted files go first (they are older), then our own: sort by directory
  // order = adopted..., own. Stable within a directory (sequence order).
  std::stable_sort(spool.entries_.begin(), spool.entries_.end(),
                   [](const SpoolEntry& a, const SpoolEntry& b) {
                     return (a.dir == 0 ? SIZE_MAX : a.dir) < (b.dir == 0 ? SIZE_MAX : b.dir);
                   });
  return spool;
}

Spool::~Spool() {
  if (dirs_.empty()) return;  // moved from
  if (dirs_.front().files == 0) RemoveDirectory(dirs_.front().path);
  // The UniqueFds close, releasing the locks.
}

Status Spool::Append(uint64_t sequence, uint64_t records, uint64_t dropped,
                     std::string_view bytes) {
  if (bytes_ + bytes.size() > max_bytes_)
    return ResourceExhausted("spool " + own_dir() + " is full (" + std::to_string(bytes_) + " of " +
                             std::to_string(max_bytes_) + " bytes used, batch of " +
                             std::to_string(bytes.size()) + ")");
  const std::string name = SpoolFileName(sequence, records, dropped);
  const std::string path = own_dir() + "/" + name;
  const std::string temp = own_dir() + "/." + name + std::string(kTempSuffix);
  {
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return IoError(Errno("cannot create " + temp));
    if (!WriteAll(fd.get(), bytes) || ::fdatasync(fd.get()) != 0) {
      Status s = IoError(Errno("cannot write " + temp));
      ::unlink(temp.c_str());
      return s;
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    Status s = IoError(Errno("cannot rename " + temp));
    ::unlink(temp.c_str());
    return s;
  }
  SpoolEntry e;
  e.sequence = sequence;
  e.records = records;
  e.dropped = dropped;
  e.bytes = bytes.size();
  e.path = path;
  e.dir = 0;
  entries_.push_back(std::move(e));
  dirs_.front().files++;
  bytes_ += bytes.size();
  return OkStatus();
}

Result<std::string> Spool::Read(size_t i) const {
  const SpoolEntry& e = entries_[i];
  UniqueFd fd(::open(e.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return IoError(Errno("cannot open spooled batch " + e.path));
  std::string out;
  out.resize(e.bytes);
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError(Errno("cannot read spooled batch " + e.path));
    if (n == 0) return IoError("spooled batch " + e.path + " is shorter than listed");
    got += static_cast<size_t>(n);
  }
  return out;
}

void Spool::PopFront() {
  const SpoolEntry& e = entries_.front();
  ::unlink(e.path.c_str());
  bytes_ -= std::min(bytes_, e.bytes);
  Dir& dir = dirs_[e.dir];
  if (dir.files > 0) dir.files--;
  // An adopted directory goes with its last file; its lock stays open until
  // the Spool is destroyed, so dirs_ never changes shape after Open().
  if (e.dir != 0 && dir.files == 0) RemoveDirectory(dir.path);
  entries_.pop_front();
}

void Spool::CloseInheritedLocks() {
  for (Dir& dir : dirs_) dir.lock.Reset();
}

}  // namespace cpuledger
