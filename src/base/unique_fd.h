// src/base/unique_fd.h — a file descriptor that closes itself (RAII), and
// the flock() lock file the spool uses to tell live senders from dead ones.
//
//   Result<UniqueFd> lock = LockFile("/var/spool/cpuledger/web-1/.lock");
//   if (!lock.ok()) ...           // Unavailable: another live process holds it
//   ... the lock is held until `lock` is destroyed (or the process dies) ...
//
// NOTE: flock() locks belong to the open file description, so a forked child
// shares its parent's lock through the inherited descriptor. The child must
// close its copy (Reset()), never LOCK_UN it: closing one of several
// descriptors of a description keeps the parent's lock; see spool.h.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "base/status.h"

namespace cpuledger {

// UniqueFd — owns one descriptor; -1 when empty. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // UniqueFd::Reset() — closes the held descriptor (if any) and holds `fd`.
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// LockFile() — opens (creating it if needed) `path` and takes an exclusive,
// non-blocking flock() on it. The descriptor is O_CLOEXEC, so an exec'd
// program does not inherit the lock.
// RETURNS: the locked descriptor; Unavailable when another open file
// description holds the lock (a live process); Io when it cannot be opened.
// COST: two syscalls.
inline Result<UniqueFd> LockFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return IoError("cannot open " + path + ": " + std::strerror(errno));
  int rc;
  do {
    rc = ::flock(fd.get(), LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == EWOULDBLOCK) return Unavailable(path + " is locked by a live process");
    return IoError("cannot flock " + path + ": " + std::strerror(errno));
  }
  return fd;
}

}  // namespace cpuledger
