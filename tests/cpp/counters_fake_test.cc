// Counter behaviour on machines we do not have, played by FakeKernel.
#include <gtest/gtest.h>

#include "counters/counters.h"
#include "fake_kernel.h"

namespace cpuledger::counters {
namespace {

using testing::FakeKernel;

Options Want(SourceRequest source) {
  Options o;
  o.source = source;
  return o;
}

TEST(CountersFake, NoPmuInVmFallsBackToTaskClockAndSaysWhy) {
  FakeKernel k;
  k.hardware_errno = ENOENT;
  k.vm = true;
  k.task_clock_ns = 5000;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->source(), Source::kTaskClock);  // as cheap as thread_cputime: chain order
  ASSERT_EQ(set->attempts().size(), 3u);         // thread_cputime was opened to be timed
  EXPECT_EQ(set->attempts()[0].status.code(), StatusCode::kUnavailable);
  EXPECT_NE(set->attempts()[0].status.message().find("VM without a virtual PMU"),
            std::string::npos);
  EXPECT_NE(set->attempts()[0].status.message().find("ENOENT"), std::string::npos);

  Reading r = set->Read();
  EXPECT_EQ(r.source, Source::kTaskClock);
  EXPECT_EQ(r.instructions, kNotAvailable);  // marked, never a silent zero
  EXPECT_EQ(r.cycles, kNotAvailable);
  EXPECT_EQ(r.cpu_ns, 5000u);
}

TEST(CountersFake, EopnotsuppOnBareMetalNamesTheDriver) {
  FakeKernel k;
  k.hardware_errno = EOPNOTSUPP;
  k.vm = false;
  Result<CounterSet> set = CounterSet::Open(Want(SourceRequest::kHardware), k);
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(set.status().message().find("no hardware-counter driver"), std::string::npos);
  EXPECT_NE(set.status().message().find("EOPNOTSUPP"), std::string::npos);
}

TEST(CountersFake, HardwareWithRdpmcReadsWithoutSyscalls) {
  FakeKernel k;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->source(), Source::kHardware);
  EXPECT_EQ(set->method(), ReadMethod::kRdpmc);
  EXPECT_TRUE(set->has_cycles());
  EXPECT_EQ(set->primary_unit(), "instructions");
  // Opened as one group on this thread, disabled until enabled together.
  ASSERT_EQ(k.opened_attrs.size(), 2u);
  EXPECT_EQ(k.opened_attrs[0].config, static_cast<uint64_t>(PERF_COUNT_HW_INSTRUCTIONS));
  EXPECT_EQ(k.opened_attrs[1].config, static_cast<uint64_t>(PERF_COUNT_HW_CPU_CYCLES));
  EXPECT_EQ(k.opened_group_fds[1], *k.open_fds.begin());
  EXPECT_TRUE(k.opened_attrs[0].read_format & PERF_FORMAT_GROUP);

  k.instructions = 1'000'000;
  k.cycles = 700'000;
  k.thread_cpu_ns = 300;
  Reading a = set->Read();
  k.instructions = 1'250'000;
  k.cycles = 900'000;
  k.thread_cpu_ns = 800;
  Reading b = set->Read();
  EXPECT_EQ(k.read_calls, 0);
  EXPECT_EQ(k.rdpmc_calls, 4);
  Reading d = Delta(a, b);
  EXPECT_EQ(d.instructions, 250'000u);
  EXPECT_EQ(d.cycles, 200'000u);
  EXPECT_EQ(d.cpu_ns, 500u);
  EXPECT_EQ(d.source, Source::kHardware);
  EXPECT_TRUE(d.kernel_included);
  EXPECT_DOUBLE_EQ(d.multiplex_scale, 1.0);
  EXPECT_EQ(set->ReadPrimary(), 1'250'000u);
}

TEST(CountersFake, ReadOnlyPageFallsBackToReadSyscall) {
  FakeKernel k;
  k.rdpmc_allowed = false;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->method(), ReadMethod::kSyscall);
  bool noted = false;
  for (auto& n : set->attempts().back().notes)
    noted |= n.find("rdpmc not allowed") != std::string::npos;
  EXPECT_TRUE(noted);
  k.instructions = 4242;
  k.cycles = 99;
  Reading r = set->Read();
  EXPECT_EQ(k.rdpmc_calls, 0);
  EXPECT_EQ(k.read_calls, 1);
  EXPECT_EQ(r.instructions, 4242u);
  EXPECT_EQ(r.cycles, 99u);
}

TEST(CountersFake, MmapFailureFallsBackToRead) {
  FakeKernel k;
  k.mmap_errno = ENOMEM;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->method(), ReadMethod::kSyscall);
  k.instructions = 10;
  EXPECT_EQ(set->Read().instructions, 10u);
}

