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

TEST(Doctor, PmuWithRdpmcReportsTheFastPath) {
  counters::testing::FakeKernel k;
  DoctorReport r = RunDoctor(counters::SourceRequest::kAuto, k);
  EXPECT_EQ(r.selected, "hardware");
  EXPECT_EQ(r.sources[0].method, "rdpmc");
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
