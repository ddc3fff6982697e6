// --moe-layer-freq: an integer N (layers 0, N, 2N, ... are MoE) or a Python
// list expression with one 0/1 per layer, such as the zoo's ([0]+[1]*26).
#include "moebench/config/moe_layer_freq.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::config {
namespace {

using ::testing::HasSubstr;

std::vector<bool> pattern(std::initializer_list<int> bits) {
  std::vector<bool> out;
  for (int b : bits) out.push_back(b == 1);
  return out;
}

std::string error_of(std::string_view text, int layers) {
  try {
    parse_moe_layer_freq(text, layers);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MoeLayerFreq, IntegerOneIsEveryLayer) {
  EXPECT_EQ(parse_moe_layer_freq("1", 4), pattern({1, 1, 1, 1}));
}

TEST(MoeLayerFreq, IntegerNCountsFromLayerZero) {
  EXPECT_EQ(parse_moe_layer_freq("2", 5), pattern({1, 0, 1, 0, 1}));
  EXPECT_EQ(parse_moe_layer_freq("3", 7), pattern({1, 0, 0, 1, 0, 0, 1}));
}

TEST(MoeLayerFreq, IntegerZeroRejected) {
  EXPECT_THAT(error_of("0", 4), HasSubstr("--moe-layer-freq 0 must be at least 1"));
}

TEST(MoeLayerFreq, DeepSeekV2LitePattern) {
  std::vector<bool> is_moe = parse_moe_layer_freq("([0]+[1]*26)", 27);
  ASSERT_EQ(is_moe.size(), 27u);
  EXPECT_FALSE(is_moe[0]);
  for (int i = 1; i < 27; ++i) EXPECT_TRUE(is_moe[i]) << "layer " << i;
}

TEST(MoeLayerFreq, PlainList) {
  EXPECT_EQ(parse_moe_layer_freq("[0,1,1]", 3), pattern({0, 1, 1}));
  EXPECT_EQ(parse_moe_layer_freq("[1, 0, 1]", 3), pattern({1, 0, 1}));
}

TEST(MoeLayerFreq, DeepSeekV3Pattern) {
  std::vector<bool> is_moe = parse_moe_layer_freq("([0]*3+[1]*58)", 61);
  ASSERT_EQ(is_moe.size(), 61u);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(is_moe[i]) << "layer " << i;
  for (int i = 3; i < 61; ++i) EXPECT_TRUE(is_moe[i]) << "layer " << i;
  // White space anywhere is fine.
  EXPECT_EQ(parse_moe_layer_freq(" ( [0] * 3 + [1] * 58 ) ", 61), is_moe);
}

TEST(MoeLayerFreq, RepeatedListAndNesting) {
  EXPECT_EQ(parse_moe_layer_freq("[1,0]*2", 4), pattern({1, 0, 1, 0}));
  EXPECT_EQ(parse_moe_layer_freq("([0]+([1]*2)*2)", 5), pattern({0, 1, 1, 1, 1}));
  EXPECT_EQ(parse_moe_layer_freq("[0]*0+[1]", 1), pattern({1}));
}

TEST(MoeLayerFreq, WrongLengthNamesBothCounts) {
  const std::string message = error_of("([0]+[1]*26)", 28);
  EXPECT_THAT(message, HasSubstr("'([0]+[1]*26)' has 27 entries but --num-layers is 28"));
  EXPECT_THAT(error_of("[0,1,1]", 2), HasSubstr("has 3 entries but --num-layers is 2"));
}

TEST(MoeLayerFreq, EntriesMustBeZeroOrOne) {
  EXPECT_THAT(error_of("[0,2]", 2), HasSubstr("entries must be 0 or 1, got 2"));
}

TEST(MoeLayerFreq, BadSyntax) {
  for (const char* bad : {"([0]+[1]*26", "[0,1,", "[0;1]", "abc", "", "[]", "[0]*", "[0]+", "(0)", "-1",
                          "[0] [1]", "([0]+[1]*26))"}) {
    const std::string message = error_of(bad, 27);
    EXPECT_THAT(message, HasSubstr("--moe-layer-freq '" + std::string(bad) + "'")) << bad;
    EXPECT_THAT(message, HasSubstr("write an integer or a list such as ([0]+[1]*26)")) << bad;
  }
  EXPECT_THAT(error_of("([0]+[1]*26", 27), HasSubstr("expected ')' at position 11"));
  EXPECT_THAT(error_of("[0;1]", 2), HasSubstr("expected ']' at position 2"));
  EXPECT_THAT(error_of("[0] [1]", 2), HasSubstr("unexpected '['"));
}

}  // namespace
}  // namespace moebench::config
