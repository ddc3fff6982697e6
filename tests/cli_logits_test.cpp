// `moebench logits` end to end: the binary reproduces a fixture's reference
// logits and loss from its hub checkpoint.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "moebench/ckpt/safetensors.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

double max_relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    norm = std::max(norm, std::abs(double(b[i])));
  }
  return diff / norm;
}

TEST(CliLogits, ReproducesFixtureLogitsAndLoss) {
  const fs::path fixture = fs::path(MOEBENCH_SOURCE_DIR) / "tests/fixtures/hf/tiny-qwen3-moe";
  const fs::path output = fs::temp_directory_path() / ("moebench_logits_" + std::to_string(::getpid()) + ".safetensors");
  const std::string command = std::string(MOEBENCH_BINARY) + " logits --load " + fixture.string() + " --input " +
                              (fixture / "reference.safetensors").string() + " --output " + output.string() +
                              " > /dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  const SafetensorsFile ours(output), reference(fixture / "reference.safetensors");
  const auto logits = to_float_vector(ours.tensor("logits"));
  const auto expected = to_float_vector(reference.tensor("logits"));
  ASSERT_EQ(ours.tensor("logits").shape, reference.tensor("logits").shape);
  EXPECT_LT(max_relative_error(logits, expected), 1e-4);
  EXPECT_NEAR(to_float_vector(ours.tensor("loss"))[0], to_float_vector(reference.tensor("loss"))[0], 1e-4);
  fs::remove(output);
}

TEST(CliLogits, MissingCheckpointIsAOneLineError) {
  const std::string command = std::string(MOEBENCH_BINARY) +
                              " logits --load /nonexistent --input x --output y 2> /dev/null";
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
}  // namespace moebench
