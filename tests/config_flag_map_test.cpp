// FlagMap: Megatron-style argument parsing by each known flag's kind, ordered
// storage, overlaying, YAML-scalar setting and typed reads; the flag registry's
// rejection of unknown names with the nearest known one suggested.
#include "moebench/config/flag_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "moebench/config/flag_registry.h"
#include "moebench/core/error.h"

namespace moebench::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Strings = std::vector<std::string>;

Strings names_of(const FlagMap& flags) {
  Strings names;
  for (const auto& entry : flags.entries()) names.push_back(entry.name);
  return names;
}

// The Error's message, or "" when `f` does not throw an Error.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(FlagMapParse, BoolIntAndListFlagsInOrder) {
  FlagMap flags = FlagMap::parse_arguments({"--num-layers", "4", "--swiglu", "--data-path", "0.3", "/d/a", "0.7",
                                            "/d/b", "--hidden-size", "64", "--bf16"});
  EXPECT_THAT(names_of(flags),
              ElementsAre("--num-layers", "--swiglu", "--data-path", "--hidden-size", "--bf16"));
  EXPECT_EQ(flags.get_int("--num-layers", 0), 4);
  EXPECT_EQ(flags.get_int("--hidden-size", 0), 64);
  EXPECT_TRUE(flags.get_bool("--swiglu"));
  EXPECT_TRUE(flags.entries()[1].values.empty());
  EXPECT_THAT(flags.get_strings("--data-path"), ElementsAre("0.3", "/d/a", "0.7", "/d/b"));
  EXPECT_FALSE(flags.get_bool("--qk-layernorm"));
}

TEST(FlagMapParse, ValueThatLooksNegativeIsAValue) {
  // Only "--x" tokens are flags; a single dash is a value.
  FlagMap flags = FlagMap::parse_arguments({"--rotary-base", "-1", "--seed", "7"});
  EXPECT_EQ(flags.get_float("--rotary-base", 0), -1.0);
  EXPECT_EQ(flags.get_int("--seed", 0), 7);
}

TEST(FlagMapParse, RepeatedFlagKeepsTheLastValueInItsFirstPlace) {
  FlagMap flags = FlagMap::parse_arguments({"--seed", "1", "--lr", "0.1", "--seed", "2"});
  EXPECT_THAT(names_of(flags), ElementsAre("--seed", "--lr"));
  EXPECT_EQ(flags.get_int("--seed", 0), 2);
}

TEST(FlagMapParse, RoundTripsThroughToArguments) {
  const Strings tokens = {"--tensor-model-parallel-size", "2", "--sequence-parallel", "--recompute-modules",
                          "moe_act", "layernorm", "--seq-length", "4096"};
  EXPECT_EQ(FlagMap::parse_arguments(tokens).to_arguments(), tokens);
}

TEST(FlagMapParse, Errors) {
  EXPECT_THAT(error_of([] { FlagMap::parse_arguments({"--num-layers", "--swiglu"}); }),
              HasSubstr("flag --num-layers expects a value"));
  EXPECT_THAT(error_of([] { FlagMap::parse_arguments({"--swiglu", "--num-layers"}); }),
              HasSubstr("flag --num-layers expects a value"));
  EXPECT_THAT(error_of([] { FlagMap::parse_arguments({"--data-path", "--swiglu"}); }),
              HasSubstr("flag --data-path expects one or more values"));
  EXPECT_THAT(error_of([] { FlagMap::parse_arguments({"4"}); }), HasSubstr("unexpected argument '4'"));
  // A bool flag takes no value, so what follows it must be a flag.
  EXPECT_THAT(error_of([] { FlagMap::parse_arguments({"--swiglu", "true"}); }),
              HasSubstr("unexpected argument 'true'"));
  EXPECT_THAT(error_of([] { FlagMap::parse_arguments({"--num-layer", "2"}); }),
              HasSubstr("did you mean '--num-layers'"));
}

