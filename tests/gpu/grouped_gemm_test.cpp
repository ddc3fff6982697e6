// Grouped expert GEMMs (ops/cuda/grouped_gemm.cu, grouped_gemm_sm90.cu): the
// own kernels (v1 mma.sync, v2 Hopper wgmma + TMA) and the cuBLASLt loop
// against the CPU twins on bf16-rounded inputs, over odd sizes, empty groups,
// one-row groups, unbalanced counts, more tiles than SMs and rows past the
// counts (NaN in the inputs, poison in the outputs); then TFLOP/s of forward,
// data gradient and weight gradient of fc1 and fc2 at the zoo proxies' expert
// shapes, each own kernel against the cuBLASLt loop, every result checked
// against an fp64 host reference at sampled elements.
#include "moebench/ops/grouped_gemm.h"

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <iterator>
#include <numeric>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu_test_support.h"

namespace moebench {
namespace {

using gpu_testing::all_close;
using gpu_testing::DeviceBuffer;
using gpu_testing::from_bf16;
using gpu_testing::random_floats;
using gpu_testing::relative_l2_error;
using gpu_testing::round_to_bf16;
using gpu_testing::to_bf16;

constexpr double kBf16OutputTolerance = 1e-2;  // relative L2, bf16 outputs
constexpr double kF32OutputTolerance = 1e-3;   // relative L2, fp32 weight gradients

enum class Implementation { kOwnKernel, kOwnKernelSm90, kCublasLtLoop };
constexpr Implementation kAllImplementations[] = {Implementation::kOwnKernel, Implementation::kOwnKernelSm90,
                                                  Implementation::kCublasLtLoop};

const char* name_of(Implementation implementation) {
  switch (implementation) {
    case Implementation::kOwnKernel:
      return "own kernel v1";
    case Implementation::kOwnKernelSm90:
      return "own kernel sm90";
    case Implementation::kCublasLtLoop:
      return "cuBLASLt loop";
  }
  return "?";
}

void forward(Implementation implementation, __nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* w,
             const std::int32_t* counts, std::int64_t groups, std::int64_t m_capacity, std::int64_t n,
             std::int64_t k) {
  if (implementation == Implementation::kOwnKernel) {
    ops::cuda::m_grouped_bf16_gemm_nt_contiguous(out, a, w, counts, groups, m_capacity, n, k, nullptr);
  } else if (implementation == Implementation::kOwnKernelSm90) {
    ops::cuda::m_grouped_bf16_gemm_nt_contiguous_sm90(out, a, w, counts, groups, m_capacity, n, k, nullptr);
  } else {
    ops::cuda::m_grouped_bf16_gemm_nt_contiguous_cublaslt_loop(ops::cuda::GemmContext::for_current_device(), out, a,
                                                               w, counts, groups, m_capacity, n, k, nullptr);
  }
}

void data_gradient(Implementation implementation, __nv_bfloat16* da, const __nv_bfloat16* dout,
                   const __nv_bfloat16* w, const std::int32_t* counts, std::int64_t groups, std::int64_t m_capacity,
                   std::int64_t n, std::int64_t k) {
  if (implementation == Implementation::kOwnKernel) {
    ops::cuda::m_grouped_bf16_gemm_nn_contiguous(da, dout, w, counts, groups, m_capacity, n, k, nullptr);
  } else if (implementation == Implementation::kOwnKernelSm90) {
    ops::cuda::m_grouped_bf16_gemm_nn_contiguous_sm90(da, dout, w, counts, groups, m_capacity, n, k, nullptr);
  } else {
    ops::cuda::m_grouped_bf16_gemm_nn_contiguous_cublaslt_loop(ops::cuda::GemmContext::for_current_device(), da,
                                                               dout, w, counts, groups, m_capacity, n, k, nullptr);
  }
}

void weight_gradient(Implementation implementation, float* dw, const __nv_bfloat16* dout, const __nv_bfloat16* a,
                     const std::int32_t* counts, std::int64_t groups, std::int64_t m_capacity, std::int64_t n,
                     std::int64_t k) {
  if (implementation == Implementation::kOwnKernel) {
    ops::cuda::k_grouped_bf16_gemm_tn_contiguous(dw, dout, a, counts, groups, m_capacity, n, k, nullptr);
  } else if (implementation == Implementation::kOwnKernelSm90) {
    ops::cuda::k_grouped_bf16_gemm_tn_contiguous_sm90(dw, dout, a, counts, groups, m_capacity, n, k, nullptr);
  } else {
    ops::cuda::k_grouped_bf16_gemm_tn_contiguous_cublaslt_loop(ops::cuda::GemmContext::for_current_device(), dw,
                                                               dout, a, counts, groups, m_capacity, n, k, nullptr);
  }
}

struct GroupedCase {
  const char* name;
  std::vector<std::int32_t> counts;
  std::int64_t m_capacity;  // >= sum of counts; the rows past it must stay untouched
  std::int64_t n, k;
};

std::vector<GroupedCase> correctness_cases() {
  std::vector<std::int32_t> many(64);
  std::mt19937 rng(3);
  for (auto& c : many) c = static_cast<std::int32_t>(rng() % 41);  // 0..40 rows
  const auto sum = [](const std::vector<std::int32_t>& v) { return std::accumulate(v.begin(), v.end(), 0LL); };
  return {
      {"balanced", {64, 64, 64, 64}, 256, 128, 128},
      {"odd_sizes", {37, 200, 5}, 242, 200, 136},
      {"empty_and_one_row_groups", {0, 1, 0, 129, 1, 0}, 131, 64, 72},
      {"unbalanced", {1000, 3, 0, 17, 256, 1, 0, 300}, 1577, 256, 320},
      {"rows_past_the_counts", {10, 20, 30}, 100, 40, 48},
      {"all_groups_empty", {0, 0, 0, 0}, 16, 32, 32},
      {"sixty_four_small_groups", many, sum(many), 72, 56},
      {"long_reduction", {5, 700}, 705, 16, 2048},
      // More 128x256 output tiles than an H100 has SMs (CTAs run several,
      // their pipeline phases carrying over); partial 64-row steps in every
      // weight-gradient group; K and N not multiples of 64 or 256.
      {"more_tiles_than_sms", {2000, 1500, 37}, 3600, 1032, 200},
  };
}

class GroupedGemmTest : public ::testing::TestWithParam<Implementation> {};

TEST_P(GroupedGemmTest, MatchesCpuTwinsOnEveryCase) {
  const Implementation implementation = GetParam();
  for (const GroupedCase& c : correctness_cases()) {
    SCOPED_TRACE(std::string(c.name) + " with " + name_of(implementation));
    const std::int64_t groups = c.counts.size(), m = c.m_capacity, n = c.n, k = c.k;
    const std::int64_t used = std::accumulate(c.counts.begin(), c.counts.end(), 0LL);
    const std::uint64_t seed = 1000 + n * 7 + k * 13 + groups;
    std::vector<float> a = round_to_bf16(random_floats(m * k, seed));
    const std::vector<float> w = round_to_bf16(random_floats(groups * n * k, seed + 1));
    std::vector<float> dout = round_to_bf16(random_floats(m * n, seed + 2));
    // Rows past the counts hold NaN: a kernel that lets them into any result fails.
    std::fill(a.begin() + used * k, a.end(), std::nanf(""));
    std::fill(dout.begin() + used * n, dout.end(), std::nanf(""));
    const std::vector<float> dw_initial = random_floats(groups * n * k, seed + 3);

    std::vector<float> out_expected(used * n), da_expected(used * k), dw_expected = dw_initial;
    ops::cpu::m_grouped_gemm_nt_contiguous(out_expected.data(), a.data(), w.data(), c.counts.data(), groups, n, k);
    ops::cpu::m_grouped_gemm_nn_contiguous(da_expected.data(), dout.data(), w.data(), c.counts.data(), groups, n, k);
    ops::cpu::k_grouped_gemm_tn_contiguous(dw_expected.data(), dout.data(), a.data(), c.counts.data(), groups, n, k);

    DeviceBuffer<__nv_bfloat16> a_device(to_bf16(a)), w_device(to_bf16(w)), dout_device(to_bf16(dout));
    DeviceBuffer<std::int32_t> counts_device(c.counts);
    DeviceBuffer<__nv_bfloat16> out_device(m * n), da_device(m * k);  // poisoned
    DeviceBuffer<float> dw_device(dw_initial);
    forward(implementation, out_device.get(), a_device.get(), w_device.get(), counts_device.get(), groups, m, n, k);
    data_gradient(implementation, da_device.get(), dout_device.get(), w_device.get(), counts_device.get(), groups, m,
                  n, k);
    weight_gradient(implementation, dw_device.get(), dout_device.get(), a_device.get(), counts_device.get(), groups,
                    m, n, k);
    MOEBENCH_CUDA_CHECK(cudaDeviceSynchronize());

    const std::vector<float> out_all = from_bf16(out_device.download()), da_all = from_bf16(da_device.download());
    const std::vector<float> out(out_all.begin(), out_all.begin() + used * n);
    const std::vector<float> da(da_all.begin(), da_all.begin() + used * k);
    const std::vector<float> dw = dw_device.download();
    // Per-element bounds scale with the reduction length; the L2 bounds are the contract.
    const double out_atol = 2e-2 * std::sqrt(double(k)), da_atol = 2e-2 * std::sqrt(double(n));
    const double dw_atol = 1e-4 * std::sqrt(double(std::max<std::int64_t>(used, 1)));
    EXPECT_TRUE(all_close(out, out_expected, 2e-2, out_atol, "forward out"));
    EXPECT_TRUE(all_close(da, da_expected, 2e-2, da_atol, "data gradient da"));
    EXPECT_TRUE(all_close(dw, dw_expected, 1e-3, dw_atol, "weight gradient dw"));
    EXPECT_LT(relative_l2_error(out, out_expected), kBf16OutputTolerance);
    EXPECT_LT(relative_l2_error(da, da_expected), kBf16OutputTolerance);
    EXPECT_LT(relative_l2_error(dw, dw_expected), kF32OutputTolerance);

    // Rows past the sum of the counts keep their poison (NaN).
    std::int64_t written_tail = 0;
    for (std::int64_t i = used * n; i < m * n; ++i) written_tail += !std::isnan(out_all[i]);
    for (std::int64_t i = used * k; i < m * k; ++i) written_tail += !std::isnan(da_all[i]);
    EXPECT_EQ(written_tail, 0) << "elements written past row " << used << " of " << m;
  }
}

INSTANTIATE_TEST_SUITE_P(Implementations, GroupedGemmTest, ::testing::ValuesIn(kAllImplementations),
                         [](const auto& info) {
                           switch (info.param) {
                             case Implementation::kOwnKernel:
                               return std::string("OwnKernel");
                             case Implementation::kOwnKernelSm90:
                               return std::string("OwnKernelSm90");
                             case Implementation::kCublasLtLoop:
                               break;
                           }
                           return std::string("CublasLtLoop");
                         });

TEST(GroupedGemmArguments, OwnKernelRejectsWhatItCannotRun) {
  DeviceBuffer<__nv_bfloat16> a(4096), w(4096), out(4096);
  DeviceBuffer<std::int32_t> counts(std::vector<std::int32_t>{8, 8});
  const auto run = [&](const __nv_bfloat16* a_pointer, std::int64_t groups, std::int64_t n, std::int64_t k) {
    ops::cuda::m_grouped_bf16_gemm_nt_contiguous(out.get(), a_pointer, w.get(), counts.get(), groups, 16, n, k,
                                                 nullptr);
  };
  EXPECT_THROW(run(a.get(), 2, 12, 16), Error);      // n not a multiple of 8
  EXPECT_THROW(run(a.get(), 2, 16, 20), Error);      // k not a multiple of 8
  EXPECT_THROW(run(a.get(), 0, 16, 16), Error);      // no groups
  EXPECT_THROW(run(a.get(), 2000, 16, 16), Error);   // more groups than the scheduler holds
  EXPECT_THROW(run(a.get() + 1, 2, 16, 16), Error);  // 2-byte aligned operand
  EXPECT_NO_THROW(run(a.get(), 2, 16, 16));
  MOEBENCH_CUDA_CHECK(cudaDeviceSynchronize());
}

TEST(GroupedGemmArguments, Sm90KernelRejectsWhatItCannotRun) {
  DeviceBuffer<__nv_bfloat16> a(4096), w(4096), out(4096);
  DeviceBuffer<std::int32_t> counts(std::vector<std::int32_t>{8, 8});
  const auto run = [&](const __nv_bfloat16* a_pointer, std::int64_t groups, std::int64_t n, std::int64_t k) {
    ops::cuda::m_grouped_bf16_gemm_nt_contiguous_sm90(out.get(), a_pointer, w.get(), counts.get(), groups, 16, n, k,
                                                      nullptr);
  };
  EXPECT_THROW(run(a.get(), 2, 12, 16), Error);      // n not a multiple of 8
  EXPECT_THROW(run(a.get(), 2, 16, 20), Error);      // k not a multiple of 8
  EXPECT_THROW(run(a.get(), 0, 16, 16), Error);      // no groups
  EXPECT_THROW(run(a.get(), 2000, 16, 16), Error);   // more groups than the scheduler holds
  EXPECT_THROW(run(a.get() + 1, 2, 16, 16), Error);  // 2-byte aligned operand
  EXPECT_NO_THROW(run(a.get(), 2, 16, 16));
  MOEBENCH_CUDA_CHECK(cudaDeviceSynchronize());
}

// The weight gradient over several micro-batches' segments in one pass: the
// same sums as the CPU twin run once per segment, added into dw or
// overwriting it (dw poisoned first: every element must be stored, zeros for
// groups without rows). Segments differ in counts and capacity (rows past
// the counts are NaN), include one with no rows at all and one of capacity
// zero, and ten of them take two launches (at most kMaxKGroupedSegments per
// launch); overwriting with no segment at all zeroes dw. The sum of the
// squares of the final dw is added to `squares` (groups without rows
// included: accumulating, they keep earlier values).
TEST(GroupedGemmSegments, Sm90WeightGradientMatchesTheTwinPerSegment) {
  struct SegmentCase {
    std::vector<std::int32_t> counts;
    std::int64_t m_capacity;
  };
  const std::int64_t groups = 5, n = 200, k = 136;
  const std::vector<std::vector<SegmentCase>> cases = {
      {{{37, 0, 64, 5, 100}, 220}, {{1, 33, 0, 0, 31}, 80}, {{64, 64, 64, 64, 64}, 320}},
      {{{0, 0, 0, 0, 0}, 16}, {{10, 20, 0, 7, 3}, 40}, {{}, 0}, {{96, 1, 1, 1, 1}, 100}},
      [] {
        std::vector<SegmentCase> ten;
        std::mt19937 rng(7);
        for (int s = 0; s < 10; ++s) {
          SegmentCase c{std::vector<std::int32_t>(groups), 0};
          for (auto& count : c.counts) count = static_cast<std::int32_t>(rng() % 70);
          c.m_capacity = std::accumulate(c.counts.begin(), c.counts.end(), 0LL) + s;
          ten.push_back(c);
        }
        return ten;
      }(),
      {},
  };
  for (std::size_t index = 0; index < cases.size(); ++index) {
    for (const bool accumulate : {true, false}) {
      SCOPED_TRACE("case " + std::to_string(index) + " with " + std::to_string(cases[index].size()) + " segments, " +
                   (accumulate ? "accumulating" : "overwriting"));
      const std::vector<float> dw_initial = random_floats(groups * n * k, 50 + index);
      std::vector<float> dw_expected = accumulate ? dw_initial : std::vector<float>(groups * n * k, 0.0f);
      DeviceBuffer<float> dw_device(groups * n * k);  // poisoned
      if (accumulate) dw_device.upload(dw_initial);
      std::deque<DeviceBuffer<__nv_bfloat16>> douts, as;  // deque: buffers never move
      std::deque<DeviceBuffer<std::int32_t>> counts;
      std::vector<ops::cuda::KGroupedSegment> segments;
      std::int64_t rows = 0;
      for (std::size_t s = 0; s < cases[index].size(); ++s) {
        SegmentCase c = cases[index][s];
        if (c.counts.empty()) c.counts.assign(groups, 0);
        const std::int64_t m = c.m_capacity;
        const std::int64_t used = std::accumulate(c.counts.begin(), c.counts.end(), 0LL);
        std::vector<float> a = round_to_bf16(random_floats(std::max<std::int64_t>(m, 1) * k, 100 * index + 2 * s));
        std::vector<float> dout =
            round_to_bf16(random_floats(std::max<std::int64_t>(m, 1) * n, 100 * index + 2 * s + 1));
        std::fill(a.begin() + used * k, a.end(), std::nanf(""));
        std::fill(dout.begin() + used * n, dout.end(), std::nanf(""));
        ops::cpu::k_grouped_gemm_tn_contiguous(dw_expected.data(), dout.data(), a.data(), c.counts.data(), groups, n,
                                               k);
        as.emplace_back(to_bf16(a));
        douts.emplace_back(to_bf16(dout));
        counts.emplace_back(c.counts);
        segments.push_back({douts.back().get(), as.back().get(), counts.back().get(), m});
        rows += used;
      }
      const double squares_before = 0.25;
      DeviceBuffer<double> squares(std::vector<double>{squares_before});
      ops::cuda::k_grouped_bf16_gemm_tn_contiguous_sm90(dw_device.get(), segments.data(),
                                                        static_cast<int>(segments.size()), accumulate, groups, n, k,
                                                        squares.get(), nullptr);
      const std::vector<float> dw = dw_device.download();
      EXPECT_TRUE(all_close(dw, dw_expected, 1e-3, 1e-4 * std::sqrt(double(std::max<std::int64_t>(rows, 1))), "dw"));
      EXPECT_LT(relative_l2_error(dw, dw_expected), accumulate || rows > 0 ? kF32OutputTolerance : 1e-30);
      double expected_squares = 0;
      for (const float v : dw_expected) expected_squares += double(v) * double(v);
      EXPECT_NEAR(squares.download()[0] - squares_before, expected_squares, 1e-5 * expected_squares + 1e-12);
    }
  }
}

// ---- timing at the proxy shapes ----

struct ExpertProxy {
  const char* name;
  std::int64_t experts, tokens_per_expert, hidden, ffn;
};

// Every sample_every-th row of a device matrix, as floats: enough to compare
// GPU results over all groups without copying gigabytes.
template <typename T>
std::vector<float> sampled_rows(const T* device, std::int64_t rows, std::int64_t columns, std::int64_t sample_every) {
  const std::int64_t sampled = (rows + sample_every - 1) / sample_every;
  std::vector<T> host(sampled * columns);
  MOEBENCH_CUDA_CHECK(cudaDeviceSynchronize());
  MOEBENCH_CUDA_CHECK(cudaMemcpy2D(host.data(), columns * sizeof(T), device, sample_every * columns * sizeof(T),
                                   columns * sizeof(T), sampled, cudaMemcpyDeviceToHost));
  if constexpr (std::is_same_v<T, float>) {
    return host;
  } else {
    return from_bf16(host);
  }
}

double time_ms(int warmup, int repetitions, const std::function<void()>& run) {
  for (int i = 0; i < warmup; ++i) run();
  cudaEvent_t start, stop;
  MOEBENCH_CUDA_CHECK(cudaEventCreate(&start));
  MOEBENCH_CUDA_CHECK(cudaEventCreate(&stop));
  MOEBENCH_CUDA_CHECK(cudaEventRecord(start));
  for (int i = 0; i < repetitions; ++i) run();
  MOEBENCH_CUDA_CHECK(cudaEventRecord(stop));
  MOEBENCH_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  MOEBENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  MOEBENCH_CUDA_CHECK(cudaEventDestroy(start));
  MOEBENCH_CUDA_CHECK(cudaEventDestroy(stop));
  return ms / repetitions;
}

// Random bf16 values for timing inputs of a billion elements: one random
// block of 2^20 values tiled, since generating each value on the host would
// take longer than every timed kernel together. at(i) is element i of the
// tiled tensor, which lets the host compute reference values without a copy.
class TiledRandomBf16 {
 public:
  TiledRandomBf16(std::uint64_t seed, float low = -1, float high = 1)
      : block_(to_bf16(random_floats(kBlock, seed, low, high))) {}
  std::vector<__nv_bfloat16> values(std::int64_t count) const {
    std::vector<__nv_bfloat16> values(count);
    for (std::int64_t i = 0; i < count; i += kBlock)
      std::copy_n(block_.begin(), std::min<std::int64_t>(kBlock, count - i), values.begin() + i);
    return values;
  }
  double at(std::int64_t i) const { return __bfloat162float(block_[i % kBlock]); }

