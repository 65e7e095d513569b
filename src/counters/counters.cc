#include "counters/counters.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>

#include <utility>

#include "counters/perf_page.h"

namespace cpuledger::counters {

const SourceInfo& Info(Source source) {
  for (const SourceInfo& info : kSources)
    if (info.source == source) return info;
  return kSources[std::size(kSources) - 1];  // unreachable for an enumerator
}

std::string_view SourceName(Source source) { return Info(source).name; }

uint8_t SourceCode(std::string_view name) {
  for (const SourceInfo& info : kSources)
    if (info.name == name) return info.code();
  return kUnknownSourceCode;
}

std::string_view RequestName(SourceRequest request) {
  for (const SourceInfo& info : kSources)
    if (info.request == request) return info.name;
  return kAutoName;
}

std::string_view ReadMethodName(ReadMethod method) {
  switch (method) {
    case ReadMethod::kRdpmc:
      return "rdpmc";
    case ReadMethod::kSyscall:
      return "read";
    case ReadMethod::kClock:
      return "clock_gettime";
  }
  return "unknown";
}

Result<SourceRequest> ParseSourceRequest(std::string_view text) {
  if (text == kAutoName || text.empty()) return SourceRequest::kAuto;
  std::string names(kAutoName);
  for (const SourceInfo& info : kSources) {
    if (info.name == text) return info.request;
    names += ", " + std::string(info.name);
  }
  return InvalidArgument("unknown counter source '" + std::string(text) + "' (expected one of " +
                         names + ")");
}

Result<SourceRequest> SourceRequestFromEnv() {
  const char* value = std::getenv(kSourceEnvVar);
  if (value == nullptr) return SourceRequest::kAuto;
  Result<SourceRequest> parsed = ParseSourceRequest(value);
  if (!parsed.ok())
    return InvalidArgument(std::string(kSourceEnvVar) + ": " + parsed.status().message());
  return parsed;
}

namespace {

uint64_t SubtractOrNA(uint64_t start, uint64_t end) {
  if (start == kNotAvailable || end == kNotAvailable) return kNotAvailable;
  return end >= start ? end - start : 0;  // scaled estimates can step back slightly
}

}  // namespace

Reading Delta(const Reading& start, const Reading& end) {
  Reading d = end;
  d.instructions = SubtractOrNA(start.instructions, end.instructions);
  d.cycles = SubtractOrNA(start.cycles, end.cycles);
  d.cpu_ns = end.cpu_ns >= start.cpu_ns ? end.cpu_ns - start.cpu_ns : 0;
  d.multiplex_scale = std::max(start.multiplex_scale, end.multiplex_scale);
  return d;
}

int ReadPerfEventParanoid(Kernel& kernel) {
  auto text = kernel.ReadSmallFile("/proc/sys/kernel/perf_event_paranoid");
  if (!text) return INT32_MIN;
  char* end = nullptr;
  long v = std::strtol(text->c_str(), &end, 10);
  return end == text->c_str() ? INT32_MIN : static_cast<int>(v);
}

bool RunningInVirtualMachine(Kernel& kernel) {
  auto text = kernel.ReadSmallFile("/proc/cpuinfo");
  return text && text->find(" hypervisor") != std::string::npos;
}

std::string ExplainOpenError(Source source, int err, Kernel& kernel) {
  const std::string name = std::string(SourceName(source));
  const char* errname = strerrorname_np(err);
  const std::string tag =
      std::string(" (") + (errname ? errname : "errno " + std::to_string(err)) + ")";
  const int paranoid = ReadPerfEventParanoid(kernel);
  const std::string paranoid_text = paranoid == INT32_MIN ? "unreadable" : std::to_string(paranoid);
  switch (err) {
    case ENOENT:
    case EOPNOTSUPP:
    case ENODEV:
      if (source == Source::kHardware) {
        if (RunningInVirtualMachine(kernel))
          return "no PMU: this is a VM without a virtual PMU, so hardware counters are not "
                 "supported here; run on bare metal or enable the hypervisor's vPMU" +
                 tag;
        return "no PMU: this kernel has no hardware-counter driver for this CPU" + tag;
      }
      return name + " events are not supported by this kernel" + tag;
    case EACCES:
    case EPERM:
      if (paranoid >= 3)
        return "perf_event_paranoid is " + paranoid_text +
               ", which forbids perf_event_open to unprivileged users; run "
               "`sysctl -w kernel.perf_event_paranoid=2` (or grant CAP_PERFMON)" +
               tag;
      if (paranoid == 2 && source == Source::kHardware)
        return "perf_event_paranoid is 2, which forbids counting kernel mode; "
               "`sysctl -w kernel.perf_event_paranoid=1` allows it" +
               tag;
      return "perf_event_open blocked by a container seccomp profile or security module "
             "(perf_event_paranoid is " +
             paranoid_text +
             ", which would allow it); allow perf_event_open in the profile or grant "
             "CAP_PERFMON" +
             tag;
    case ENOSYS:
      return "perf_event_open does not exist here: the kernel lacks CONFIG_PERF_EVENTS, or a "
             "sandbox (seccomp, gVisor) hides it" +
             tag;
    case EMFILE:
    case ENFILE:
      return "out of file descriptors; raise `ulimit -n`" + tag;
    case EINVAL:
      return "the kernel rejected the " + name + " event attributes" + tag;
    default:
      return std::string(strerror(err)) + tag;
  }
}

namespace internal {

// ScopedFd — owns one perf fd, closed through the Kernel.
class ScopedFd {
 public:
  ScopedFd() = default;
  ScopedFd(Kernel* kernel, int fd) : kernel_(kernel), fd_(fd) {}
  ScopedFd(ScopedFd&& o) noexcept : kernel_(o.kernel_), fd_(std::exchange(o.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&& o) noexcept {
    if (this != &o) {
      Reset();
      kernel_ = o.kernel_;
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~ScopedFd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  void Reset() {
    if (fd_ >= 0) kernel_->Close(fd_);
    fd_ = -1;
  }
  Kernel* kernel_ = nullptr;
  int fd_ = -1;
};

// ScopedPerfPage — owns one read-only mapping of a perf fd's first page.
class ScopedPerfPage {
 public:
  ScopedPerfPage() = default;
  ScopedPerfPage(Kernel* kernel, void* addr, size_t length)
      : kernel_(kernel), addr_(addr), length_(length) {}
  ScopedPerfPage(ScopedPerfPage&& o) noexcept
      : kernel_(o.kernel_), addr_(std::exchange(o.addr_, nullptr)), length_(o.length_) {}
  ScopedPerfPage& operator=(ScopedPerfPage&& o) noexcept {
    if (this != &o) {
      Reset();
      kernel_ = o.kernel_;
      addr_ = std::exchange(o.addr_, nullptr);
      length_ = o.length_;
    }
    return *this;
  }
  ~ScopedPerfPage() { Reset(); }
  const volatile perf_event_mmap_page* page() const {
    return static_cast<const volatile perf_event_mmap_page*>(addr_);
  }
  bool valid() const { return addr_ != nullptr; }

 private:
  void Reset() {
    if (addr_ != nullptr) kernel_->Unmap(addr_, length_);
    addr_ = nullptr;
  }
  Kernel* kernel_ = nullptr;
  void* addr_ = nullptr;
  size_t length_ = 0;
};

// Handles — the perf fds of a set: instructions (leader) and cycles for
// hardware, task-clock alone for the software source.
class Handles {
 public:
  ScopedFd leader;
  ScopedFd member;  // cycles; invalid when the PMU refused it
  ScopedPerfPage leader_page;
  ScopedPerfPage member_page;
};

}  // namespace internal

namespace {

using internal::Handles;
using internal::ScopedFd;
using internal::ScopedPerfPage;

constexpr uint64_t kGroupFormat =
    PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
constexpr uint64_t kSingleFormat = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;

perf_event_attr MakeAttr(uint32_t type, uint64_t config, uint64_t read_format, bool count_kernel) {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = type;
  attr.config = config;
  attr.read_format = read_format;
  attr.disabled = 1;  // enabled together once the group is whole
  attr.exclude_hv = 1;
  attr.exclude_kernel = count_kernel ? 0 : 1;
  return attr;
}

// Scale() — count * enabled / running: the multiplexing estimate perf stat uses.
uint64_t Scale(uint64_t count, uint64_t enabled, uint64_t running, double* scale) {
  if (running == 0) {
    *scale = 0.0;
    return enabled == 0 ? 0 : kNotAvailable;  // never had the PMU: the count is unknown
  }
  if (running >= enabled) {
    *scale = 1.0;
    return count;
  }
  *scale = static_cast<double>(enabled) / static_cast<double>(running);
  return static_cast<uint64_t>(static_cast<double>(count) * *scale);
}

}  // namespace

// Opener — the steps of CounterSet::Open, one function per source.
class Opener {
 public:
  Opener(const Options& options, Kernel& kernel) : options_(options), kernel_(kernel) {}

  Result<CounterSet> Open() {
    std::optional<CounterSet> best;
    size_t best_attempt = 0;
    Status last;
    for (const SourceInfo& info : kSources) {
      if (options_.source != SourceRequest::kAuto && info.request != options_.source) continue;
      if (best && info.unit != Info(best->source()).unit) continue;  // a fallback, not needed
      CounterSet set(kernel_, info.source);
      const size_t index = attempts_.size();
      attempts_.push_back(Attempt{info.source, OkStatus(), {}});
      attempts_[index].status = OpenSource(set, attempts_[index].notes);
      if (!attempts_[index].status.ok()) {
        last = attempts_[index].status;
      } else if (!best) {
        best.emplace(std::move(set));
        best_attempt = index;
      } else if (KeepCheaper(set, index, *best, best_attempt)) {
        best.emplace(std::move(set));
        best_attempt = index;
      }
    }
    if (!best) return last;
    best->attempts_ = std::move(attempts_);
    return std::move(*best);
  }

 private:
  // KeepCheaper() — times two open sources of one unit; true when `challenger`
  // reads cheaper than `held` (a tie keeps `held`, the earlier in the chain).
  // Notes on the loser why it was passed over.
  bool KeepCheaper(CounterSet& challenger, size_t challenger_attempt, CounterSet& held,
                   size_t held_attempt) {
    Attempt& h = attempts_[held_attempt];
    Attempt& c = attempts_[challenger_attempt];
    if (h.read_ns < 0) h.read_ns = MeasureReadNs(held, kernel_);
    c.read_ns = MeasureReadNs(challenger, kernel_);
    const bool cheaper = c.read_ns < h.read_ns;
    Attempt& loser = cheaper ? h : c;
    const Attempt& winner = cheaper ? c : h;
    loser.notes.push_back("opens, but " + std::string(SourceName(winner.source)) +
                          " gives the same unit for less (" + FormatCost(winner.read_ns) +
                          " against " + FormatCost(loser.read_ns) + " a read)");
    return cheaper;
  }

  static std::string FormatCost(double ns) { return std::to_string(std::lround(ns)) + " ns"; }

  Status OpenSource(CounterSet& set, std::vector<std::string>& notes) {
    switch (set.source_) {
      case Source::kHardware:
        return OpenHardware(set, notes);
      case Source::kTaskClock:
        return OpenTaskClock(set);
      case Source::kThreadCpuTime:
        return OpenThreadCpuTime(set);
    }
    return Unavailable("unknown counter source");
  }

  Status Failure(Source source, int err) {
    std::string why = ExplainOpenError(source, err, kernel_);
    if (err == EACCES || err == EPERM) return PermissionDenied(std::move(why));
    return Unavailable(std::move(why));
  }

  // OpenPerf() — one perf_event_open on this thread, any CPU.
  int OpenPerf(perf_event_attr& attr, int group_fd) {
    return kernel_.PerfEventOpen(&attr, /*pid=*/0, /*cpu=*/-1, group_fd, 0);
  }

  ScopedPerfPage MapPage(int fd, std::vector<std::string>& notes) {
    const long page = kernel_.PageSize();
    int err = 0;
    void* addr = kernel_.MapPerfPage(fd, static_cast<size_t>(page > 0 ? page : 4096), &err);
    if (addr == nullptr) {
      notes.push_back("mmap of the perf page failed (" + std::string(strerror(err)) +
                      "): reading with read()");
      return {};
    }
    return ScopedPerfPage(&kernel_, addr, static_cast<size_t>(page > 0 ? page : 4096));
  }

  Status OpenHardware(CounterSet& set, std::vector<std::string>& notes) {
    auto handles = std::make_unique<Handles>();
    bool count_kernel = options_.count_kernel;
    perf_event_attr attr =
        MakeAttr(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS, kGroupFormat, count_kernel);
    int fd = OpenPerf(attr, -1);
    if ((fd == -EACCES || fd == -EPERM) && count_kernel) {
      // perf_event_paranoid >= 2 refuses kernel-mode counting to unprivileged
      // users but still allows user-only counting of one's own threads.
      count_kernel = false;
      attr.exclude_kernel = 1;
      fd = OpenPerf(attr, -1);
      if (fd >= 0)
        notes.push_back("counting user space only: " +
                        ExplainOpenError(Source::kHardware, EACCES, kernel_));
    }
    if (fd < 0) return Failure(Source::kHardware, -fd);
    handles->leader = ScopedFd(&kernel_, fd);

    perf_event_attr cycles =
        MakeAttr(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, kGroupFormat, count_kernel);
    int cfd = OpenPerf(cycles, handles->leader.get());
    if (cfd >= 0) {
      handles->member = ScopedFd(&kernel_, cfd);
    } else {
      notes.push_back("cycles unavailable: " + ExplainOpenError(Source::kHardware, -cfd, kernel_));
    }

    int rc = kernel_.Ioctl(handles->leader.get(), PERF_EVENT_IOC_ENABLE, PERF_IOC_FLAG_GROUP);
    if (rc < 0) return Failure(Source::kHardware, -rc);

    set.method_ = ReadMethod::kSyscall;
    if (options_.use_rdpmc) {
      handles->leader_page = MapPage(handles->leader.get(), notes);
      if (handles->member.valid() && handles->leader_page.valid())
        handles->member_page = MapPage(handles->member.get(), notes);
      if (handles->leader_page.valid() && handles->leader_page.page()->cap_user_rdpmc) {
        set.method_ = ReadMethod::kRdpmc;
      } else if (handles->leader_page.valid()) {
        notes.push_back(
            "rdpmc not allowed (cap_user_rdpmc is 0; see "
            "/sys/bus/event_source/devices/cpu/rdpmc): reading with read()");
      }
    }
    set.kernel_included_ = count_kernel;
    set.handles_ = std::move(handles);
    return OkStatus();
  }

  Status OpenTaskClock(CounterSet& set) {
    auto handles = std::make_unique<Handles>();
    perf_event_attr attr = MakeAttr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, kSingleFormat,
                                    /*count_kernel=*/true);
    int fd = OpenPerf(attr, -1);
    if (fd == -EACCES || fd == -EPERM) {
      attr.exclude_kernel = 1;
      fd = OpenPerf(attr, -1);
    }
    if (fd < 0) return Failure(Source::kTaskClock, -fd);
    handles->leader = ScopedFd(&kernel_, fd);
    int rc = kernel_.Ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
    if (rc < 0) return Failure(Source::kTaskClock, -rc);
    set.method_ = ReadMethod::kSyscall;
    set.handles_ = std::move(handles);
    return OkStatus();
  }

  Status OpenThreadCpuTime(CounterSet& set) {
    int64_t ns = kernel_.ThreadCpuNs();
    if (ns < 0)
      return Unavailable("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: " +
                         std::string(strerror(static_cast<int>(-ns))));
    set.method_ = ReadMethod::kClock;
    return OkStatus();
  }

  Options options_;
  Kernel& kernel_;
  std::vector<Attempt> attempts_;
};

Result<CounterSet> CounterSet::Open(const Options& options, Kernel& kernel) {
  return Opener(options, kernel).Open();
}

CounterSet::CounterSet(Kernel& kernel, Source source) : kernel_(&kernel), source_(source) {}
CounterSet::CounterSet(CounterSet&&) noexcept = default;
CounterSet& CounterSet::operator=(CounterSet&&) noexcept = default;
CounterSet::~CounterSet() = default;

std::string_view CounterSet::primary_unit() const { return Info(source_).unit; }

double MeasureReadNs(CounterSet& set, Kernel& kernel) {
  return MedianCostNs(kernel, [&set] { return set.Read().cpu_ns; });
}

bool CounterSet::has_cycles() const { return handles_ && handles_->member.valid(); }

namespace {

uint64_t ThreadNs(Kernel& kernel) {
  int64_t ns = kernel.ThreadCpuNs();
  return ns < 0 ? 0 : static_cast<uint64_t>(ns);
}

}  // namespace

Reading CounterSet::Read() {
  Reading r;
  r.source = source_;
  r.kernel_included = kernel_included_;
  switch (source_) {
    case Source::kThreadCpuTime:
      r.cpu_ns = ThreadNs(*kernel_);
      return r;
    case Source::kTaskClock: {
      uint64_t buf[3] = {0, 0, 0};  // value, time_enabled, time_running
      if (kernel_->Read(handles_->leader.get(), buf, sizeof(buf)) == sizeof(buf)) {
        r.cpu_ns = buf[0];
      } else {
        r.cpu_ns = ThreadNs(*kernel_);  // keep going; the source still says task_clock
      }
      return r;
    }
    case Source::kHardware: {
      uint64_t instructions = 0, cycles = 0;
      if (method_ == ReadMethod::kRdpmc &&
          ReadPerfPageCount(handles_->leader_page.page(), *kernel_, &instructions) &&
          (!handles_->member_page.valid() ||
           ReadPerfPageCount(handles_->member_page.page(), *kernel_, &cycles))) {
        r.instructions = instructions;
        r.cycles = handles_->member_page.valid() ? cycles : kNotAvailable;
      } else {
        // nr, time_enabled, time_running, values[nr]
        uint64_t buf[5] = {0, 0, 0, 0, 0};
        long n = kernel_->Read(handles_->leader.get(), buf, sizeof(buf));
        if (n >= static_cast<long>(4 * sizeof(uint64_t)) && buf[0] >= 1) {
          r.instructions = Scale(buf[3], buf[1], buf[2], &r.multiplex_scale);
          if (buf[0] >= 2 && n >= static_cast<long>(5 * sizeof(uint64_t)))
            r.cycles = Scale(buf[4], buf[1], buf[2], &r.multiplex_scale);
        }
      }
      r.cpu_ns = ThreadNs(*kernel_);
      return r;
    }
  }
  return r;
}

uint64_t CounterSet::ReadPrimary() {
  if (source_ == Source::kHardware) {
    uint64_t value = 0;
    if (method_ == ReadMethod::kRdpmc &&
        ReadPerfPageCount(handles_->leader_page.page(), *kernel_, &value))
      return value;
    return Read().instructions;
  }
  return Read().cpu_ns;
}

}  // namespace cpuledger::counters