TEST(FlagMapMerge, ReplacesInPlaceAndAppends) {
  FlagMap base = FlagMap::parse_arguments({"--num-layers", "4", "--hidden-size", "64", "--swiglu"});
  FlagMap top = FlagMap::parse_arguments({"--seed", "3", "--hidden-size", "128"});
  base.merge(top);
  EXPECT_THAT(names_of(base), ElementsAre("--num-layers", "--hidden-size", "--swiglu", "--seed"));
  EXPECT_EQ(base.get_int("--hidden-size", 0), 128);
  EXPECT_EQ(base.get_int("--num-layers", 0), 4);
  EXPECT_EQ(base.get_int("--seed", 0), 3);
  // The overlay itself is untouched.
  EXPECT_THAT(names_of(top), ElementsAre("--seed", "--hidden-size"));
}

TEST(FlagMapMerge, ListReplacedWhole) {
  FlagMap base = FlagMap::parse_arguments({"--data-path", "0.5", "/a", "0.5", "/b"});
  base.merge(FlagMap::parse_arguments({"--data-path", "/c"}));
  EXPECT_THAT(base.get_strings("--data-path"), ElementsAre("/c"));
}

TEST(FlagMapSetFromText, BoolFlags) {
  FlagMap flags;
  flags.set_from_text("--swiglu", "true");
  EXPECT_TRUE(flags.has("--swiglu"));
  flags.set_from_text("--swiglu", "false");
  EXPECT_FALSE(flags.has("--swiglu"));
  flags.set_from_text("--swiglu", "1");
  EXPECT_TRUE(flags.has("--swiglu"));
  flags.set_from_text("--swiglu", "");
  EXPECT_FALSE(flags.has("--swiglu"));
  flags.set_from_text("--bf16", "false");
  EXPECT_TRUE(flags.entries().empty());
  EXPECT_THAT(error_of([&] { flags.set_from_text("--swiglu", "yes"); }),
              HasSubstr("flag --swiglu is a switch: give true or false, not 'yes'"));
}

TEST(FlagMapSetFromText, ValuedFlags) {
  FlagMap flags;
  flags.set_from_text("--num-layers", "27");
  flags.set_from_text("--split", "99,1,0");
  flags.set_from_text("--data-path", "  0.7 /data/a\t0.3   /data/b ");
  EXPECT_THAT(names_of(flags), ElementsAre("--num-layers", "--split", "--data-path"));
  EXPECT_EQ(flags.get_int("--num-layers", 0), 27);
  EXPECT_EQ(flags.get_string("--split", ""), "99,1,0");
  EXPECT_THAT(flags.get_strings("--data-path"), ElementsAre("0.7", "/data/a", "0.3", "/data/b"));
  // A string flag keeps its spaces as one value.
  flags.set_from_text("--wandb-exp-name", "a b");
  EXPECT_THAT(flags.get_strings("--wandb-exp-name"), ElementsAre("a b"));
  // Empty text removes the flag.
  flags.set_from_text("--num-layers", "");
  EXPECT_FALSE(flags.has("--num-layers"));
  flags.set_from_text("--data-path", "");
  EXPECT_THAT(names_of(flags), ElementsAre("--split", "--wandb-exp-name"));
}

TEST(FlagMapUnknown, SuggestsNearestKnownFlag) {
  FlagMap flags;
  EXPECT_THAT(error_of([&] { flags.set_from_text("--num-layer", "2"); }),
              HasSubstr("unknown flag '--num-layer'; did you mean '--num-layers'?"));
  EXPECT_THAT(error_of([&] { flags.set("--hiden-size", {"8"}); }), HasSubstr("'--hidden-size'"));
  EXPECT_THAT(error_of([&] { flags.set_bool("--swiglue", true); }), HasSubstr("'--swiglu'"));
  EXPECT_TRUE(flags.entries().empty());
  EXPECT_EQ(nearest_flag("--moe-router-top-k"), "--moe-router-topk");
  EXPECT_EQ(find_flag("--num-layer"), nullptr);
  ASSERT_NE(find_flag("--num-layers"), nullptr);
  EXPECT_EQ(find_flag("--num-layers")->kind, FlagKind::Int);
  EXPECT_EQ(require_flag("--data-path").kind, FlagKind::Strings);
}