TEST(CountersFake, RdpmcCanBeTurnedOff) {
  FakeKernel k;
  Options o;
  o.use_rdpmc = false;
  Result<CounterSet> set = CounterSet::Open(o, k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->method(), ReadMethod::kSyscall);
  EXPECT_TRUE(k.live_maps.empty());
}

TEST(CountersFake, MultiplexedCountsAreScaled) {
  FakeKernel k;
  k.time_enabled = 2000;
  k.time_running = 1000;  // the group had the PMU half the time
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  k.SyncPages();
  k.instructions = 1'000'000;
  k.cycles = 600'000;
  Reading r = set->Read();
  // rdpmc is skipped (its raw count would need scaling); read() is scaled.
  EXPECT_EQ(k.rdpmc_calls, 0);
  EXPECT_DOUBLE_EQ(r.multiplex_scale, 2.0);
  EXPECT_EQ(r.instructions, 1'000'000u);  // 500k observed * 2000/1000
  EXPECT_EQ(r.cycles, 600'000u);
}

TEST(CountersFake, NeverScheduledGroupIsNotAvailableNotZero) {
  FakeKernel k;
  k.rdpmc_allowed = false;
  k.time_enabled = 500;
  k.time_running = 0;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  Reading r = set->Read();
  EXPECT_EQ(r.instructions, kNotAvailable);
  EXPECT_DOUBLE_EQ(r.multiplex_scale, 0.0);
}

TEST(CountersFake, ParanoidRefusesKernelModeSoCountsUserOnly) {
  FakeKernel k;
  k.paranoid = 2;
  k.kernel_mode_errno = EACCES;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->source(), Source::kHardware);
  EXPECT_FALSE(set->kernel_included());
  EXPECT_TRUE(k.opened_attrs[0].exclude_kernel);
  EXPECT_TRUE(k.opened_attrs[1].exclude_kernel);  // the cycles member too
  ASSERT_FALSE(set->attempts().back().notes.empty());
  EXPECT_NE(set->attempts().back().notes[0].find("user space only"), std::string::npos);
  EXPECT_NE(set->attempts().back().notes[0].find("perf_event_paranoid is 2"), std::string::npos);
  EXPECT_FALSE(set->Read().kernel_included);
}

TEST(CountersFake, ParanoidThreeFallsBackToClockAndNamesTheSysctl) {
  FakeKernel k;
  k.paranoid = 3;
  k.hardware_errno = EACCES;
  k.task_clock_errno = EACCES;
  k.thread_cpu_ns = 77;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->source(), Source::kThreadCpuTime);
  EXPECT_EQ(set->method(), ReadMethod::kClock);
  ASSERT_EQ(set->attempts().size(), 3u);
  const Status& hw = set->attempts()[0].status;
  EXPECT_EQ(hw.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(hw.message().find("sysctl -w kernel.perf_event_paranoid=2"), std::string::npos);
  EXPECT_EQ(set->Read().cpu_ns, 77u);
  EXPECT_EQ(set->primary_unit(), "cpu_ns");
}

TEST(CountersFake, EpermDespiteLowParanoidBlamesSeccomp) {
  FakeKernel k;
  k.paranoid = 1;
  k.hardware_errno = EPERM;
  Result<CounterSet> set = CounterSet::Open(Want(SourceRequest::kHardware), k);
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(set.status().message().find("seccomp"), std::string::npos);
}

