// Counters on this machine's real kernel: the software sources always, the
// hardware source where a PMU exists (skipped, with the reason, elsewhere).
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "counters/counters.h"
#include "counters/thread_counters.h"

namespace cpuledger::counters {
namespace {

// Spin() — CPU work the optimiser cannot remove.
double Spin(int iterations) {
  volatile double x = 1.0;
  for (int i = 0; i < iterations; ++i) x = x * 1.0000001 + std::sqrt(static_cast<double>(i));
  return x;
}

Reading Measure(CounterSet& set, int iterations) {
  Reading before = set.Read();
  Spin(iterations);
  return Delta(before, set.Read());
}

class RealSource : public ::testing::TestWithParam<SourceRequest> {};

TEST_P(RealSource, BusyLoopCostsMoreWhenItDoesMore) {
  Options o;
  o.source = GetParam();
  Result<CounterSet> set = CounterSet::Open(o);
  if (!set.ok()) {
    // Only the hardware source may be missing (no PMU here); say why.
    ASSERT_EQ(GetParam(), SourceRequest::kHardware) << set.status().ToString();
    GTEST_SKIP() << set.status().message();
  }
  Reading small = Measure(*set, 2'000'000);
  Reading large = Measure(*set, 20'000'000);
  EXPECT_GT(small.cpu_ns, 0u);
  EXPECT_GT(large.cpu_ns, 3 * small.cpu_ns) << "10x the work should cost well over 3x";
  if (set->source() == Source::kHardware) {
    ASSERT_NE(small.instructions, kNotAvailable);
    EXPECT_GT(small.instructions, 2'000'000u);  // at least one instruction per iteration
    EXPECT_GT(large.instructions, 8 * small.instructions);
    EXPECT_LT(large.instructions, 12 * small.instructions);
  } else {
    EXPECT_EQ(small.instructions, kNotAvailable);
  }
}

TEST_P(RealSource, ThreadsCountIndependently) {
  Options o;
  o.source = GetParam();
  // One thread spins hard while this one sleeps: this thread's bill must not
  // include the other's work, and the other's must.
  uint64_t busy_ns = 0;
  bool opened = true;
  std::thread busy([&] {
    Result<CounterSet> set = CounterSet::Open(o);
    if (!set.ok()) {
      opened = false;
      return;
    }
    busy_ns = Measure(*set, 20'000'000).cpu_ns;
  });
  Result<CounterSet> mine = CounterSet::Open(o);
  if (!mine.ok()) {
    busy.join();
    GTEST_SKIP() << mine.status().message();
  }
  Reading before = mine->Read();
  busy.join();
  uint64_t idle_ns = Delta(before, mine->Read()).cpu_ns;
  ASSERT_TRUE(opened);
  EXPECT_GT(busy_ns, 0u);
  EXPECT_LT(idle_ns * 10, busy_ns) << "waiting for a thread is not its CPU work";
}

INSTANTIATE_TEST_SUITE_P(Sources, RealSource,
                         ::testing::Values(SourceRequest::kHardware, SourceRequest::kTaskClock,
                                           SourceRequest::kThreadCpuTime),
                         [](const auto& info) {
                           switch (info.param) {
                             case SourceRequest::kHardware:
                               return std::string("hardware");
                             case SourceRequest::kTaskClock:
                               return std::string("task_clock");
                             default:
                               return std::string("thread_cputime");
                           }
                         });

TEST(RealKernel, AutoOpensSomethingAndSaysWhat) {
  Result<CounterSet> set = CounterSet::Open();
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  // Every source tried either failed and says why, or is the one chosen, or
  // opened and says which source of its unit read cheaper.
  int chosen = 0;
  for (const Attempt& a : set->attempts()) {
    if (!a.status.ok()) {
      EXPECT_FALSE(a.status.message().empty());
    } else if (a.source == set->source()) {
      ++chosen;
    } else {
      ASSERT_EQ(a.notes.size(), 1u);
      EXPECT_NE(a.notes[0].find("gives the same unit for less"), std::string::npos);
      EXPECT_EQ(Info(a.source).unit, set->primary_unit());
    }
  }
  EXPECT_EQ(chosen, 1);
  EXPECT_EQ(set->Read().source, set->source());
}

TEST(RealKernel, LaterThreadsOpenTheSourceTheFirstAutoOpenChose) {
  SetThreadCounterOptions({});  // kAuto; forgets an earlier choice
  Source first = Source::kHardware;
  std::thread([&] {
    Result<CounterSet*> set = ThisThreadCounters();
    ASSERT_TRUE(set.ok()) << set.status().ToString();
    first = (*set)->source();
  }).join();
  std::thread([&] {
    Result<CounterSet*> set = ThisThreadCounters();
    ASSERT_TRUE(set.ok()) << set.status().ToString();
    EXPECT_EQ((*set)->source(), first);
    ASSERT_EQ((*set)->attempts().size(), 1u);  // opened directly: nothing tried or timed again
    EXPECT_EQ((*set)->attempts()[0].read_ns, -1);
  }).join();
}

}  // namespace
}  // namespace cpuledger::counters