TEST(FlagMapUnknown, RegistryNamesAreUniqueAndDashed) {
  std::set<std::string_view> seen;
  for (const auto& spec : known_flags()) {
    EXPECT_TRUE(spec.name.starts_with("--")) << spec.name;
    EXPECT_TRUE(seen.insert(spec.name).second) << "duplicate " << spec.name;
  }
  EXPECT_GT(seen.size(), 100u);
}

TEST(FlagMapGetters, FallbacksWhenMissing) {
  FlagMap flags;
  EXPECT_EQ(flags.get_int("--num-layers", 12), 12);
  EXPECT_EQ(flags.find_int("--num-layers"), std::nullopt);
  EXPECT_EQ(flags.get_float("--lr", 0.5), 0.5);
  EXPECT_EQ(flags.get_string("--optimizer", "adam"), "adam");
  EXPECT_TRUE(flags.get_strings("--data-path").empty());
  EXPECT_FALSE(flags.get_bool("--swiglu"));
}

TEST(FlagMapGetters, TypedReads) {
  FlagMap flags = FlagMap::parse_arguments({"--num-layers", "61", "--lr", "1.2e-5", "--optimizer", "adam"});
  EXPECT_EQ(flags.get_int("--num-layers", 0), 61);
  EXPECT_EQ(flags.find_int("--num-layers"), 61);
  EXPECT_DOUBLE_EQ(flags.get_float("--lr", 0), 1.2e-5);
  EXPECT_EQ(flags.get_string("--optimizer", ""), "adam");
}

TEST(FlagMapGetters, MalformedValuesNameFlagAndValue) {
  FlagMap flags = FlagMap::parse_arguments(
      {"--num-layers", "4x", "--seed", "1.5", "--lr", "fast", "--clip-grad", "1.0abc", "--data-path", "a", "b",
       "--swiglu"});
  EXPECT_THAT(error_of([&] { flags.get_int("--num-layers", 0); }),
              HasSubstr("flag --num-layers expects an integer, got '4x'"));
  EXPECT_THAT(error_of([&] { flags.find_int("--seed"); }), HasSubstr("flag --seed expects an integer, got '1.5'"));
  EXPECT_THAT(error_of([&] { flags.get_float("--lr", 0); }), HasSubstr("flag --lr expects a number, got 'fast'"));
  EXPECT_THAT(error_of([&] { flags.get_float("--clip-grad", 0); }), HasSubstr("got '1.0abc'"));
  EXPECT_THAT(error_of([&] { flags.get_string("--data-path", ""); }),
              HasSubstr("flag --data-path expects exactly one value, got 2"));
  EXPECT_THAT(error_of([&] { flags.get_int("--swiglu", 0); }), HasSubstr("expects exactly one value, got 0"));
}

TEST(FlagMapEdit, EraseAndSetBool) {
  FlagMap flags = FlagMap::parse_arguments({"--num-layers", "4", "--swiglu", "--seed", "1"});
  flags.erase("--swiglu");
  flags.erase("--bf16");  // absent: nothing happens
  EXPECT_THAT(names_of(flags), ElementsAre("--num-layers", "--seed"));
  flags.set_bool("--bf16", true);
  flags.set_bool("--bf16", true);
  EXPECT_THAT(names_of(flags), ElementsAre("--num-layers", "--seed", "--bf16"));
  flags.set_bool("--num-layers", false);
  EXPECT_THAT(names_of(flags), ElementsAre("--seed", "--bf16"));
  EXPECT_EQ(flags.to_arguments(), (Strings{"--seed", "1", "--bf16"}));
}

}  // namespace
}  // namespace moebench::config

namespace moebench::config {
namespace {

TEST(FlagMapMerge, AnEmptyValueUnsetsTheFlag) {
  FlagMap base = FlagMap::parse_arguments({"--save", "/ckpt", "--num-layers", "2"});
  base.merge(FlagMap::parse_arguments({"--save", ""}));
  EXPECT_FALSE(base.has("--save"));
  EXPECT_EQ(base.get_int("--num-layers", 0), 2);
}

}  // namespace
}  // namespace moebench::config
