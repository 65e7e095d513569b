// tests/cpp/fake_kernel.h — a Kernel that plays a machine, for counter tests.
//
// The knobs describe the machine (PMU or not, rdpmc allowed, paranoid,
// seccomp, multiplexing); the state is the "true" counts the fake hardware
// holds. It keeps a ledger of every fd and mapping so tests can check that
// nothing leaks.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "counters/kernel.h"

namespace cpuledger::counters::testing {

class FakeKernel : public Kernel {
 public:
  // --- the machine ---
  int hardware_errno = 0;     // perf_event_open of any hardware event fails so (ENOENT: no PMU)
  int kernel_mode_errno = 0;  // fails so when exclude_kernel == 0 (paranoid refuses kernel)
  int task_clock_errno = 0;   // perf_event_open of task-clock fails so
  int cycles_errno = 0;       // only the cycles event fails so
  int mmap_errno = 0;         // mmap of a perf page fails so
  int ioctl_errno = 0;
  bool rdpmc_allowed = true;  // cap_user_rdpmc in the page
  uint16_t pmc_width = 48;
  int paranoid = 2;
  bool vm = false;
  int64_t thread_ns_errno = 0;

  // --- the state of the fake hardware ---
  uint64_t instructions = 0;  // true counts since the events were enabled
  uint64_t cycles = 0;
  uint64_t time_enabled = 1000;  // ns the group was enabled / running
  uint64_t time_running = 1000;
  uint64_t task_clock_ns = 0;
  int64_t thread_cpu_ns = 0;
  // What a read costs on the played machine: the fake monotonic clock
  // advances so much per call, which makes timed choices deterministic.
  // Equal by default, so kAuto keeps the chain order.
  int64_t task_clock_read_ns = 300;    // per read() of a task-clock fd
  int64_t thread_clock_read_ns = 300;  // per ThreadCpuNs()
  int64_t monotonic_ns = 1'000'000;    // the fake CLOCK_MONOTONIC
  // Called inside Rdpmc, before it answers: lets a test rewrite the page
  // mid-read as the kernel would on a context switch.
  std::function<void(FakeKernel&)> on_rdpmc;

  // --- the ledger ---
  std::vector<perf_event_attr> opened_attrs;  // every successful open, in order
  std::vector<int> opened_group_fds;
  std::set<int> open_fds;
  std::set<void*> live_maps;
  int rdpmc_calls = 0;
  int read_calls = 0;

  // The raw register the fake PMU would hold for `count`, given the page's
  // offset: (count - offset) mod 2^width, with junk in the bits above width
  // (which the reader must ignore, as the kernel documents).
  uint64_t Register(uint64_t count, int64_t offset) const {
    uint64_t mask = pmc_width >= 64 ? ~0ull : ((1ull << pmc_width) - 1);
    uint64_t raw = (count - static_cast<uint64_t>(offset)) & mask;
    return pmc_width >= 64 ? raw : raw | (0xABCDull << pmc_width);
  }

  perf_event_mmap_page* PageFor(int fd) {
    auto it = fds_.find(fd);
    return it == fds_.end() ? nullptr : it->second.page;
  }
  // Keeps every mapped page's fields in step with the state above.
  void SyncPages() {
    for (auto& [fd, info] : fds_) {
      if (!info.page) continue;
      info.page->cap_user_rdpmc = rdpmc_allowed ? 1 : 0;
      info.page->pmc_width = pmc_width;
      info.page->time_enabled = time_enabled;
      info.page->time_running = time_running;
      info.page->index = info.is_cycles ? 2 : 1;
    }
  }
  // Sets the page offset of every hardware fd (simulating the kernel folding
  // the register into `offset` on a context switch) and bumps the seqlock.
  void SetOffset(int64_t offset) {
    offset_ = offset;
    for (auto& [fd, info] : fds_)
      if (info.page) {
        info.page->offset = offset;
        info.page->lock += 2;
      }
  }