TEST(CountersFake, EnosysSaysPerfIsMissing) {
  FakeKernel k;
  k.hardware_errno = ENOSYS;
  std::string why = ExplainOpenError(Source::kHardware, ENOSYS, k);
  EXPECT_NE(why.find("CONFIG_PERF_EVENTS"), std::string::npos);
}

TEST(CountersFake, SeqlockChangeMidReadIsRetried) {
  FakeKernel k;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  k.instructions = 5000;
  // While the first rdpmc runs, the kernel folds the register into `offset`
  // (a context switch): the first sample is stale and must be thrown away.
  k.on_rdpmc = [](FakeKernel& kk) {
    kk.SetOffset(4000);
    kk.instructions = 6000;
  };
  uint64_t v = set->ReadPrimary();
  EXPECT_EQ(v, 6000u);
  EXPECT_GE(k.rdpmc_calls, 2);
}

TEST(CountersFake, CounterWrapAtPmcWidthIsSignExtended) {
  FakeKernel k;
  k.pmc_width = 48;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  // The kernel starts counters at -period: offset ahead of the count, so the
  // register holds a value just below 2^48 that is negative as a 48-bit number.
  k.SetOffset(1'000'000'010);
  k.instructions = 1'000'000'000;  // register = -10 mod 2^48
  Reading a = set->Read();
  k.instructions = 1'000'000'020;  // register wrapped through zero to 10
  Reading b = set->Read();
  EXPECT_EQ(a.instructions, 1'000'000'000u);
  EXPECT_EQ(b.instructions, 1'000'000'020u);
  EXPECT_EQ(Delta(a, b).instructions, 20u);
}

TEST(CountersFake, NarrowCounterWidthWraps) {
  FakeKernel k;
  k.pmc_width = 32;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  k.SetOffset(0x1'0000'0000ll + 5);
  k.instructions = 0x1'0000'0000ull;  // register = -5 in 32 bits
  EXPECT_EQ(set->ReadPrimary(), 0x1'0000'0000ull);
  k.instructions = 0x1'0000'0000ull + 100;
  EXPECT_EQ(set->ReadPrimary(), 0x1'0000'0000ull + 100);
}

TEST(CountersFake, CyclesRefusedKeepsInstructions) {
  FakeKernel k;
  k.cycles_errno = EOPNOTSUPP;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  EXPECT_FALSE(set->has_cycles());
  k.instructions = 321;
  Reading r = set->Read();
  EXPECT_EQ(r.instructions, 321u);
  EXPECT_EQ(r.cycles, kNotAvailable);
}

TEST(CountersFake, EverythingClosedAndUnmappedOnceTheSetDies) {
  FakeKernel k;
  {
    Result<CounterSet> set = CounterSet::Open({}, k);
    ASSERT_TRUE(set.ok());
    EXPECT_EQ(k.open_fds.size(), 2u);
    EXPECT_EQ(k.live_maps.size(), 2u);
    CounterSet moved = std::move(*set);  // moving must not double-close
    CounterSet again = std::move(moved);
    EXPECT_EQ(k.open_fds.size(), 2u);
    k.instructions = 9;
    EXPECT_EQ(again.ReadPrimary(), 9u);
  }
  EXPECT_TRUE(k.open_fds.empty());
  EXPECT_TRUE(k.live_maps.empty());
}

TEST(CountersFake, FailedOpenLeaksNothing) {
  FakeKernel k;
  k.ioctl_errno = EINVAL;  // the group opens but cannot be enabled
  k.task_clock_errno = ENOENT;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->source(), Source::kThreadCpuTime);
  EXPECT_TRUE(k.open_fds.empty());
  EXPECT_TRUE(k.live_maps.empty());
}

TEST(CountersFake, ForcedSourceIsHonouredEvenWhenBetterExists) {
  FakeKernel k;
  Result<CounterSet> set = CounterSet::Open(Want(SourceRequest::kTaskClock), k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->source(), Source::kTaskClock);
  EXPECT_EQ(set->attempts().size(), 1u);
}

TEST(CountersFake, DeltaKeepsNotAvailable) {
  Reading a, b;
  a.cpu_ns = 10;
  b.cpu_ns = 25;
  a.instructions = kNotAvailable;
  b.instructions = 100;
  Reading d = Delta(a, b);
  EXPECT_EQ(d.instructions, kNotAvailable);
  EXPECT_EQ(d.cycles, kNotAvailable);
  EXPECT_EQ(d.cpu_ns, 15u);
}

TEST(CountersFake, WithoutPmuTheCheaperOfTheCpuNsSourcesIsKept) {
  FakeKernel k;
  k.hardware_errno = ENOENT;
  k.task_clock_read_ns = 250;
  k.thread_clock_read_ns = 200;
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->source(), Source::kThreadCpuTime);
  ASSERT_EQ(set->attempts().size(), 3u);
  const Attempt& task_clock = set->attempts()[1];
  EXPECT_TRUE(task_clock.status.ok());
  EXPECT_DOUBLE_EQ(task_clock.read_ns, 250);
  EXPECT_DOUBLE_EQ(set->attempts()[2].read_ns, 200);
  ASSERT_EQ(task_clock.notes.size(), 1u);
  EXPECT_NE(task_clock.notes[0].find("thread_cputime gives the same unit for less (200 ns"),
            std::string::npos);
  EXPECT_EQ(k.open_fds.size(), 0u);  // the task-clock fd of the loser is closed
}

TEST(CountersFake, HardwareWinsWithoutTimingTheSoftwareSources) {
  FakeKernel k;
  k.task_clock_read_ns = 1;  // cheaper, but another unit
  Result<CounterSet> set = CounterSet::Open({}, k);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->source(), Source::kHardware);
  ASSERT_EQ(set->attempts().size(), 1u);
  EXPECT_EQ(set->attempts()[0].read_ns, -1);
}

