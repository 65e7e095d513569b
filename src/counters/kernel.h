// src/counters/kernel.h — the only door from src/counters to the kernel.
//
// Every system call the counters make (perf_event_open, read, ioctl, mmap,
// munmap, close, sysconf, clock_gettime), the rdpmc instruction and the few
// /proc and /sys files they consult go through `Kernel`. Production code uses
// RealKernel(); tests pass a fake that plays a machine with a PMU, without
// one, with rdpmc, multiplexed, paranoid, and so on.
//
// Conventions: calls return -errno on failure, like raw syscalls, so a fake
// never touches the global errno. Mmap returns nullptr and sets *err.
#pragma once

#include <linux/perf_event.h>
#include <sys/types.h>
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace cpuledger::counters {

// Kernel — the system interface of the counters. Thread-safe when the
// implementation is (RealKernel is: it holds no state).
class Kernel {
 public:
  virtual ~Kernel() = default;

  // Kernel::PerfEventOpen() — RETURNS: an fd >= 0, or -errno.
  virtual int PerfEventOpen(perf_event_attr* attr, pid_t pid, int cpu, int group_fd,
                            unsigned long flags) = 0;
  // Kernel::Read() — RETURNS: bytes read, or -errno.
  virtual long Read(int fd, void* buf, size_t count) = 0;
  // Kernel::Ioctl() — RETURNS: >= 0, or -errno.
  virtual int Ioctl(int fd, unsigned long request, unsigned long arg) = 0;
  // Kernel::MapPerfPage() — maps `length` bytes of a perf fd read-only and shared.
  // RETURNS: the mapping, or nullptr with *err = errno.
  virtual void* MapPerfPage(int fd, size_t length, int* err) = 0;
  virtual int Unmap(void* addr, size_t length) = 0;
  virtual int Close(int fd) = 0;
  virtual long PageSize() = 0;
  // Kernel::Rdpmc() — executes rdpmc(counter). REQUIRES: the perf mmap page
  // said cap_user_rdpmc and index != 0 for this thread's event.
  virtual uint64_t Rdpmc(uint32_t counter) = 0;
  // Kernel::ThreadCpuNs() — CLOCK_THREAD_CPUTIME_ID of the calling thread, or -errno.
  virtual int64_t ThreadCpuNs() = 0;
  // Kernel::MonotonicNs() — CLOCK_MONOTONIC: the clock read costs are timed with
  // (a fake makes the costs, and so the choice between sources, deterministic).
  virtual int64_t MonotonicNs() = 0;
  // Kernel::ReadSmallFile() — the contents of a small text file, or nullopt.
  virtual std::optional<std::string> ReadSmallFile(const char* path) = 0;
};

// RealKernel() — the process-wide Linux implementation. Never null.
Kernel& RealKernel();

}  // namespace cpuledger::counters