  // --- Kernel ---
  int PerfEventOpen(perf_event_attr* attr, pid_t pid, int cpu, int group_fd,
                    unsigned long) override {
    if (pid != 0 || cpu != -1) return -EINVAL;  // the counters must count only the calling thread
    const bool hw = attr->type == PERF_TYPE_HARDWARE;
    const bool is_cycles = hw && attr->config == PERF_COUNT_HW_CPU_CYCLES;
    if (hw && hardware_errno) return -hardware_errno;
    if (is_cycles && cycles_errno) return -cycles_errno;
    if (!hw && task_clock_errno) return -task_clock_errno;
    if (!attr->exclude_kernel && kernel_mode_errno) return -kernel_mode_errno;
    if (group_fd != -1 && !open_fds.count(group_fd)) return -EBADF;
    int fd = next_fd_++;
    open_fds.insert(fd);
    fds_[fd] = FdInfo{hw, is_cycles, attr->read_format, nullptr};
    opened_attrs.push_back(*attr);
    opened_group_fds.push_back(group_fd);
    return fd;
  }

  long Read(int fd, void* buf, size_t count) override {
    ++read_calls;
    auto it = fds_.find(fd);
    if (it == fds_.end()) return -EBADF;
    // With multiplexing the kernel reports the count over time_running only.
    auto running_share = [&](uint64_t v) {
      return time_enabled == 0
                 ? v
                 : static_cast<uint64_t>(static_cast<long double>(v) * time_running / time_enabled);
    };
    std::vector<uint64_t> out;
    if (it->second.hw) {
      out = {cycles_fd_open() ? 2u : 1u, time_enabled, time_running, running_share(instructions)};
      if (cycles_fd_open()) out.push_back(running_share(cycles));
    } else {
      monotonic_ns += task_clock_read_ns;
      out = {task_clock_ns, time_enabled, time_enabled};
    }
    size_t bytes = out.size() * sizeof(uint64_t);
    if (count < bytes) return -ENOSPC;
    std::memcpy(buf, out.data(), bytes);
    return static_cast<long>(bytes);
  }

  int Ioctl(int fd, unsigned long, unsigned long) override {
    if (!open_fds.count(fd)) return -EBADF;
    return ioctl_errno ? -ioctl_errno : 0;
  }

  void* MapPerfPage(int fd, size_t length, int* err) override {
    if (mmap_errno) {
      *err = mmap_errno;
      return nullptr;
    }
    auto it = fds_.find(fd);
    if (it == fds_.end()) {
      *err = EBADF;
      return nullptr;
    }
    void* mem = std::aligned_alloc(4096, length);
    std::memset(mem, 0, length);
    it->second.page = static_cast<perf_event_mmap_page*>(mem);
    it->second.page->offset = offset_;
    live_maps.insert(mem);
    SyncPages();
    return mem;
  }

  int Unmap(void* addr, size_t) override {
    if (!live_maps.erase(addr)) return -EINVAL;
    for (auto& [fd, info] : fds_)
      if (info.page == addr) info.page = nullptr;
    std::free(addr);
    return 0;
  }

  int Close(int fd) override {
    if (!open_fds.erase(fd)) return -EBADF;
    fds_.erase(fd);
    return 0;
  }

  long PageSize() override { return 4096; }

  uint64_t Rdpmc(uint32_t counter) override {
    ++rdpmc_calls;
    if (on_rdpmc) {
      auto hook = std::move(on_rdpmc);  // once
      on_rdpmc = nullptr;
      hook(*this);
    }
    return Register(counter == 1 ? cycles : instructions, offset_);
  }

  int64_t ThreadCpuNs() override {
    monotonic_ns += thread_clock_read_ns;
    return thread_ns_errno ? -thread_ns_errno : thread_cpu_ns;
  }

  int64_t MonotonicNs() override { return monotonic_ns; }

  std::optional<std::string> ReadSmallFile(const char* path) override {
    if (std::string(path) == "/proc/sys/kernel/perf_event_paranoid")
      return std::to_string(paranoid) + "\n";
    if (std::string(path) == "/proc/cpuinfo")
      return std::string("flags\t\t: fpu vme de pse tsc") + (vm ? " hypervisor" : "") + " lm\n";
    return std::nullopt;
  }

  ~FakeKernel() override {
    for (void* p : live_maps) std::free(p);
  }

 private:
  struct FdInfo {
    bool hw = false;
    bool is_cycles = false;
    uint64_t read_format = 0;
    perf_event_mmap_page* page = nullptr;
  };
  bool cycles_fd_open() const {
    for (auto& [fd, info] : fds_)
      if (info.is_cycles) return true;
    return false;
  }
  std::map<int, FdInfo> fds_;
  int next_fd_ = 100;
  int64_t offset_ = 0;
};

}  // namespace cpuledger::counters::testing
