#include "moebench/obs/iteration_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "moebench/obs/tensorboard_reader.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

IterationRecord record(int64_t iteration, double lm_loss) {
  IterationRecord r;
  r.iteration = iteration;
  r.train_iters = 50;
  r.consumed_samples = iteration * 16;
  r.global_batch_size = 16;
  r.elapsed_ms = 10.0 * double(iteration);
  r.tflops_per_gpu = 0.25;
  r.tokens_per_second = 1000.0;
  r.learning_rate = 1e-3;
  r.lm_loss = lm_loss;
  r.load_balancing_loss = 0.01;
  r.grad_norm = 1.5;
  r.peak_rss_bytes = 3 * 1024 * 1024;
  r.timers_ms = {{"forward-backward", 8.0}, {"optimizer", 2.0}};
  return r;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class IterationLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moebench_iteration_log_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(IterationLogTest, PrintsMegatronLinesAveragedOverTheInterval) {
  std::ostringstream out, progress;
  {
    IterationLog log({.log_interval = 2}, out, progress);
    log.log_iteration(record(1, 6.0));
    EXPECT_EQ(out.str(), "");  // not yet at the interval
    log.log_iteration(record(2, 5.0));
  }
  const auto printed = lines(out.str());
  ASSERT_EQ(printed.size(), 1u);
  EXPECT_THAT(printed[0],
              MatchesRegex(R"( \[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\] iteration        2/      50 \|)"
                           R"( consumed samples:           32 \| elapsed time per iteration \(ms\): 15\.0 \|)"
                           R"( throughput per GPU \(TFLOP/s/GPU\): 0\.2 \| tokens per second: 1000\.0 \|)"
                           R"( learning rate: 1\.000000E-03 \| global batch size:    16 \| lm loss: 5\.500000E\+00 \|)"
                           R"( load_balancing_loss: 1\.000000E-02 \| grad norm: 1\.500 \|)"
                           R"( number of skipped iterations:   0 \| number of nan iterations:   0 \|)"
                           R"( mem \(peak RSS, MB\): 3\.0 \|)"));
  EXPECT_EQ(progress.str(), "");  // no bar unless asked for
}

TEST_F(IterationLogTest, LeavesSkippedLossesOutOfTheAverageAndCountsThem) {
  std::ostringstream out, progress;
  IterationLog log({.log_interval = 3}, out, progress);
  IterationRecord nan = record(2, NAN);
  nan.skipped = nan.nan_loss = true;
  nan.grad_norm = NAN;
  log.log_iteration(record(1, 4.0));
  log.log_iteration(nan);
  IterationRecord last = record(3, 2.0);
  last.load_balancing_loss = 0;
  log.log_iteration(last);
  EXPECT_THAT(out.str(), HasSubstr(" lm loss: 3.000000E+00 |"));
  EXPECT_THAT(out.str(), HasSubstr(" number of skipped iterations:   1 | number of nan iterations:   1 |"));
  // The next interval starts from zero.
  log.log_iteration(record(4, 1.0));
  log.log_iteration(record(5, 1.0));
  log.log_iteration(record(6, 1.0));
  EXPECT_THAT(lines(out.str()).back(), HasSubstr(" number of skipped iterations:   0 |"));
}

TEST_F(IterationLogTest, WritesMetricsAndTensorBoardScalars) {
  std::ostringstream out, progress;
  {
    IterationLog log({.log_interval = 1, .metrics_file = dir_ / "metrics.jsonl", .tensorboard_dir = dir_ / "tb"}, out,
                     progress);
    log.log_iteration(record(1, 6.0));
    log.log_validation({1, 4.0});
  }
  std::ifstream in(dir_ / "metrics.jsonl");
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  const auto train = nlohmann::json::parse(first);
  EXPECT_EQ(train.at("type"), "train");
  EXPECT_EQ(train.at("iteration"), 1);
  EXPECT_EQ(train.at("consumed_samples"), 16);
  EXPECT_EQ(train.at("lm_loss"), 6.0);
  EXPECT_EQ(train.at("learning_rate"), 1e-3);
  EXPECT_EQ(train.at("timers_ms").at("optimizer"), 2.0);
  const auto validation = nlohmann::json::parse(second);
  EXPECT_EQ(validation.at("type"), "validation");
  EXPECT_EQ(validation.at("lm_loss"), 4.0);

  ASSERT_EQ(std::distance(fs::directory_iterator(dir_ / "tb"), fs::directory_iterator{}), 1);
  const auto scalars = read_tensorboard_scalars(fs::directory_iterator(dir_ / "tb")->path());
  std::map<std::string, float> by_tag;
  for (const auto& s : scalars) by_tag[s.tag] = s.value;
  EXPECT_EQ(by_tag.at("lm loss"), 6.0f);
  EXPECT_EQ(by_tag.at("learning-rate"), 1e-3f);
  EXPECT_EQ(by_tag.at("grad-norm"), 1.5f);
  EXPECT_EQ(by_tag.at("throughput"), 0.25f);
  EXPECT_EQ(by_tag.at("tokens-per-second"), 1000.0f);
  EXPECT_EQ(by_tag.at("optimizer-time"), 0.002f);
  EXPECT_EQ(by_tag.at("mem-peak-rss-bytes"), float(3 * 1024 * 1024));
  EXPECT_EQ(by_tag.at("lm loss validation"), 4.0f);
  EXPECT_NEAR(by_tag.at("lm loss validation ppl"), std::exp(4.0), 1e-3);

  // Megatron's validation block: the line framed by dashes of its length.
  const auto printed = lines(out.str());
  ASSERT_EQ(printed.size(), 4u);
  EXPECT_EQ(printed[2], " validation loss at iteration 1 | lm loss value: 4.000000E+00 | lm loss PPL: 5.459815E+01 | ");
  EXPECT_EQ(printed[1], std::string(printed[2].size() + 1, '-'));
  EXPECT_EQ(printed[3], printed[1]);
}

TEST_F(IterationLogTest, DrawsAndClearsTheProgressBar) {
  std::ostringstream out, progress;
  {
    IterationLog log({.log_interval = 100, .progress_bar = true}, out, progress);
    log.log_iteration(record(10, 6.0));
    EXPECT_THAT(progress.str(), HasSubstr("] 10/50  20% | lm loss 6.0000 | eta"));
    EXPECT_THAT(progress.str(), Not(HasSubstr("\033[K")));
  }
  EXPECT_THAT(progress.str(), HasSubstr("\r\033[K"));  // erased when the log goes away
}

}  // namespace
}  // namespace moebench
