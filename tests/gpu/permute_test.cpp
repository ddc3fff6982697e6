// cuda::sort_slots_by_expert and the bf16 permute / unpermute pairs against the
// CPU twins of ops/permute.h, on fresh seeded routings (with and without
// capacity drops), small and proxy-sized; PermuteTiming.* prints microseconds
// and GB/s. The sort must match the CPU exactly; bf16 rows to ~1e-2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"
#include "moebench/ops/permute.h"

namespace moebench {
namespace {

using gpu_testing::all_close;
using gpu_testing::DeviceBuffer;

struct PermuteCase {
  std::string name;
  std::int64_t tokens = 0, experts = 0, topk = 0, hidden = 0;
  double capacity_factor = 0;  // 0: no drops
};

struct Routing {
  std::vector<std::int64_t> map;  // [tokens, topk], -1 dropped
  std::vector<float> probs;       // [tokens, topk], 0 dropped
};

// Each token picks topk distinct experts, skewed towards low ids so that
// capacity drops happen; probs are positive, as a router's.
Routing random_routing(const PermuteCase& c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> unit(0.05f, 1.0f);
  Routing routing{std::vector<std::int64_t>(c.tokens * c.topk), std::vector<float>(c.tokens * c.topk)};
  std::vector<std::int64_t> experts(c.experts);
  std::vector<float> weight(c.experts);
  for (std::int64_t t = 0; t < c.tokens; ++t) {
    std::iota(experts.begin(), experts.end(), 0);
    for (std::int64_t e = 0; e < c.experts; ++e) weight[e] = unit(rng) / float(1 + e % 3);
    std::partial_sort(experts.begin(), experts.begin() + c.topk, experts.end(),
                      [&](std::int64_t a, std::int64_t b) { return weight[a] > weight[b]; });
    for (std::int64_t i = 0; i < c.topk; ++i) {
      routing.map[t * c.topk + i] = experts[i];
      routing.probs[t * c.topk + i] = unit(rng);
    }
  }
  if (c.capacity_factor > 0) {
    const auto capacity = std::int64_t(std::ceil(double(c.tokens * c.topk) / double(c.experts) * c.capacity_factor));
    ops::cpu::drop_tokens_over_capacity(routing.map.data(), routing.probs.data(), c.tokens, c.topk, c.experts,
                                        capacity);
  }
  return routing;
}

template <typename T>
std::vector<T> first(const std::vector<T>& v, std::int64_t count) {
  return std::vector<T>(v.begin(), v.begin() + count);
}

template <typename T>
std::vector<float> as_floats(const std::vector<T>& v) {
  return std::vector<float>(v.begin(), v.end());
}

void check_permute(const PermuteCase& c) {
  SCOPED_TRACE(c.name);
  const std::int64_t n = c.tokens, k = c.topk, h = c.hidden, slots = n * k;
  std::printf("[%s] N %lld, E %lld, top-%lld, hidden %lld\n", c.name.c_str(), (long long)n, (long long)c.experts,
              (long long)k, (long long)h);
  const Routing routing = random_routing(c, 11 + n + c.experts);

  // Sort: the CPU's map exactly, its inverse, the same counts.
  std::vector<std::int64_t> row_id_map(slots), tokens_per_expert(c.experts);
  const std::int64_t rows = ops::cpu::sort_slots_by_expert(row_id_map.data(), tokens_per_expert.data(),
                                                           routing.map.data(), n, k, c.experts);
  std::printf("  %lld of %lld slots kept\n", (long long)rows, (long long)slots);
  DeviceBuffer<std::int64_t> d_map(routing.map), d_row_id_map(slots), d_row_of_slot(slots),
      d_tokens_per_expert(c.experts);
  ops::cuda::sort_slots_by_expert(d_row_id_map.get(), d_row_of_slot.get(), d_tokens_per_expert.get(), d_map.get(),
                                  n, k, c.experts, nullptr);
  const std::vector<std::int64_t> gpu_row_id_map = d_row_id_map.download();
  const std::vector<std::int64_t> row_of_slot = d_row_of_slot.download();
  EXPECT_EQ(d_tokens_per_expert.download(), tokens_per_expert);
  std::int64_t first_wrong = -1;
  for (std::int64_t r = 0; r < slots && first_wrong < 0; ++r)
    if (gpu_row_id_map[r] != (r < rows ? row_id_map[r] : -1)) first_wrong = r;
  EXPECT_EQ(first_wrong, -1) << "row_id_map differs first at row " << first_wrong << ": gpu "
                             << gpu_row_id_map[std::max<std::int64_t>(first_wrong, 0)] << ", cpu "
                             << (first_wrong >= 0 && first_wrong < rows ? row_id_map[first_wrong] : -1);
  std::vector<std::int64_t> expected_row_of_slot(slots, -1);
  for (std::int64_t r = 0; r < rows; ++r) expected_row_of_slot[row_id_map[r]] = r;
  const auto mismatch = std::mismatch(row_of_slot.begin(), row_of_slot.end(), expected_row_of_slot.begin());
  EXPECT_TRUE(mismatch.first == row_of_slot.end())
      << "row_of_slot must be the inverse of the CPU's row_id_map; slot " << (mismatch.first - row_of_slot.begin())
      << " has row " << (mismatch.first == row_of_slot.end() ? 0 : *mismatch.first) << ", expected "
      << (mismatch.first == row_of_slot.end() ? 0 : *mismatch.second);

  // Row data, rounded to bf16 as the kernels see it.
  const std::vector<float> input = gpu_testing::round_to_bf16(gpu_testing::random_floats(n * h, 21));
  const std::vector<float> expert_out = gpu_testing::round_to_bf16(gpu_testing::random_floats(rows * h, 22));
  const std::vector<float> dout = gpu_testing::round_to_bf16(gpu_testing::random_floats(n * h, 23));
  const std::vector<float> dpermuted = gpu_testing::round_to_bf16(gpu_testing::random_floats(rows * h, 24));
  std::vector<float> padded_expert_out(expert_out), padded_dpermuted(dpermuted);
  padded_expert_out.resize(slots * h, 0.0f);
  padded_dpermuted.resize(slots * h, 0.0f);
  DeviceBuffer<__nv_bfloat16> d_input(gpu_testing::to_bf16(input)), d_dout(gpu_testing::to_bf16(dout));
  DeviceBuffer<__nv_bfloat16> d_expert_out(gpu_testing::to_bf16(padded_expert_out));
  DeviceBuffer<__nv_bfloat16> d_dpermuted(gpu_testing::to_bf16(padded_dpermuted));
  DeviceBuffer<float> d_probs(routing.probs), d_dprobs(slots);
  DeviceBuffer<__nv_bfloat16> d_permuted(slots * h), d_dinput(n * h), d_out(n * h), d_dexpert_out(slots * h);

  // permute forward: copies, so exact.
  std::vector<float> permuted(rows * h);
  ops::cpu::permute_forward(permuted.data(), input.data(), row_id_map.data(), rows, n, k, h);
  ops::cuda::permute_forward(d_permuted.get(), d_input.get(), d_row_of_slot.get(), n, k, h, nullptr);
  EXPECT_TRUE(all_close(first(gpu_testing::from_bf16(d_permuted.download()), rows * h), permuted, 0, 0,
                        "permute_forward (exact)"));

  // permute backward: a sum of up to k bf16 rows.
  std::vector<float> dinput(n * h);
  ops::cpu::permute_backward(dinput.data(), dpermuted.data(), row_id_map.data(), rows, n, k, h);
  ops::cuda::permute_backward(d_dinput.get(), d_dpermuted.get(), d_row_of_slot.get(), n, k, h, nullptr);
  EXPECT_TRUE(all_close(gpu_testing::from_bf16(d_dinput.download()), dinput, 1e-2, 1e-2, "permute_backward"));

  // unpermute forward: the probs-weighted sum, and with a residual added
  // (dout's values stand in for it).
  std::vector<float> out(n * h);
  ops::cpu::unpermute_forward(out.data(), expert_out.data(), routing.probs.data(), row_id_map.data(), rows, n, k, h);
  ops::cuda::unpermute_forward(d_out.get(), d_expert_out.get(), d_probs.get(), d_row_of_slot.get(), nullptr, n, k, h,
                               nullptr);
  EXPECT_TRUE(all_close(gpu_testing::from_bf16(d_out.download()), out, 1e-2, 1e-2, "unpermute_forward"));
  std::vector<float> out_plus_residual(out);
  for (std::size_t i = 0; i < out.size(); ++i) out_plus_residual[i] += dout[i];
  d_out.poison();
  ops::cuda::unpermute_forward(d_out.get(), d_expert_out.get(), d_probs.get(), d_row_of_slot.get(), d_dout.get(), n,
                               k, h, nullptr);
  EXPECT_TRUE(all_close(gpu_testing::from_bf16(d_out.download()), out_plus_residual, 1e-2, 1e-2,
                        "unpermute_forward + residual"));

  // unpermute backward: scaled rows in bf16, dot products in fp32.
  std::vector<float> dexpert_out(rows * h), dprobs(slots);
  ops::cpu::unpermute_backward(dexpert_out.data(), dprobs.data(), dout.data(), expert_out.data(),
                               routing.probs.data(), row_id_map.data(), rows, n, k, h);
  ops::cuda::unpermute_backward(d_dexpert_out.get(), d_dprobs.get(), d_dout.get(), d_expert_out.get(), d_probs.get(),
                                d_row_of_slot.get(), n, k, h, nullptr);
  EXPECT_TRUE(all_close(first(gpu_testing::from_bf16(d_dexpert_out.download()), rows * h), dexpert_out, 1e-2, 1e-2,
                        "unpermute_backward dexpert"));
  EXPECT_TRUE(all_close(d_dprobs.download(), dprobs, 1e-4, 1e-5 * std::sqrt(double(h)), "unpermute_backward dprobs"));
}

std::vector<PermuteCase> proxy_cases() {
  return {
      {"Mixtral proxy: E 8 top-2", 4096, 8, 2, 4096},
      {"DeepSeek-V2-Lite proxy: E 64 top-6", 4096, 64, 6, 2048},
      {"Qwen2-57B proxy: E 64 top-8", 4096, 64, 8, 3584},
      {"E 256 top-8", 4096, 256, 8, 2048},
  };
}

TEST(Permute, SmallCasesMatchCpu) {
  check_permute({"one token per block, ragged tiles", 37, 5, 2, 64});
  check_permute({"capacity drops", 300, 16, 4, 256, 1.0});
  check_permute({"E 1024 (large shared memory)", 200, 1024, 8, 8});
  check_permute({"no tokens", 0, 8, 2, 64});
}

TEST(Permute, ProxyShapesMatchCpu) {
  for (const PermuteCase& c : proxy_cases()) check_permute(c);
  check_permute({"Qwen2-57B proxy with capacity factor 1", 4096, 64, 8, 3584, 1.0});
}

TEST(Permute, RejectsRowsThatAreNotPacks) {
  EXPECT_THROW(ops::cuda::permute_forward(nullptr, nullptr, nullptr, 4, 2, 12, nullptr), Error)
      << "hidden 12 is not a multiple of 8";
  EXPECT_THROW(ops::cuda::sort_slots_by_expert(nullptr, nullptr, nullptr, nullptr, 4, 2, 2048, nullptr), Error)
      << "2048 experts exceed the sort's one thread per expert";
}

TEST(PermuteTiming, ProxyShapes) {
  for (const PermuteCase& c : proxy_cases()) {
    const std::int64_t n = c.tokens, k = c.topk, h = c.hidden, slots = n * k;
    const Routing routing = random_routing(c, 5);
    DeviceBuffer<std::int64_t> d_map(routing.map), d_row_id_map(slots), d_row_of_slot(slots),
        d_tokens_per_expert(c.experts);
    DeviceBuffer<__nv_bfloat16> d_tokens(gpu_testing::to_bf16(gpu_testing::random_floats(n * h, 1)));
    DeviceBuffer<__nv_bfloat16> d_rows(gpu_testing::to_bf16(gpu_testing::random_floats(slots * h, 2)));
    DeviceBuffer<__nv_bfloat16> d_tokens_out(n * h), d_rows_out(slots * h);
    DeviceBuffer<float> d_probs(routing.probs), d_dprobs(slots);
    const double sort_us = gpu_testing::mean_microseconds([&] {
      ops::cuda::sort_slots_by_expert(d_row_id_map.get(), d_row_of_slot.get(), d_tokens_per_expert.get(),
                                      d_map.get(), n, k, c.experts, nullptr);
    });
    const double permute_us = gpu_testing::mean_microseconds([&] {
      ops::cuda::permute_forward(d_rows_out.get(), d_tokens.get(), d_row_of_slot.get(), n, k, h, nullptr);
    });
    const double permute_back_us = gpu_testing::mean_microseconds([&] {
      ops::cuda::permute_backward(d_tokens_out.get(), d_rows.get(), d_row_of_slot.get(), n, k, h, nullptr);
    });
    const double unpermute_us = gpu_testing::mean_microseconds([&] {
      ops::cuda::unpermute_forward(d_tokens_out.get(), d_rows.get(), d_probs.get(), d_row_of_slot.get(), nullptr, n,
                                   k, h, nullptr);
    });
    const double unpermute_back_us = gpu_testing::mean_microseconds([&] {
      ops::cuda::unpermute_backward(d_rows_out.get(), d_dprobs.get(), d_tokens.get(), d_rows.get(), d_probs.get(),
                                    d_row_of_slot.get(), n, k, h, nullptr);
    });
    // Bytes each op must move at least: token rows once, expert rows once each.
    const double token_bytes = double(n * h) * 2, row_bytes = double(slots * h) * 2;
    std::printf("[%s] sort %.1f us; permute fwd %.1f us (%.0f GB/s), bwd %.1f us (%.0f GB/s); "
                "unpermute fwd %.1f us (%.0f GB/s), bwd %.1f us (%.0f GB/s)\n",
                c.name.c_str(), sort_us, permute_us, (token_bytes + row_bytes) / permute_us / 1e3, permute_back_us,
                (token_bytes + row_bytes) / permute_back_us / 1e3, unpermute_us,
                (token_bytes + row_bytes) / unpermute_us / 1e3, unpermute_back_us,
                (token_bytes + 2 * row_bytes) / unpermute_back_us / 1e3);
    std::vector<std::int64_t> expected_counts(c.experts), row_id_map(slots);
    ops::cpu::sort_slots_by_expert(row_id_map.data(), expected_counts.data(), routing.map.data(), n, k, c.experts);
    EXPECT_EQ(d_tokens_per_expert.download(), expected_counts);
  }
}

}  // namespace
}  // namespace moebench
