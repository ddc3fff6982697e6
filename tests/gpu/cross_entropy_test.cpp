// Cross-entropy CUDA kernels against the CPU reference (float64 on the same
// bf16 logits): fp32 losses to ~1e-5, bf16 dlogits to bf16 rounding, both the
// pack path and the element-wise path, in place and out of place, and the
// masked mean.
#include "moebench/ops/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"

namespace moebench {
namespace {

using namespace gpu_testing;
namespace gpu = ops::cuda;

std::vector<int64_t> random_labels(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> dist(0, vocab - 1);
  std::vector<int64_t> labels(n);
  for (auto& label : labels) label = dist(rng);
  if (n > 0) labels[0] = vocab - 1;  // the last real column
  if (n > 1) labels[1] = 0;
  return labels;
}

void check_cross_entropy(int64_t n, int64_t vocab, int64_t padded, bool in_place, uint64_t seed) {
  SCOPED_TRACE("n=" + std::to_string(n) + " V=" + std::to_string(vocab) + " Vpad=" + std::to_string(padded) +
               (in_place ? " in place" : ""));
  const auto logits = round_to_bf16(random_floats(n * padded, seed, -8, 8));
  const auto labels = random_labels(n, vocab, seed + 1);
  const auto dlosses = random_floats(n, seed + 2, 0.5, 1.5);
  const std::vector<double> logits_d(logits.begin(), logits.end()), dlosses_d(dlosses.begin(), dlosses.end());
  std::vector<double> losses_ref(n), dlogits_ref(n * padded);
  ops::cpu::cross_entropy_forward(losses_ref.data(), logits_d.data(), labels.data(), n, vocab, padded);
  ops::cpu::cross_entropy_backward(dlogits_ref.data(), dlosses_d.data(), logits_d.data(), labels.data(), n, vocab,
                                   padded);

  DeviceBuffer<__nv_bfloat16> d_logits(to_bf16(logits)), d_dlogits(n * padded);
  DeviceBuffer<int64_t> d_labels(labels);
  DeviceBuffer<float> d_losses(n), d_lse(n), d_dlosses(dlosses);
  gpu::cross_entropy_forward(d_losses.get(), d_lse.get(), d_logits.get(), d_labels.get(), n, vocab, padded, nullptr);
  __nv_bfloat16* dlogits = in_place ? d_logits.get() : d_dlogits.get();
  gpu::cross_entropy_backward(dlogits, d_dlosses.get(), d_logits.get(), d_labels.get(), d_lse.get(), n, vocab, padded,
                              nullptr);
  const auto dlogits_host = from_bf16(in_place ? d_logits.download() : d_dlogits.download());
  EXPECT_TRUE(all_close(d_losses.download(), std::vector<float>(losses_ref.begin(), losses_ref.end()), 1e-5, 5e-5,
                        "cross_entropy losses (fp32)"));
  EXPECT_TRUE(all_close(dlogits_host, std::vector<float>(dlogits_ref.begin(), dlogits_ref.end()), 8e-3, 1e-9,
                        "cross_entropy dlogits (bf16)"));
}

TEST(CrossEntropyCuda, MatchesCpuReference) {
  check_cross_entropy(1, 1, 1, false, 1);
  check_cross_entropy(3, 5, 8, false, 2);
  check_cross_entropy(4, 100, 128, false, 3);
  check_cross_entropy(7, 1000, 1003, false, 4);  // element-wise path
  check_cross_entropy(5, 8, 8, false, 5);
  check_cross_entropy(16, 32000, 32000, false, 6);
  check_cross_entropy(6, 151643, 151936, false, 7);  // Qwen's vocabulary in its padded row
}

TEST(CrossEntropyCuda, GradientInPlaceOfLogits) {
  check_cross_entropy(9, 1000, 1024, true, 11);
  check_cross_entropy(3, 77, 81, true, 12);
}

TEST(CrossEntropyCuda, LabelOutsideVocabularyGivesNaN) {
  const int64_t n = 2, vocab = 10, padded = 16;
  DeviceBuffer<__nv_bfloat16> logits(to_bf16(random_floats(n * padded, 1)));
  DeviceBuffer<int64_t> labels(std::vector<int64_t>{3, 12});
  DeviceBuffer<float> losses(n), lse(n);
  gpu::cross_entropy_forward(losses.get(), lse.get(), logits.get(), labels.get(), n, vocab, padded, nullptr);
  const auto host = losses.download();
  EXPECT_FALSE(std::isnan(host[0]));
  EXPECT_TRUE(std::isnan(host[1]));
  EXPECT_THROW(gpu::cross_entropy_forward(losses.get(), lse.get(), logits.get(), labels.get(), n, 17, 16, nullptr),
               Error);
}

TEST(CrossEntropyCuda, MaskedMean) {
  for (const int64_t n : {1, 7, 4096, 5000}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto losses = random_floats(n, n, 0, 12);
    auto mask = random_floats(n, n + 1, 0, 1);
    for (auto& m : mask) m = m < 0.3f ? 0.0f : 1.0f;
    mask[0] = 1.0f;
    const std::vector<double> losses_d(losses.begin(), losses.end()), mask_d(mask.begin(), mask.end());
    DeviceBuffer<float> d_losses(losses), d_mask(mask), d_mean(1), d_dlosses(n);
    for (const bool masked : {true, false}) {
      const double* mask_ref = masked ? mask_d.data() : nullptr;
      const float* mask_dev = masked ? d_mask.get() : nullptr;
      const double mean_ref = ops::cpu::masked_mean_forward(losses_d.data(), mask_ref, n);
      std::vector<double> dlosses_ref(n);
      ops::cpu::masked_mean_backward(dlosses_ref.data(), 0.125, mask_ref, n);
      gpu::masked_mean_forward(d_mean.get(), d_losses.get(), mask_dev, n, nullptr);
      gpu::masked_mean_backward(d_dlosses.get(), 0.125f, mask_dev, n, nullptr);
      EXPECT_TRUE(all_close(d_mean.download(), {float(mean_ref)}, 1e-5, 0, "masked mean (fp32)"));
      EXPECT_TRUE(all_close(d_dlosses.download(), std::vector<float>(dlosses_ref.begin(), dlosses_ref.end()), 1e-6,
                            0, "masked mean dlosses (fp32)"));
    }
  }
}

TEST(CrossEntropyCuda, MaskedMeanOfEmptyMaskIsNaN) {
  DeviceBuffer<float> losses(std::vector<float>{1, 2, 3}), mask(std::vector<float>{0, 0, 0}), mean(1);
  gpu::masked_mean_forward(mean.get(), losses.get(), mask.get(), 3, nullptr);
  EXPECT_TRUE(std::isnan(mean.download()[0]));
}

TEST(CrossEntropyTiming, ProxyVocabularies) {
  const int64_t n = 4096;
  for (const int64_t vocab : {32000, 102400, 151936}) {
    // 16 random rows, repeated down the whole batch (random numbers on the host are slow).
    const int64_t sample_rows = 16;
    const auto sample = to_bf16(random_floats(sample_rows * vocab, vocab, -8, 8));
    DeviceBuffer<__nv_bfloat16> logits(n * vocab), dlogits(n * vocab);
    for (int64_t r = 0; r < n; r += sample_rows)
      MOEBENCH_CUDA_CHECK(cudaMemcpy(logits.get() + r * vocab, sample.data(), sample.size() * sizeof(__nv_bfloat16),
                                     cudaMemcpyHostToDevice));
    DeviceBuffer<int64_t> labels(random_labels(n, vocab, 3));
    DeviceBuffer<float> losses(n), lse(n), dlosses(std::vector<float>(n, 1.0f / n));
    const double forward_us = mean_microseconds([&] {
      gpu::cross_entropy_forward(losses.get(), lse.get(), logits.get(), labels.get(), n, vocab, vocab, nullptr);
    });
    const double backward_us = mean_microseconds([&] {
      gpu::cross_entropy_backward(dlogits.get(), dlosses.get(), logits.get(), labels.get(), lse.get(), n, vocab, vocab,
                                  nullptr);
    });
    const std::string shape = "[" + std::to_string(n) + ", " + std::to_string(vocab) + "]";
    print_bandwidth(("cross_entropy_forward " + shape).c_str(), forward_us, 2.0 * n * vocab);
    print_bandwidth(("cross_entropy_backward " + shape).c_str(), backward_us, 4.0 * n * vocab);
    // Correctness at this shape: the losses of the first sample rows.
    const auto labels_host = random_labels(n, vocab, 3);
    const auto sample_values = from_bf16(sample);
    const std::vector<double> sample_d(sample_values.begin(), sample_values.end());
    std::vector<double> ref(sample_rows);
    ops::cpu::cross_entropy_forward(ref.data(), sample_d.data(), labels_host.data(), sample_rows, vocab, vocab);
    auto got = losses.download();
    got.resize(sample_rows);
    EXPECT_TRUE(all_close(got, std::vector<float>(ref.begin(), ref.end()), 1e-5, 5e-5, "losses, first rows"));
  }
}

}  // namespace
}  // namespace moebench