TEST(CountersFake, TheStoreCodesAreTheSourceValues) {
  // Codes on disk in SQLite files: a change here would misread existing files.
  EXPECT_EQ(SourceCode("hardware"), 1);
  EXPECT_EQ(SourceCode("task_clock"), 2);
  EXPECT_EQ(SourceCode("thread_cputime"), 3);
  EXPECT_EQ(SourceCode("task-clock"), kUnknownSourceCode);
  for (const SourceInfo& info : kSources) {
    EXPECT_EQ(SourceName(info.source), info.name);
    EXPECT_EQ(SourceCode(info.name), info.code());
    EXPECT_EQ(*ParseSourceRequest(info.name), info.request);
    EXPECT_EQ(RequestName(info.request), info.name);
  }
}

TEST(CountersFake, ParseSourceRequestTakesOneSpelling) {
  EXPECT_EQ(*ParseSourceRequest("auto"), SourceRequest::kAuto);
  EXPECT_EQ(*ParseSourceRequest("hardware"), SourceRequest::kHardware);
  EXPECT_EQ(*ParseSourceRequest("task_clock"), SourceRequest::kTaskClock);
  EXPECT_EQ(*ParseSourceRequest("thread_cputime"), SourceRequest::kThreadCpuTime);
  for (std::string_view other : {"tsc", "task-clock", "thread-cputime", "cputime"}) {
    Result<SourceRequest> bad = ParseSourceRequest(other);
    ASSERT_FALSE(bad.ok()) << other;
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find(std::string(other)), std::string::npos);
    EXPECT_NE(bad.status().message().find("auto, hardware, task_clock, thread_cputime"),
              std::string::npos);
  }
}

TEST(CountersFake, SourceRequestFromEnvNamesTheVariable) {
  setenv(kSourceEnvVar, "thread_cputime", 1);
  EXPECT_EQ(*SourceRequestFromEnv(), SourceRequest::kThreadCpuTime);
  setenv(kSourceEnvVar, "bogus", 1);
  Result<SourceRequest> bad = SourceRequestFromEnv();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(kSourceEnvVar), std::string::npos);
  unsetenv(kSourceEnvVar);
  EXPECT_EQ(*SourceRequestFromEnv(), SourceRequest::kAuto);
}

}  // namespace
}  // namespace cpuledger::counters
