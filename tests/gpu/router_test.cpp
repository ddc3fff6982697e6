// cuda::router_forward / router_backward / router_auxiliary_loss against the
// CPU twins of ops/router.h, on fresh seeded logits, small and proxy-sized;
// RouterTiming.* prints microseconds and GB/s.
//
// The logits of each row are a random permutation of an evenly spaced grid
// (plus jitter under a quarter step), and expert biases are whole numbers while
// sigmoid scores lie in (0, 1): no two selection scores come within rounding
// of each other, so the GPU must pick exactly the CPU's experts. Group scores
// (sums of two scores) can still tie within rounding; such rows are allowed to
// differ, are printed, and must stay under 1%.
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
#include "moebench/ops/activation.h"
#include "moebench/ops/router.h"

namespace moebench {
namespace {

using gpu_testing::all_close;
using gpu_testing::DeviceBuffer;
using ops::GroupScore;
using ops::RouterConfig;
using ops::RouterScoreFunction;
using ops::RouterStatistics;

struct RouterCase {
  std::string name;
  std::int64_t tokens = 0;
  std::int64_t tokens_per_sequence = 0;  // 0: all tokens (aux_loss)
  RouterConfig config;
  bool expert_bias = false;
};

RouterConfig softmax_config(std::int64_t experts, std::int64_t topk, bool pre_softmax) {
  RouterConfig config;
  config.num_experts = experts;
  config.topk = topk;
  config.pre_softmax = pre_softmax;
  config.aux_loss_coeff = 1e-2f;
  return config;
}

RouterConfig grouped(RouterConfig config, std::int64_t groups, std::int64_t keep, GroupScore score) {
  config.num_groups = groups;
  config.group_topk = keep;
  config.group_score = score;
  return config;
}

// DeepSeek-V3's noaux_tc: sigmoid, 8 groups keep 4 by top-2 sums, scaled weights.
RouterConfig deepseek_v3_config(std::int64_t experts, std::int64_t topk) {
  RouterConfig config = grouped(softmax_config(experts, topk, false), 8, 4, GroupScore::kTop2Sum);
  config.score_function = RouterScoreFunction::kSigmoid;
  config.scaling_factor = 2.5f;
  return config;
}

std::vector<float> gridded_logits(std::int64_t tokens, std::int64_t experts, float span, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> jitter(-0.24f, 0.24f);
  const float step = span / float(experts);
  std::vector<float> logits(tokens * experts);
  std::vector<int> rank(experts);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::iota(rank.begin(), rank.end(), 0);
    std::shuffle(rank.begin(), rank.end(), rng);
    for (std::int64_t e = 0; e < experts; ++e)
      logits[t * experts + e] = (float(rank[e]) - float(experts) / 2 + jitter(rng)) * step;
  }
  return logits;
}

std::vector<float> whole_number_bias(std::int64_t experts, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> klass(0, 3);
  std::vector<float> bias(experts);
  for (float& b : bias) b = float(klass(rng));
  return bias;
}

// True when two of the row's group scores agree within rounding (the one place
// the CPU and GPU may legitimately choose differently).
bool has_group_score_near_tie(const float* selection, const RouterConfig& config) {
  if (config.num_groups == 0) return false;
  const std::int64_t size = config.num_experts / config.num_groups;
  std::vector<float> scores;
  for (std::int64_t g = 0; g < config.num_groups; ++g) {
    std::vector<float> group(selection + g * size, selection + (g + 1) * size);
    std::sort(group.begin(), group.end(), std::greater<float>());
    scores.push_back(config.group_score == GroupScore::kMax ? group[0] : group[0] + group[1]);
  }
  std::sort(scores.begin(), scores.end());
  for (std::size_t i = 1; i < scores.size(); ++i)
    if (scores[i] - scores[i - 1] <= 1e-5f * std::abs(scores[i])) return true;
  return false;
}

// The scores the router chooses on, as the CPU computes them.
std::vector<float> selection_scores(const std::vector<float>& logits, const std::vector<float>& bias,
                                    std::int64_t tokens, const RouterConfig& config) {
  const std::int64_t experts = config.num_experts;
  std::vector<float> selection(logits.size());
  if (config.score_function == RouterScoreFunction::kSoftmax) {
    if (config.pre_softmax) ops::cpu::softmax_forward(selection.data(), logits.data(), tokens, experts);
    else selection = logits;
    return selection;
  }
  ops::cpu::sigmoid_forward(selection.data(), logits.data(), tokens * experts);
  if (!bias.empty())
    for (std::size_t i = 0; i < selection.size(); ++i) selection[i] += bias[i % experts];
  return selection;
}

template <typename T>
std::vector<float> as_floats(const std::vector<T>& v) {
  return std::vector<float>(v.begin(), v.end());
}

void check_router(const RouterCase& c) {
  const RouterConfig& config = c.config;
  const std::int64_t n = c.tokens, experts = config.num_experts, k = config.topk;
  const std::int64_t length = c.tokens_per_sequence > 0 ? c.tokens_per_sequence : n;
  const std::int64_t cells = (n / length) * experts;
  const bool sigmoid = config.score_function == RouterScoreFunction::kSigmoid;
  SCOPED_TRACE(c.name);
  std::printf("[%s] N %lld, E %lld, top-%lld, L %lld\n", c.name.c_str(), (long long)n, (long long)experts,
              (long long)k, (long long)length);

  const std::vector<float> logits = gridded_logits(n, experts, sigmoid ? 4.0f : 8.0f, 1000 + n + experts);
  const std::vector<float> bias = c.expert_bias ? whole_number_bias(experts, 7 + experts) : std::vector<float>{};

  // CPU twin.
  std::vector<std::int64_t> indices(n * k);
  std::vector<float> probs(n * k), score_sums(cells, 0.0f), z_sum(1, 0.0f);
  std::vector<std::int32_t> counts(cells, 0);
  const RouterStatistics cpu_statistics{counts.data(), score_sums.data(), z_sum.data()};
  ops::cpu::router_forward(indices.data(), probs.data(), cpu_statistics, logits.data(),
                           bias.empty() ? nullptr : bias.data(), n, length, config);
  const double loss = ops::cpu::router_auxiliary_loss(cpu_statistics, n, length, config);

  // CUDA op on poisoned outputs and zeroed statistics.
  DeviceBuffer<float> d_logits(logits);
  DeviceBuffer<float> d_bias(bias.empty() ? std::vector<float>(1) : bias);
  DeviceBuffer<std::int64_t> d_indices(n * k);
  DeviceBuffer<float> d_probs(n * k), d_score_sums(cells), d_z_sum(1), d_loss(1);
  DeviceBuffer<std::int32_t> d_counts(cells);
  MOEBENCH_CUDA_CHECK(cudaMemset(d_counts.get(), 0, cells * sizeof(std::int32_t)));
  MOEBENCH_CUDA_CHECK(cudaMemset(d_score_sums.get(), 0, cells * sizeof(float)));
  MOEBENCH_CUDA_CHECK(cudaMemset(d_z_sum.get(), 0, sizeof(float)));
  const RouterStatistics gpu_statistics{d_counts.get(), d_score_sums.get(), d_z_sum.get()};
  ops::cuda::router_forward(d_indices.get(), d_probs.get(), gpu_statistics, d_logits.get(),
                            c.expert_bias ? d_bias.get() : nullptr, n, length, config, nullptr);
  ops::cuda::router_auxiliary_loss(d_loss.get(), gpu_statistics, n, length, config, nullptr);
  const std::vector<std::int64_t> gpu_indices = d_indices.download();
  const std::vector<float> gpu_probs = d_probs.download();

  // Indices exactly, except rows whose group scores tie within rounding.
  const std::vector<float> selection = selection_scores(logits, bias, n, config);
  std::int64_t tied_rows = 0, wrong_rows = 0;
  std::vector<float> compared_probs, expected_probs;
  for (std::int64_t t = 0; t < n; ++t) {
    const bool same = std::equal(indices.begin() + t * k, indices.begin() + (t + 1) * k, gpu_indices.begin() + t * k);
    if (same) {
      compared_probs.insert(compared_probs.end(), gpu_probs.begin() + t * k, gpu_probs.begin() + (t + 1) * k);
      expected_probs.insert(expected_probs.end(), probs.begin() + t * k, probs.begin() + (t + 1) * k);
      continue;
    }
    const bool tie = has_group_score_near_tie(selection.data() + t * experts, config);
    if (tie) ++tied_rows;
    else ++wrong_rows;
    if (wrong_rows + tied_rows <= 3) {
      std::printf("  row %lld (%s) cpu experts:", (long long)t, tie ? "group-score near tie" : "WRONG");
      for (std::int64_t i = 0; i < k; ++i) std::printf(" %lld", (long long)indices[t * k + i]);
      std::printf("  gpu experts:");
      for (std::int64_t i = 0; i < k; ++i) std::printf(" %lld", (long long)gpu_indices[t * k + i]);
      std::printf("\n");
    }
  }
  std::printf("  indices: %lld rows differ (%lld at group-score near ties) of %lld\n",
              (long long)(wrong_rows + tied_rows), (long long)tied_rows, (long long)n);
  EXPECT_EQ(wrong_rows, 0) << "rows whose top-k experts differ from the CPU without a near tie";
  EXPECT_LE(tied_rows * 100, n) << "too many near-tie rows for the gridded inputs";
  EXPECT_TRUE(all_close(compared_probs, expected_probs, 1e-5, 1e-7, "probs"));

  if (config.aux_loss_coeff > 0) {
    const std::vector<std::int32_t> gpu_counts = d_counts.download();
    EXPECT_TRUE(all_close(as_floats(gpu_counts), as_floats(counts), 0, 0, "aux_counts (exact)"));
    EXPECT_TRUE(all_close(d_score_sums.download(), score_sums, 1e-4, 1e-5, "aux_score_sums"));
  }
  if (config.z_loss_coeff > 0) {
    EXPECT_TRUE(all_close(d_z_sum.download(), z_sum, 1e-4, 0, "z_loss_sum"));
  }
  EXPECT_TRUE(all_close(d_loss.download(), {float(loss)}, 1e-4, 1e-9, "auxiliary loss"));

  // Backward from the CPU's indices and counts, so it is checked on its own.
  const float loss_scale = 0.5f;
  const std::vector<float> dprobs = gpu_testing::random_floats(n * k, 99 + n);
  std::vector<float> dlogits(n * experts);
  ops::cpu::router_backward(dlogits.data(), dprobs.data(), logits.data(), indices.data(), counts.data(), n,
                            length, config, loss_scale);
  DeviceBuffer<float> d_dprobs(dprobs), d_dlogits(n * experts);
  DeviceBuffer<std::int64_t> d_cpu_indices(indices);
  DeviceBuffer<std::int32_t> d_cpu_counts(counts.empty() ? std::vector<std::int32_t>(1) : counts);
  ops::cuda::router_backward(d_dlogits.get(), d_dprobs.get(), d_logits.get(), d_cpu_indices.get(),
                             d_cpu_counts.get(), n, length, config, loss_scale, nullptr);
  float largest = 0;
  for (float g : dlogits) largest = std::max(largest, std::abs(g));
  EXPECT_TRUE(all_close(d_dlogits.download(), dlogits, 1e-4, 1e-5 * largest, "dlogits"));
}

std::vector<RouterCase> small_cases() {
  std::vector<RouterCase> cases;
  cases.push_back({"mixtral softmax after top-k", 64, 0, softmax_config(8, 2, false)});
  cases.push_back({"softmax after top-k, E 40 (ragged lanes)", 96, 0, softmax_config(40, 3, false)});
  cases.push_back({"qwen2 pre-softmax, seq_aux_loss", 128, 32, softmax_config(64, 6, true)});
  RouterConfig z = softmax_config(160, 4, true);
  z.z_loss_coeff = 1e-3f;
  z.scaling_factor = 1.5f;
  cases.push_back({"pre-softmax E 160, z-loss, scaled", 80, 0, z});
  cases.push_back({"deepseek-v2 group max", 128, 0, grouped(softmax_config(64, 6, true), 8, 3, GroupScore::kMax)});
  cases.push_back({"deepseek-v3 sigmoid, bias, top-2-sum groups", 128, 0, deepseek_v3_config(256, 8), true});
  RouterConfig single = deepseek_v3_config(32, 1);
  single.num_groups = 0;
  single.z_loss_coeff = 1e-3f;
  cases.push_back({"sigmoid top-1, no groups, no bias, z-loss", 50, 0, single});
  RouterConfig no_aux = softmax_config(16, 4, false);
  no_aux.aux_loss_coeff = 0;
  cases.push_back({"no statistics", 33, 0, no_aux});
  return cases;
}

std::vector<RouterCase> proxy_cases() {
  return {
      {"Mixtral proxy: E 8 top-2", 4096, 0, softmax_config(8, 2, false)},
      {"DeepSeek-V2-Lite proxy: E 64 top-6", 4096, 0, softmax_config(64, 6, true)},
      {"Qwen2-57B proxy: E 64 top-8", 4096, 0, softmax_config(64, 8, true)},
      {"DeepSeek-V3 shape: E 256, 8 groups keep 4, top-8", 4096, 0, deepseek_v3_config(256, 8), true},
  };
}

TEST(Router, SmallCasesMatchCpu) {
  for (const RouterCase& c : small_cases()) check_router(c);
}

TEST(Router, ProxyShapesMatchCpu) {
  for (const RouterCase& c : proxy_cases()) check_router(c);
}

TEST(Router, RejectsWhatTheKernelCannotHold) {
  RouterConfig config = softmax_config(512, 8, true);
  config.aux_loss_coeff = 0;
  EXPECT_THROW(ops::cuda::router_forward(nullptr, nullptr, {}, nullptr, nullptr, 16, 16, config, nullptr), Error)
      << "E 512 exceeds the warp-per-row kernel";
  config = softmax_config(64, 6, true);
  EXPECT_THROW(ops::cuda::router_forward(nullptr, nullptr, {}, nullptr, nullptr, 16, 16, config, nullptr), Error)
      << "aux_loss_coeff > 0 without statistics buffers must throw";
  config = grouped(softmax_config(64, 6, true), 7, 3, GroupScore::kMax);
  config.aux_loss_coeff = 0;
  EXPECT_THROW(ops::cuda::router_forward(nullptr, nullptr, {}, nullptr, nullptr, 16, 16, config, nullptr), Error);
}

TEST(RouterTiming, ProxyShapes) {
  for (const RouterCase& c : proxy_cases()) {
    const RouterConfig& config = c.config;
    const std::int64_t n = c.tokens, experts = config.num_experts, k = config.topk;
    DeviceBuffer<float> d_logits(gridded_logits(n, experts, 8.0f, 5));
    DeviceBuffer<float> d_bias(whole_number_bias(experts, 3));
    DeviceBuffer<std::int64_t> d_indices(n * k);
    DeviceBuffer<float> d_probs(n * k), d_score_sums(experts), d_z_sum(1), d_dprobs(gpu_testing::random_floats(n * k, 4));
    DeviceBuffer<float> d_dlogits(n * experts);
    DeviceBuffer<std::int32_t> d_counts(experts);
    MOEBENCH_CUDA_CHECK(cudaMemset(d_counts.get(), 0, experts * sizeof(std::int32_t)));
    MOEBENCH_CUDA_CHECK(cudaMemset(d_score_sums.get(), 0, experts * sizeof(float)));
    const RouterStatistics statistics{d_counts.get(), d_score_sums.get(), d_z_sum.get()};
    const float* bias = c.expert_bias ? d_bias.get() : nullptr;
    const double forward_us = gpu_testing::mean_microseconds([&] {
      ops::cuda::router_forward(d_indices.get(), d_probs.get(), statistics, d_logits.get(), bias, n, n, config, nullptr);
    });
    const double backward_us = gpu_testing::mean_microseconds([&] {
      ops::cuda::router_backward(d_dlogits.get(), d_dprobs.get(), d_logits.get(), d_indices.get(), d_counts.get(), n,
                                 n, config, 1.0f, nullptr);
    });
    const double logit_bytes = double(n * experts) * sizeof(float);
    const double slot_bytes = double(n * k) * (sizeof(std::int64_t) + sizeof(float));
    std::printf("[%s] forward %.1f us (%.0f GB/s), backward %.1f us (%.0f GB/s)\n", c.name.c_str(), forward_us,
                (logit_bytes + slot_bytes) / forward_us / 1e3, backward_us,
                (2 * logit_bytes + slot_bytes) / backward_us / 1e3);
    // Timing asserts only correctness: the last forward's experts are in range and distinct.
    const std::vector<std::int64_t> chosen = d_indices.download();
    for (std::int64_t t = 0; t < n; ++t)
      for (std::int64_t i = 0; i < k; ++i) {
        ASSERT_GE(chosen[t * k + i], 0);
        ASSERT_LT(chosen[t * k + i], experts);
        for (std::int64_t j = 0; j < i; ++j) ASSERT_NE(chosen[t * k + i], chosen[t * k + j]);
      }
  }
}

}  // namespace
}  // namespace moebench