 private:
  static constexpr std::int64_t kBlock = std::int64_t{1} << 20;
  std::vector<__nv_bfloat16> block_;
};

// Relative L2 difference of two results and how many elements differ at all.
struct Difference {
  double relative_l2;
  std::int64_t differing;
};
Difference difference(const std::vector<float>& actual, const std::vector<float>& expected) {
  std::int64_t differing = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) differing += actual[i] != expected[i];
  return {relative_l2_error(actual, expected), differing};
}

// One expert matrix (fc1 or fc2) of a proxy: w [G, N, K], balanced tokens.
// Besides the times, each implementation's results are checked on sampled
// elements against an fp64 reference computed on the host from the same
// (tiled) inputs, and compared with the cuBLASLt loop's over whole sampled
// rows. The latter may well be exactly zero: all three run the reduction in
// ascending order in k16 tensor-core steps without split-K, so they often
// agree bit for bit; the fp64 reference is what measures the error.
void time_expert_matrix(const ExpertProxy& proxy, const char* matrix, std::int64_t n, std::int64_t k) {
  constexpr int kWarmup = 3, kRepetitions = 10;
  const std::int64_t groups = proxy.experts, m = proxy.experts * proxy.tokens_per_expert;
  const TiledRandomBf16 a_values(11), dout_values(12), w_values(13, -0.05f, 0.05f);
  DeviceBuffer<__nv_bfloat16> a(a_values.values(m * k)), dout(dout_values.values(m * n));
  DeviceBuffer<__nv_bfloat16> w(w_values.values(groups * n * k));
  DeviceBuffer<__nv_bfloat16> out(m * n), da(m * k);
  DeviceBuffer<float> dw(groups * n * k);
  DeviceBuffer<std::int32_t> counts(std::vector<std::int32_t>(groups, static_cast<std::int32_t>(proxy.tokens_per_expert)));
  const double flops = 2.0 * m * n * k;
  // Odd sampling strides, so that the sampled rows visit every row offset
  // within a 128-row tile (a stride of 16 would only ever see rows 0, 16, ...).
  const std::int64_t sample_every = std::max<std::int64_t>(1, m / 512) | 1;
  const std::int64_t weight_sample_every = std::max<std::int64_t>(1, groups * n / 512) | 1;

  // fp64 references at sampled elements: every reference_stride-th sampled
  // row, kReferenceColumns columns spread over the row (shifted per row so
  // that every column offset within a tile gets its turn).
  constexpr std::int64_t kReferenceColumns = 16;
  constexpr std::int64_t kReferenceRowStride = 8;  // 64 of the 512 sampled rows
  const auto reference_column = [](std::int64_t index, std::int64_t sampled_row, std::int64_t columns) {
    return (index * (columns / kReferenceColumns) + sampled_row * 37) % columns;
  };
  struct Reference {
    std::vector<std::int64_t> positions;  // index into the sampled rows
    std::vector<float> values;
  };
  const auto make_reference = [&](std::int64_t rows, std::int64_t columns, std::int64_t every,
                                  const std::function<double(std::int64_t, std::int64_t)>& element) {
    Reference reference;
    const std::int64_t sampled = (rows + every - 1) / every;
    for (std::int64_t s = 0; s < sampled; s += kReferenceRowStride) {
      for (std::int64_t i = 0; i < kReferenceColumns; ++i) {
        const std::int64_t column = reference_column(i, s, columns);
        reference.positions.push_back(s * columns + column);
        reference.values.push_back(static_cast<float>(element(s * every, column)));
      }
    }
    return reference;
  };
  const std::int64_t rows_per_group = proxy.tokens_per_expert;
  const Reference out_reference = make_reference(m, n, sample_every, [&](std::int64_t row, std::int64_t column) {
    const std::int64_t g = row / rows_per_group;
    double sum = 0;
    for (std::int64_t i = 0; i < k; ++i) sum += a_values.at(row * k + i) * w_values.at((g * n + column) * k + i);
    return sum;
  });
  const Reference da_reference = make_reference(m, k, sample_every, [&](std::int64_t row, std::int64_t column) {
    const std::int64_t g = row / rows_per_group;
    double sum = 0;
    for (std::int64_t i = 0; i < n; ++i) sum += dout_values.at(row * n + i) * w_values.at((g * n + i) * k + column);
    return sum;
  });
  const Reference dw_reference =
      make_reference(groups * n, k, weight_sample_every, [&](std::int64_t weight_row, std::int64_t column) {
        const std::int64_t g = weight_row / n, row_of_n = weight_row % n;
        double sum = 0;
        for (std::int64_t r = g * rows_per_group; r < (g + 1) * rows_per_group; ++r)
          sum += dout_values.at(r * n + row_of_n) * a_values.at(r * k + column);
        return sum;  // dw starts at zero below
      });
  const auto at_reference = [](const std::vector<float>& sampled, const Reference& reference) {
    std::vector<float> values;
    for (std::int64_t position : reference.positions) values.push_back(sampled[position]);
    return values;
  };

  struct Result {
    std::vector<float> out, da, dw;
  };
  Result results[std::size(kAllImplementations)];
  for (std::size_t index = 0; index < std::size(kAllImplementations); ++index) {
    const Implementation implementation = kAllImplementations[index];
    const double forward_ms = time_ms(kWarmup, kRepetitions, [&] {
      forward(implementation, out.get(), a.get(), w.get(), counts.get(), groups, m, n, k);
    });
    const double dgrad_ms = time_ms(kWarmup, kRepetitions, [&] {
      data_gradient(implementation, da.get(), dout.get(), w.get(), counts.get(), groups, m, n, k);
    });
    const double wgrad_ms = time_ms(kWarmup, kRepetitions, [&] {
      weight_gradient(implementation, dw.get(), dout.get(), a.get(), counts.get(), groups, m, n, k);
    });
    std::printf("  %-18s %s [%lld x %lld tok] N=%-6lld K=%-6lld %-14s fwd %7.3f ms %6.1f | dgrad %7.3f ms %6.1f | "
                "wgrad %7.3f ms %6.1f | all %6.1f TFLOP/s\n",
                proxy.name, matrix, static_cast<long long>(groups), static_cast<long long>(proxy.tokens_per_expert),
                static_cast<long long>(n), static_cast<long long>(k), name_of(implementation), forward_ms,
                flops / forward_ms / 1e9, dgrad_ms, flops / dgrad_ms / 1e9, wgrad_ms, flops / wgrad_ms / 1e9,
                3 * flops / (forward_ms + dgrad_ms + wgrad_ms) / 1e9);

    // One clean pass of each for the checks; outputs poisoned first, so an
    // element left unwritten reads NaN.
    out.poison();
    da.poison();
    MOEBENCH_CUDA_CHECK(cudaMemset(dw.get(), 0, groups * n * k * sizeof(float)));
    forward(implementation, out.get(), a.get(), w.get(), counts.get(), groups, m, n, k);
    data_gradient(implementation, da.get(), dout.get(), w.get(), counts.get(), groups, m, n, k);
    weight_gradient(implementation, dw.get(), dout.get(), a.get(), counts.get(), groups, m, n, k);
    Result& result = results[index];
    result.out = sampled_rows(out.get(), m, n, sample_every);
    result.da = sampled_rows(da.get(), m, k, sample_every);
    result.dw = sampled_rows(dw.get(), groups * n, k, weight_sample_every);

    const double out_error = relative_l2_error(at_reference(result.out, out_reference), out_reference.values);
    const double da_error = relative_l2_error(at_reference(result.da, da_reference), da_reference.values);
    const double dw_error = relative_l2_error(at_reference(result.dw, dw_reference), dw_reference.values);
    const char* name = name_of(implementation);
    std::printf("  %-18s %s %-14s vs fp64 at %zu+%zu+%zu sampled elements, relative L2: out %.2e  da %.2e  dw %.2e\n",
                proxy.name, matrix, name, out_reference.values.size(), da_reference.values.size(),
                dw_reference.values.size(), out_error, da_error, dw_error);
    EXPECT_LT(out_error, kBf16OutputTolerance) << proxy.name << " " << matrix << " " << name;
    EXPECT_LT(da_error, kBf16OutputTolerance) << proxy.name << " " << matrix << " " << name;
    EXPECT_LT(dw_error, kF32OutputTolerance) << proxy.name << " " << matrix << " " << name;
  }
  const Result& loop = results[std::size(kAllImplementations) - 1];  // the cuBLASLt loop
  for (std::size_t index = 0; index + 1 < std::size(kAllImplementations); ++index) {
    const Difference out_difference = difference(results[index].out, loop.out);
    const Difference da_difference = difference(results[index].da, loop.da);
    const Difference dw_difference = difference(results[index].dw, loop.dw);
    const char* name = name_of(kAllImplementations[index]);
    std::printf("  %-18s %s %-14s vs cuBLASLt loop on sampled rows: out %.2e (%lld of %zu differ)  da %.2e (%lld of "
                "%zu)  dw %.2e (%lld of %zu)\n",
                proxy.name, matrix, name, out_difference.relative_l2, static_cast<long long>(out_difference.differing),
                loop.out.size(), da_difference.relative_l2, static_cast<long long>(da_difference.differing),
                loop.da.size(), dw_difference.relative_l2, static_cast<long long>(dw_difference.differing),
                loop.dw.size());
    EXPECT_LT(out_difference.relative_l2, kBf16OutputTolerance) << proxy.name << " " << matrix << " " << name;
    EXPECT_LT(da_difference.relative_l2, kBf16OutputTolerance) << proxy.name << " " << matrix << " " << name;
    EXPECT_LT(dw_difference.relative_l2, kF32OutputTolerance) << proxy.name << " " << matrix << " " << name;
  }
}

// The weight gradient of S micro-batches (the proxies' rows per expert each)
// as S launches of one segment (Megatron: accumulate every micro-batch) and
// as one launch over S segments (--moe-wgrad-microbatches S), which reads and
// writes the fp32 dw once instead of S times. The results agree to fp32
// rounding: one launch sums the segments in its registers, S launches round
// into dw after each (measured 1e-6 to 9e-6 relative L2).
void time_weight_gradient_over_microbatches(const ExpertProxy& proxy, const char* matrix, std::int64_t n,
                                            std::int64_t k) {
  constexpr int kWarmup = 2, kRepetitions = 5;
  constexpr int kMaxMicrobatches = 8;
  const std::int64_t groups = proxy.experts, m = proxy.experts * proxy.tokens_per_expert;
  std::deque<DeviceBuffer<__nv_bfloat16>> douts, as;  // deque: buffers never move
  for (int s = 0; s < kMaxMicrobatches; ++s) {
    douts.emplace_back(TiledRandomBf16(20 + s).values(m * n));
    as.emplace_back(TiledRandomBf16(40 + s).values(m * k));
  }
  DeviceBuffer<std::int32_t> counts(std::vector<std::int32_t>(groups, static_cast<std::int32_t>(proxy.tokens_per_expert)));
  DeviceBuffer<float> dw_each(groups * n * k), dw_once(groups * n * k);
  std::vector<ops::cuda::KGroupedSegment> segments;
  for (int s = 0; s < kMaxMicrobatches; ++s) segments.push_back({douts[s].get(), as[s].get(), counts.get(), m});
  for (int microbatches : {1, 2, 4, 8}) {
    const auto each = [&] {
      for (int s = 0; s < microbatches; ++s)
        ops::cuda::k_grouped_bf16_gemm_tn_contiguous_sm90(dw_each.get(), douts[s].get(), as[s].get(), counts.get(),
                                                          groups, m, n, k, nullptr);
    };
    const auto once = [&](bool accumulate) {
      ops::cuda::k_grouped_bf16_gemm_tn_contiguous_sm90(dw_once.get(), segments.data(), microbatches, accumulate,
                                                        groups, n, k, /*squares=*/nullptr, nullptr);
    };
    const double flops = 2.0 * m * n * k * microbatches;
    const double each_ms = time_ms(kWarmup, kRepetitions, each);
    const double once_ms = time_ms(kWarmup, kRepetitions, [&] { once(true); });
    const double overwrite_ms = time_ms(kWarmup, kRepetitions, [&] { once(false); });
    std::printf("  %-18s %s wgrad of %d micro-batches: one launch each %7.3f ms %6.1f TFLOP/s | one launch over all "
                "%7.3f ms %6.1f TFLOP/s | overwriting %7.3f ms %6.1f TFLOP/s\n",
                proxy.name, matrix, microbatches, each_ms, flops / each_ms / 1e9, once_ms, flops / once_ms / 1e9,
                overwrite_ms, flops / overwrite_ms / 1e9);
    const std::int64_t every = std::max<std::int64_t>(1, groups * n / 512) | 1;
    MOEBENCH_CUDA_CHECK(cudaMemset(dw_each.get(), 0, groups * n * k * sizeof(float)));
    each();
    const std::vector<float> expected = sampled_rows(dw_each.get(), groups * n, k, every);
    for (const bool accumulate : {true, false}) {
      dw_once.poison();
      if (accumulate) MOEBENCH_CUDA_CHECK(cudaMemset(dw_once.get(), 0, groups * n * k * sizeof(float)));
      once(accumulate);
      const Difference d = difference(sampled_rows(dw_once.get(), groups * n, k, every), expected);
      EXPECT_LT(d.relative_l2, 1e-5) << proxy.name << " " << matrix << " " << microbatches << " micro-batches, "
                                     << (accumulate ? "accumulating" : "overwriting");
    }
  }
}

TEST(GroupedGemmTiming, WeightGradientOverMicrobatches) {
  const ExpertProxy proxies[] = {
      {"Mixtral-8x7B", 8, 1024, 4096, 14336},
      {"DeepSeek-V2-Lite", 64, 384, 2048, 1408},
      {"Qwen2-57B-A14B", 64, 512, 3584, 2560},
  };
  for (const ExpertProxy& proxy : proxies) {
    time_weight_gradient_over_microbatches(proxy, "fc1", 2 * proxy.ffn, proxy.hidden);
    time_weight_gradient_over_microbatches(proxy, "fc2", proxy.hidden, proxy.ffn);
  }
}

TEST(GroupedGemmTiming, ProxyShapes) {
  const ExpertProxy proxies[] = {
      {"Mixtral-8x7B", 8, 1024, 4096, 14336},
      {"DeepSeek-V2-Lite", 64, 384, 2048, 1408},
      {"Qwen2-57B-A14B", 64, 512, 3584, 2560},
  };
  for (const ExpertProxy& proxy : proxies) {
    time_expert_matrix(proxy, "fc1", 2 * proxy.ffn, proxy.hidden);  // gate and up: [G, 2*ffn, hidden]
    time_expert_matrix(proxy, "fc2", proxy.hidden, proxy.ffn);      // down: [G, hidden, ffn]
  }
}

}  // namespace
}  // namespace moebench
