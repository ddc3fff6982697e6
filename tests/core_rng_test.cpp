// Philox-4x32-10 against the published known-answer vectors, name hashing,
// determinism, shard fills equal to the full fill, and distribution moments.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "moebench/core/rng.h"

namespace moebench {
namespace {

TEST(Philox, KnownAnswerVectors) {
  // Random123 kat_vectors, philox4x32_10.
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(
      philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
      (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(
      philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
      (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Fnv1a, KnownHashes) {
  EXPECT_EQ(fnv1a_64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a_64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a_64("foobar"), 0x85944171f73967e8ull);
}

TEST(CounterRng, StreamsFollowSeedAndName) {
  const CounterRng rng(1234, "decoder.layers.0.mlp.linear_fc1.weight");
  EXPECT_EQ(rng.stream_id(), fnv1a_64("decoder.layers.0.mlp.linear_fc1.weight"));
  const CounterRng same(1234, "decoder.layers.0.mlp.linear_fc1.weight");
  const CounterRng other_name(1234, "decoder.layers.1.mlp.linear_fc1.weight");
  const CounterRng other_seed(1235, "decoder.layers.0.mlp.linear_fc1.weight");
  int differ_by_name = 0;
  int differ_by_seed = 0;
  for (uint64_t i = 0; i < 64; ++i) {
    EXPECT_EQ(rng.bits(i), same.bits(i));
    EXPECT_EQ(rng.normal(i), same.normal(i));
    differ_by_name += rng.bits(i) != other_name.bits(i);
    differ_by_seed += rng.bits(i) != other_seed.bits(i);
  }
  EXPECT_EQ(differ_by_name, 64);
  EXPECT_EQ(differ_by_seed, 64);
  // Element i is word i % 4 of block i / 4 (seed in the key, stream in the counter).
  const PhiloxCounter block =
      philox4x32_10({5, 0, uint32_t(rng.stream_id()), uint32_t(rng.stream_id() >> 32)}, {1234, 0});
  EXPECT_EQ(rng.bits(22), block[2]);
  // Indices past 2^32 blocks use the counter's high word.
  EXPECT_NE(rng.bits(4), rng.bits(4 + (uint64_t{1} << 34)));
}

TEST(CounterRng, UniformAndNormalRanges) {
  const CounterRng rng(7, "ranges");
  for (uint64_t i = 0; i < 100000; ++i) {
    const float u = rng.uniform(i);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    ASSERT_EQ(u * 0x1p24f, std::floor(u * 0x1p24f));
    const float z = rng.normal(i);
    ASSERT_TRUE(std::isfinite(z));
    ASSERT_LT(std::fabs(z), 5.8f);
  }
}

TEST(CounterRng, MomentsLookRight) {
  const CounterRng rng(42, "moments");
  constexpr int n = 1 << 18;
  double u_sum = 0, u_square = 0;
  double z_sum = 0, z_square = 0, z_cube = 0, z_fourth = 0;
  int beyond_two_sigma = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const double u = rng.uniform(i);
    u_sum += u;
    u_square += u * u;
    const double z = rng.normal(i);
    z_sum += z;
    z_square += z * z;
    z_cube += z * z * z;
    z_fourth += z * z * z * z;
    beyond_two_sigma += std::fabs(z) > 2.0;
  }
  // Tolerances are about 5 standard errors of each estimate at n = 2^18.
  EXPECT_NEAR(u_sum / n, 0.5, 0.003);
  EXPECT_NEAR(u_square / n - 0.25, 1.0 / 12, 0.002);
  EXPECT_NEAR(z_sum / n, 0.0, 0.01);
  EXPECT_NEAR(z_square / n, 1.0, 0.014);
  EXPECT_NEAR(z_cube / n, 0.0, 0.04);
  EXPECT_NEAR(z_fourth / n, 3.0, 0.1);
  EXPECT_NEAR(double(beyond_two_sigma) / n, 0.0455, 0.003);
}

TEST(Fill, DeterministicAndScaled) {
  const CounterRng rng(3, "w");
  Tensor a = Tensor::empty({16, 8}, DType::F32);
  Tensor b = Tensor::empty({16, 8}, DType::F32);
  fill_normal(a, rng, 1.0f, 0.02f);
  fill_normal(b, rng, 1.0f, 0.02f);
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_EQ(a.data<float>()[i], b.data<float>()[i]);
    ASSERT_EQ(a.data<float>()[i], float(1.0 + 0.02 * double(rng.normal(uint64_t(i)))));
  }
  fill_uniform(a, rng, -2.0f, 2.0f);
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_EQ(a.data<float>()[i], -2.0f + 4.0f * rng.uniform(uint64_t(i)));
  }
}

TEST(Fill, ShardsMatchTheFullFill) {
  const CounterRng rng(2024, "decoder.layers.3.self_attention.linear_qkv.weight");
  Tensor full = Tensor::empty({6, 10}, DType::F32);
  fill_normal(full, rng, 0.0f, 0.02f);
  const auto expect_same = [&](const Tensor& shard, const Tensor& region) {
    const Tensor expected = region.contiguous();
    for (int64_t i = 0; i < shard.numel(); ++i) {
      ASSERT_EQ(shard.data<float>()[i], expected.data<float>()[i]) << "element " << i;
    }
  };

  // Rows [2, 5): a column-parallel (TP) shard.
  Tensor rows = Tensor::empty({3, 10}, DType::F32);
  fill_normal(rows, rng, 0.0f, 0.02f, {{6, 10}, {2, 0}});
  expect_same(rows, full.slice(0, 2, 5));

  // Columns [3, 7): a row-parallel shard, not contiguous in the global tensor.
  Tensor columns = Tensor::empty({6, 4}, DType::F32);
  fill_normal(columns, rng, 0.0f, 0.02f, {{6, 10}, {0, 3}});
  expect_same(columns, full.slice(1, 3, 7));

  // A strided destination (a transposed view) still receives global values.
  Tensor transposed = Tensor::empty({4, 6}, DType::F32);
  Tensor view = transposed.transpose(0, 1);
  fill_normal(view, rng, 0.0f, 0.02f, {{6, 10}, {0, 3}});
  expect_same(view.contiguous(), full.slice(1, 3, 7));

  // An expert's slice of a stacked [experts, rows, cols] tensor.
  Tensor stacked = Tensor::empty({4, 3, 5}, DType::F32);
  fill_uniform(stacked, rng, 0.0f, 1.0f);
  Tensor expert = Tensor::empty({1, 3, 5}, DType::F32);
  fill_uniform(expert, rng, 0.0f, 1.0f, {{4, 3, 5}, {2, 0, 0}});
  expect_same(expert, stacked.slice(0, 2, 3));
}

TEST(Fill, NarrowDTypesRoundTheFloatValues) {
  const CounterRng rng(9, "embedding.word_embeddings.weight");
  Tensor f32 = Tensor::empty({100}, DType::F32);
  Tensor bf16 = Tensor::empty({100}, DType::BF16);
  fill_normal(f32, rng, 0.0f, 0.02f);
  fill_normal(bf16, rng, 0.0f, 0.02f);
  for (int64_t i = 0; i < 100; ++i) {
    ASSERT_EQ(bf16.data<bfloat16>()[i].bits, bfloat16(f32.data<float>()[i]).bits);
  }
}

TEST(Fill, RejectsWhatItCannotFill) {
  const CounterRng rng(1, "x");
  Tensor ints = Tensor::empty({4}, DType::I32);
  EXPECT_THROW(fill_normal(ints, rng, 0.0f, 1.0f), Error);
  Tensor shard = Tensor::empty({3, 4}, DType::F32);
  try {
    fill_uniform(shard, rng, 0.0f, 1.0f, {{6, 4}, {4, 0}});
    FAIL() << "a shard past the global end was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("origin [4, 0]"), std::string::npos) << message;
    EXPECT_NE(message.find("global shape [6, 4]"), std::string::npos) << message;
  }
  EXPECT_THROW(fill_uniform(shard, rng, 0.0f, 1.0f, {{6}, {0}}), Error);
}

}  // namespace
}  // namespace moebench
