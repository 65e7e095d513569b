// The doctor's diagnosis on played machines and on this one.
#include <gtest/gtest.h>

#include "cli/doctor.h"
#include "fake_kernel.h"

namespace cpuledger::cli {
namespace {

TEST(Doctor, VmWithoutPmuSaysSoAndPicksSoftware) {
  counters::testing::FakeKernel k;
  k.hardware_errno = ENOENT;
  k.vm = true;
  DoctorReport r = RunDoctor(counters::SourceRequest::kAuto, k);
  ASSERT_EQ(r.sources.size(), 3u);
  EXPECT_FALSE(r.sources[0].available);
  EXPECT_NE(r.sources[0].reason.find("VM without a virtual PMU"), std::string::npos);
  EXPECT_TRUE(r.sources[1].available);
  EXPECT_EQ(r.selected, "task_clock");
  EXPECT_GT(r.sources[1].read_ns, 0);
  EXPECT_TRUE(r.virtual_machine);

  std::string text = FormatDoctorText(r);
  EXPECT_NE(text.find("hardware: not available"), std::string::npos);
  EXPECT_NE(text.find("cpuledger will use: task_clock"), std::string::npos);

  nlohmann::json j = DoctorJson(r);
  EXPECT_EQ(j["selected"], "task_clock");
  EXPECT_EQ(j["sources"][0]["available"], false);
  EXPECT_EQ(j["perf_event_paranoid"], 2);
}

TEST(Doctor, WithoutPmuShowsTheTimedChoiceOfTheCheaperCpuNsSource) {
  counters::testing::FakeKernel k;
  k.hardware_errno = ENOENT;
  k.task_clock_read_ns = 250;  // the figures measured on the development VM
  k.thread_clock_read_ns = 200;
  DoctorReport r = RunDoctor(counters::SourceRequest::kAuto, k);
  EXPECT_EQ(r.selected, "thread_cputime");
  EXPECT_DOUBLE_EQ(r.sources[1].read_ns, 250);
  EXPECT_DOUBLE_EQ(r.sources[2].read_ns, 200);
  ASSERT_EQ(r.choice.size(), 2u);
  EXPECT_EQ(r.choice[0].source, counters::Source::kTaskClock);
  EXPECT_FALSE(r.choice[0].chosen);
  EXPECT_TRUE(r.choice[1].chosen);

  std::string text = FormatDoctorText(r);
  EXPECT_NE(text.find("cpuledger will use: thread_cputime"), std::string::npos);
  EXPECT_NE(text.find("task_clock: 250 ns\n"), std::string::npos) << text;
  EXPECT_NE(text.find("thread_cputime: 200 ns  <- chosen"), std::string::npos) << text;

  nlohmann::json j = DoctorJson(r);
  EXPECT_EQ(j["choice"][1]["source"], "thread_cputime");
  EXPECT_EQ(j["choice"][1]["chosen"], true);
  EXPECT_EQ(j["choice"][0]["read_ns"], 250.0);
}

TEST(Doctor, PmuWithRdpmcReportsTheFastPath) {
  counters::testing::FakeKernel k;
  DoctorReport r = RunDoctor(counters::SourceRequest::kAuto, k);
  EXPECT_EQ(r.selected, "hardware");
  EXPECT_EQ(r.sources[0].method, "rdpmc");
  EXPECT_TRUE(r.choice.size() == 1u && r.choice[0].chosen);  // nothing timed against it
  EXPECT_EQ(FormatDoctorText(r).find("chosen as the cheapest"), std::string::npos);
}

TEST(Doctor, ForcedUnavailableSourceIsAnError) {
  counters::testing::FakeKernel k;
  k.hardware_errno = ENOENT;
  DoctorReport r = RunDoctor(counters::SourceRequest::kHardware, k);
  EXPECT_TRUE(r.selected.empty());
  EXPECT_NE(r.selected_error.find("no PMU"), std::string::npos);
  EXPECT_TRUE(DoctorJson(r)["selected"].is_null());
}

}  // namespace
}  // namespace cpuledger::cli
