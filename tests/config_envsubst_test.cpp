// envsubst(): $NAME and ${NAME} replaced by the lookup's value, unset names by
// the empty string, and everything that is not a well-formed reference (a
// lone `$`, an unclosed `${`, `$1`) copied through unchanged, as GNU envsubst does.
#include "moebench/config/envsubst.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace moebench::config {
namespace {

class EnvsubstTest : public ::testing::Test {
 protected:
  std::map<std::string, std::string> vars{
      {"A", "alpha"}, {"TP", "2"}, {"_X1", "under"}, {"A_2", "a2"}, {"EMPTY", ""}, {"REF", "${A}"}};
  std::vector<std::string> asked;  // every name the substitution looked up, in order

  std::string run(std::string_view text) {
    return envsubst(text, [this](std::string_view name) -> std::optional<std::string> {
      asked.emplace_back(name);
      auto it = vars.find(std::string(name));
      if (it == vars.end()) return std::nullopt;
      return it->second;
    });
  }
};

TEST_F(EnvsubstTest, DollarName) {
  EXPECT_EQ(run("$A"), "alpha");
  EXPECT_EQ(asked, std::vector<std::string>{"A"});
}

TEST_F(EnvsubstTest, BracedName) {
  EXPECT_EQ(run("${A}"), "alpha");
  EXPECT_EQ(asked, std::vector<std::string>{"A"});
}

TEST_F(EnvsubstTest, UnsetBecomesEmpty) {
  EXPECT_EQ(run("x${NOPE}y"), "xy");
  EXPECT_EQ(run("x$NOPE"), "x");
  EXPECT_EQ(run("[${EMPTY}]"), "[]");
}

TEST_F(EnvsubstTest, TextWithoutReferencesIsUnchanged) {
  EXPECT_EQ(run(""), "");
  EXPECT_EQ(run("plain text, 99,1,0"), "plain text, 99,1,0");
  EXPECT_TRUE(asked.empty());
}

TEST_F(EnvsubstTest, AdjacentText) {
  EXPECT_EQ(run("TP${TP}PP"), "TP2PP");
  EXPECT_EQ(run("pre-$A-post"), "pre-alpha-post");
  EXPECT_EQ(run("${A}${TP}${A}"), "alpha2alpha");
  EXPECT_EQ(run("$A$TP"), "alpha2");
  // Without braces the name runs on over letters: $TPx is the variable TPx (unset).
  EXPECT_EQ(run("$TPx"), "");
  EXPECT_EQ(asked.back(), "TPx");
  // A `}` after a closed reference is ordinary text.
  EXPECT_EQ(run("${A}}"), "alpha}");
}

TEST_F(EnvsubstTest, DollarAtEnd) {
  EXPECT_EQ(run("$"), "$");
  EXPECT_EQ(run("cost $"), "cost $");
  EXPECT_EQ(run("$A$"), "alpha$");
  EXPECT_EQ(run("$$"), "$$");
}

TEST_F(EnvsubstTest, UnclosedBraceIsLiteral) {
  EXPECT_EQ(run("${"), "${");
  EXPECT_EQ(run("a${A"), "a${A");
  EXPECT_EQ(run("${A B}"), "${A B}");
  EXPECT_EQ(run("${}"), "${}");
  EXPECT_EQ(run("${A-x}"), "${A-x}");  // no default syntax
  EXPECT_TRUE(asked.empty());
  // After an unclosed one, a later well-formed reference still substitutes.
  EXPECT_EQ(run("${ then ${A}"), "${ then alpha");
}

TEST_F(EnvsubstTest, DigitDoesNotStartAName) {
  EXPECT_EQ(run("$1"), "$1");
  EXPECT_EQ(run("${1}"), "${1}");
  EXPECT_EQ(run("$1A"), "$1A");
  EXPECT_EQ(run("$-x $ y"), "$-x $ y");
  EXPECT_TRUE(asked.empty());
}

TEST_F(EnvsubstTest, UnderscoresAndDigitsInNames) {
  EXPECT_EQ(run("$_X1"), "under");
  EXPECT_EQ(run("${_X1}"), "under");
  EXPECT_EQ(run("${A_2}/x"), "a2/x");
  EXPECT_EQ(run("$A_2.txt"), "a2.txt");
  EXPECT_EQ(run("$A-2"), "alpha-2");
  EXPECT_EQ((std::vector<std::string>{"_X1", "_X1", "A_2", "A_2", "A"}), asked);
}

TEST_F(EnvsubstTest, ValuesAreNotSubstitutedTwice) {
  EXPECT_EQ(run("$REF"), "${A}");
  EXPECT_EQ(run("${REF}-$A"), "${A}-alpha");
}

}  // namespace
}  // namespace moebench::config
