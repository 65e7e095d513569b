// The Linux implementation of Kernel: thin wrappers that turn errno into -errno.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "counters/kernel.h"

namespace cpuledger::counters {
namespace {

class LinuxKernel final : public Kernel {
 public:
  int PerfEventOpen(perf_event_attr* attr, pid_t pid, int cpu, int group_fd,
                    unsigned long flags) override {
    long fd = syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags | PERF_FLAG_FD_CLOEXEC);
    return fd < 0 ? -errno : static_cast<int>(fd);
  }
  long Read(int fd, void* buf, size_t count) override {
    ssize_t n = ::read(fd, buf, count);
    return n < 0 ? -errno : n;
  }
  int Ioctl(int fd, unsigned long request, unsigned long arg) override {
    int r = ::ioctl(fd, request, arg);
    return r < 0 ? -errno : r;
  }
  void* MapPerfPage(int fd, size_t length, int* err) override {
    void* p = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      *err = errno;
      return nullptr;
    }
    return p;
  }
  int Unmap(void* addr, size_t length) override { return ::munmap(addr, length) < 0 ? -errno : 0; }
  int Close(int fd) override { return ::close(fd) < 0 ? -errno : 0; }
  long PageSize() override { return ::sysconf(_SC_PAGESIZE); }
  uint64_t Rdpmc(uint32_t counter) override {
#if defined(__x86_64__) || defined(__i386__)
    uint32_t lo, hi;
    __asm__ volatile("rdpmc" : "=a"(lo), "=d"(hi) : "c"(counter));
    return (static_cast<uint64_t>(hi) << 32) | lo;
#else
    (void)counter;  // cap_user_rdpmc is never set where we cannot execute it
    return 0;
#endif
  }
  int64_t ThreadCpuNs() override {
    timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return -errno;
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }
  int64_t MonotonicNs() override {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }
  std::optional<std::string> ReadSmallFile(const char* path) override {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

}  // namespace

Kernel& RealKernel() {
  static LinuxKernel kernel;
  return kernel;
}

}  // namespace cpuledger::counters
