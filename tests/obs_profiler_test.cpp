#include "moebench/obs/profiler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace moebench::obs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ProfilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moebench_profiler_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  ProfilerOptions window(int64_t first, int64_t last) const {
    ProfilerOptions options;
    options.enabled = true;
    options.first_iteration = first;
    options.last_iteration = last;
    options.trace = dir_ / "trace.json";
    options.rank = 3;
    return options;
  }

  // One iteration as the model opens ranges: two layers, each with a module inside.
  static void run_iteration(Profiler& profiler, int64_t iteration) {
    profiler.begin_iteration(iteration);
    for (int layer = 0; layer < 2; ++layer) {
      const ProfileRange range("layer " + std::to_string(layer) + " forward");
      const ProfileRange inner("attention forward");
    }
    profiler.end_iteration(iteration);
  }

  static json read_trace(const fs::path& path) {
    std::ifstream in(path);
    return json::parse(in);
  }

  fs::path dir_;
};

TEST_F(ProfilerTest, RecordsOnlyTheWindowsIterations) {
  Profiler profiler(window(2, 3));
  for (int64_t iteration = 1; iteration <= 4; ++iteration) run_iteration(profiler, iteration);
  ASSERT_EQ(profiler.ranges().size(), 8u);  // 2 iterations x 2 layers x 2 ranges
  for (const ProfiledRange& range : profiler.ranges()) {
    EXPECT_TRUE(range.iteration == 2 || range.iteration == 3) << range.iteration;
    EXPECT_GE(range.start_us, 0);
    EXPECT_GE(range.duration_us, 0);
  }
  EXPECT_EQ(Profiler::active(), nullptr);
}

TEST_F(ProfilerTest, InnerRangesNestInsideTheirLayer) {
  Profiler profiler(window(1, 1));
  run_iteration(profiler, 1);
  const auto& ranges = profiler.ranges();
  ASSERT_EQ(ranges.size(), 4u);
  for (size_t i = 0; i < ranges.size(); i += 2) {
    const ProfiledRange& layer = ranges[i];
    const ProfiledRange& inner = ranges[i + 1];
    EXPECT_EQ(layer.name, "layer " + std::to_string(i / 2) + " forward");
    EXPECT_EQ(layer.depth, 0);
    EXPECT_EQ(inner.name, "attention forward");
    EXPECT_EQ(inner.depth, 1);
    EXPECT_LE(layer.start_us, inner.start_us);
    EXPECT_LE(inner.start_us + inner.duration_us, layer.start_us + layer.duration_us);
  }
  EXPECT_LE(ranges[0].start_us + ranges[0].duration_us, ranges[2].start_us);
}

TEST_F(ProfilerTest, WritesAChromeTraceAtTheWindowsEnd) {
  Profiler profiler(window(2, 3));
  run_iteration(profiler, 1);
  run_iteration(profiler, 2);
  EXPECT_FALSE(fs::exists(dir_ / "trace.json"));
  run_iteration(profiler, 3);
  ASSERT_TRUE(fs::exists(dir_ / "trace.json"));

  const json trace = read_trace(dir_ / "trace.json");
  json events = json::array();
  for (const json& event : trace.at("traceEvents")) {
    if (event.at("ph") == "M") {
      EXPECT_EQ(event.at("args").at("name"), "host");  // a CPU model: one timeline
      continue;
    }
    events.push_back(event);
  }
  ASSERT_EQ(events.size(), 8u);
  for (const json& event : events) {
    EXPECT_EQ(event.at("ph"), "X");
    EXPECT_EQ(event.at("pid"), 3);
    EXPECT_EQ(event.at("tid"), 0);
    EXPECT_GE(event.at("ts").get<double>(), 0);
    EXPECT_GE(event.at("dur").get<double>(), 0);
    EXPECT_TRUE(event.at("args").at("iteration") == 2 || event.at("args").at("iteration") == 3);
  }
  EXPECT_EQ(events[0].at("name"), "layer 0 forward");
  EXPECT_EQ(events[1].at("name"), "attention forward");
}

TEST_F(ProfilerTest, FinishWritesAWindowCutShort) {
  Profiler profiler(window(2, 10));
  run_iteration(profiler, 2);
  profiler.finish();
  ASSERT_TRUE(fs::exists(dir_ / "trace.json"));
  EXPECT_EQ(read_trace(dir_ / "trace.json").at("traceEvents").size(), 5u);  // 4 ranges, 1 thread name
  EXPECT_EQ(Profiler::active(), nullptr);
}

TEST(ChromeTrace, AGpuTraceHasTheHostsIssueTimesOnASecondThread) {
  ProfiledRange range{"moe forward", 4, 0, 120.0, 30.0, 20.0, 5.0};
  const json trace = json::parse(chrome_trace_json({range}, 1, /*gpu=*/true));
  const json& events = trace.at("traceEvents");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].at("tid"), 0);
  EXPECT_EQ(events[0].at("ts"), 120.0);
  EXPECT_EQ(events[0].at("dur"), 30.0);
  EXPECT_EQ(events[1].at("tid"), 1);
  EXPECT_EQ(events[1].at("ts"), 20.0);
  EXPECT_EQ(events[1].at("dur"), 5.0);
  EXPECT_EQ(events[2].at("args").at("name"), "gpu");
  EXPECT_EQ(events[3].at("args").at("name"), "host (issue)");
}

TEST_F(ProfilerTest, RecordsNothingWhenDisabled) {
  ProfilerOptions options = window(1, 2);
  options.enabled = false;  // --profile absent, or this rank not in --profile-ranks
  Profiler profiler(options);
  run_iteration(profiler, 1);
  run_iteration(profiler, 2);
  profiler.finish();
  EXPECT_TRUE(profiler.ranges().empty());
  EXPECT_FALSE(fs::exists(dir_ / "trace.json"));
}

}  // namespace
}  // namespace moebench::obs
