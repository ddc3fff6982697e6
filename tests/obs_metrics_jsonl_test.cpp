#include "moebench/obs/metrics_jsonl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class MetricsJsonlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moebench_metrics_jsonl_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<json> read_lines(const fs::path& path) {
    std::vector<json> lines;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    return lines;
  }

  fs::path dir_;
};

TEST_F(MetricsJsonlTest, AppendsOneObjectPerLineAcrossWriters) {
  const fs::path path = dir_ / "run/metrics.jsonl";
  {
    MetricsJsonlWriter writer(path);
    writer.write({{"iteration", 1}, {"lm loss", 10.5}});
    writer.write({{"iteration", 2}, {"lm loss", 9.75}});
    // Flushed per line: readable while the writer is open.
    EXPECT_EQ(read_lines(path).size(), 2u);
  }
  MetricsJsonlWriter resumed(path);
  resumed.write({{"iteration", 3}, {"lm loss", NAN}});

  const std::vector<json> lines = read_lines(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], json({{"iteration", 1}, {"lm loss", 10.5}}));
  EXPECT_EQ(lines[1].at("lm loss"), 9.75);
  EXPECT_EQ(lines[2].at("iteration"), 3);
  EXPECT_TRUE(lines[2].at("lm loss").is_null());
}

TEST_F(MetricsJsonlTest, RejectsRecordsThatAreNotObjects) {
  MetricsJsonlWriter writer(dir_ / "metrics.jsonl");
  try {
    writer.write(json::array({1, 2}));
    FAIL() << "expected a moebench::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("a record must be a JSON object, got array [1,2]"));
  }
}

}  // namespace
}  // namespace moebench
