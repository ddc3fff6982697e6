// Dense cuBLASLt GEMM (ops/cuda/gemm.cu) against ops::cpu::gemm on
// bf16-rounded inputs, every layout and output mode, odd sizes, with a bf16
// addend (cuBLASLt's C, beta = 1) separate from the output or the output
// itself; the Tensor-level linear layer with a residual and an accumulated
// input gradient against the CPU twins; and the 8192^3 throughput that
// bounds every other GEMM here.
#include "moebench/ops/gemm.h"

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "moebench/core/cuda_allocator.h"
#include "moebench/core/device_transfer.h"
#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"

namespace moebench {
namespace {

using gpu_testing::all_close;
using gpu_testing::DeviceBuffer;
using gpu_testing::from_bf16;
using gpu_testing::random_floats;
using gpu_testing::relative_l2_error;
using gpu_testing::round_to_bf16;
using gpu_testing::to_bf16;
using ops::GemmLayout;
using ops::GemmOutput;

constexpr double kBf16OutputTolerance = 1e-2;  // relative L2, bf16 result
constexpr double kF32OutputTolerance = 1e-3;   // relative L2, fp32 result

const char* name_of(GemmLayout layout) {
  return layout == GemmLayout::kNN ? "NN" : layout == GemmLayout::kNT ? "NT" : "TN";
}

struct GemmShape {
  std::int64_t m, n, k;
};

// Operand sizes are m*k and k*n whatever the layout; only the index order differs.
struct GemmInputs {
  std::vector<float> a, b;  // bf16-rounded
  GemmInputs(const GemmShape& s, std::uint64_t seed)
      : a(round_to_bf16(random_floats(s.m * s.k, seed))), b(round_to_bf16(random_floats(s.k * s.n, seed + 1))) {}
};

class GemmTest : public ::testing::TestWithParam<GemmLayout> {};

TEST_P(GemmTest, Bf16OutputWithAndWithoutBiasMatchesCpu) {
  const GemmLayout layout = GetParam();
  auto& context = ops::cuda::GemmContext::for_current_device();
  for (const GemmShape& s : {GemmShape{1, 8, 8}, GemmShape{37, 53, 29}, GemmShape{128, 256, 64},
                             GemmShape{300, 136, 520}}) {
    for (bool with_bias : {false, true}) {
      const GemmInputs in(s, 17 + s.m + s.n * 3 + s.k * 7);
      const std::vector<float> bias = round_to_bf16(random_floats(s.n, 99));
      std::vector<float> expected(s.m * s.n);
      ops::cpu::gemm(expected.data(), in.a.data(), in.b.data(), s.m, s.n, s.k, layout, GemmOutput::kOverwrite);
      if (with_bias) {
        for (std::int64_t i = 0; i < s.m; ++i)
          for (std::int64_t j = 0; j < s.n; ++j) expected[i * s.n + j] += bias[j];
      }
      DeviceBuffer<__nv_bfloat16> a(to_bf16(in.a)), b(to_bf16(in.b)), bias_device(to_bf16(bias));
      DeviceBuffer<__nv_bfloat16> c(s.m * s.n);
      ops::cuda::gemm(context, c.get(), a.get(), b.get(), with_bias ? bias_device.get() : nullptr, s.m, s.n, s.k,
                      layout, nullptr);
      const std::vector<float> actual = from_bf16(c.download());
      const std::string what = std::string("bf16 ") + name_of(layout) + (with_bias ? "+bias " : " ") +
                               std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
      EXPECT_TRUE(all_close(actual, expected, 2e-2, 2e-2 * std::sqrt(double(s.k)), what.c_str()));
      EXPECT_LT(relative_l2_error(actual, expected), kBf16OutputTolerance) << what;
    }
  }
}

TEST_P(GemmTest, F32OutputOverwritesAndAccumulates) {
  const GemmLayout layout = GetParam();
  auto& context = ops::cuda::GemmContext::for_current_device();
  for (const GemmShape& s : {GemmShape{1, 1, 1}, GemmShape{45, 19, 71}, GemmShape{256, 128, 384}}) {
    for (GemmOutput output : {GemmOutput::kOverwrite, GemmOutput::kAccumulate}) {
      const GemmInputs in(s, 5 + s.m * 11 + s.k);
      const std::vector<float> initial = random_floats(s.m * s.n, 1234);
      std::vector<float> expected = initial;
      ops::cpu::gemm(expected.data(), in.a.data(), in.b.data(), s.m, s.n, s.k, layout, output);
      DeviceBuffer<__nv_bfloat16> a(to_bf16(in.a)), b(to_bf16(in.b));
      DeviceBuffer<float> c(s.m * s.n);  // poisoned: an overwrite must not read it
      if (output == GemmOutput::kAccumulate) c.upload(initial);
      ops::cuda::gemm(context, c.get(), a.get(), b.get(), s.m, s.n, s.k, layout, output, nullptr);
      const std::vector<float> actual = c.download();
      const std::string what = std::string("f32 ") + name_of(layout) +
                               (output == GemmOutput::kAccumulate ? " += " : " = ") + std::to_string(s.m) + "x" +
                               std::to_string(s.n) + "x" + std::to_string(s.k);
      EXPECT_TRUE(all_close(actual, expected, 1e-3, 1e-4 * std::sqrt(double(s.k)), what.c_str()));
      EXPECT_LT(relative_l2_error(actual, expected), kF32OutputTolerance) << what;
    }
  }
}

// d = op(a) @ op(b) (+ bias) + addend, the CPU twin's product plus bias and
// addend in float, from bf16-rounded operands.
std::vector<float> product_plus(const GemmInputs& in, const GemmShape& s, GemmLayout layout,
                                const std::vector<float>* bias, const std::vector<float>& addend) {
  std::vector<float> expected(s.m * s.n);
  ops::cpu::gemm(expected.data(), in.a.data(), in.b.data(), s.m, s.n, s.k, layout, GemmOutput::kOverwrite);
  for (std::int64_t i = 0; i < s.m; ++i)
    for (std::int64_t j = 0; j < s.n; ++j)
      expected[i * s.n + j] += (bias ? (*bias)[j] : 0.0f) + addend[i * s.n + j];
  return expected;
}

TEST_P(GemmTest, Bf16OutputAddsASeparateOrInPlaceAddendMatchesCpu) {
  const GemmLayout layout = GetParam();
  auto& context = ops::cuda::GemmContext::for_current_device();
  for (const GemmShape& s : {GemmShape{1, 8, 8}, GemmShape{37, 53, 29}, GemmShape{128, 256, 64},
                             GemmShape{300, 136, 520}}) {
    for (bool with_bias : {false, true}) {
      for (bool in_place : {false, true}) {
        const GemmInputs in(s, 31 + s.m + s.n * 5 + s.k * 3);
        const std::vector<float> bias = round_to_bf16(random_floats(s.n, 77));
        const std::vector<float> addend = round_to_bf16(random_floats(s.m * s.n, 78, -4, 4));
        const std::vector<float> expected = product_plus(in, s, layout, with_bias ? &bias : nullptr, addend);
        DeviceBuffer<__nv_bfloat16> a(to_bf16(in.a)), b(to_bf16(in.b)), bias_device(to_bf16(bias));
        DeviceBuffer<__nv_bfloat16> addend_device(to_bf16(addend));
        DeviceBuffer<__nv_bfloat16> c(s.m * s.n);  // poisoned: with a separate addend it must not be read
        if (in_place) c.upload(to_bf16(addend));
        ops::cuda::gemm(context, c.get(), a.get(), b.get(), with_bias ? bias_device.get() : nullptr,
                        in_place ? c.get() : addend_device.get(), s.m, s.n, s.k, layout, nullptr);
        const std::vector<float> actual = from_bf16(c.download());
        const std::string what = std::string("bf16 ") + name_of(layout) + (with_bias ? "+bias" : "") +
                                 (in_place ? " +=c " : " +addend ") + std::to_string(s.m) + "x" +
                                 std::to_string(s.n) + "x" + std::to_string(s.k);
        EXPECT_TRUE(all_close(actual, expected, 2e-2, 2e-2 * std::sqrt(double(s.k)), what.c_str()));
        EXPECT_LT(relative_l2_error(actual, expected), kBf16OutputTolerance) << what;
        if (!in_place) {
          EXPECT_EQ(from_bf16(addend_device.download()), addend) << what << ": addend written";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, GemmTest, ::testing::Values(GemmLayout::kNN, GemmLayout::kNT, GemmLayout::kTN),
                         [](const auto& info) { return std::string(name_of(info.param)); });

TEST(GemmArguments, RejectsNegativeSizesAndEmptyReduction) {
  auto& context = ops::cuda::GemmContext::for_current_device();
  DeviceBuffer<__nv_bfloat16> a(64), b(64), c(64);
  EXPECT_THROW(ops::cuda::gemm(context, c.get(), a.get(), b.get(), nullptr, -1, 8, 8, GemmLayout::kNT, nullptr),
               Error);
  EXPECT_THROW(ops::cuda::gemm(context, c.get(), a.get(), b.get(), nullptr, 8, 8, 0, GemmLayout::kNT, nullptr),
               Error);
  EXPECT_NO_THROW(ops::cuda::gemm(context, c.get(), a.get(), b.get(), nullptr, 0, 8, 8, GemmLayout::kNT, nullptr));
}

// Plans are cached per (shape, addend: none, c itself or separate, alignment):
// the same shape and pointers in turn without an addend, in place, with a
// separate addend and without again each give their own result.
TEST(GemmArguments, PlansWithAndWithoutAnAddendAreNotMixed) {
  auto& context = ops::cuda::GemmContext::for_current_device();
  const GemmShape s{64, 96, 48};
  const GemmInputs in(s, 5);
  const std::vector<float> addend = round_to_bf16(random_floats(s.m * s.n, 6));
  const std::vector<float> zero(s.m * s.n, 0.0f);
  DeviceBuffer<__nv_bfloat16> a(to_bf16(in.a)), b(to_bf16(in.b)), addend_device(to_bf16(addend)), c(s.m * s.n);
  const auto check = [&](const __nv_bfloat16* with, const std::vector<float>& added, const char* what) {
    ops::cuda::gemm(context, c.get(), a.get(), b.get(), nullptr, with, s.m, s.n, s.k, GemmLayout::kNT, nullptr);
    const std::vector<float> actual = from_bf16(c.download());
    EXPECT_LT(relative_l2_error(actual, product_plus(in, s, GemmLayout::kNT, nullptr, added)), kBf16OutputTolerance)
        << what;
    return actual;
  };
  const std::vector<float> product = check(nullptr, zero, "no addend");
  check(c.get(), product, "c += product");
  check(addend_device.get(), addend, "separate addend");
  c.poison();
  check(nullptr, zero, "no addend again");
}

// The Tensor-level linear layer on CUDA: the residual (separate or out
// itself) and the accumulated input gradient in the GEMM, against the f32
// CPU twins on the same bf16-rounded values; a residual on another device is
// refused.
TEST(GemmTensorLevel, LinearResidualAndAccumulatedInputGradientMatchCpu) {
  enable_cuda_tensors();
  const std::int64_t n = 45, in = 72, outf = 40;
  const Device gpu = Device::cuda(0);
  const auto host = [](std::size_t count, std::uint64_t seed, std::vector<std::int64_t> shape) {
    return Tensor::from_vector(round_to_bf16(random_floats(count, seed)), shape);
  };
  const Tensor inp = host(n * in, 1, {n, in}), weight = host(outf * in, 2, {outf, in}), bias = host(outf, 3, {outf});
  const Tensor residual = host(n * outf, 4, {n, outf}), dout = host(n * outf, 5, {n, outf});
  const Tensor dinp_before = host(n * in, 6, {n, in});
  const auto on_gpu = [&](const Tensor& t) { return to_device(t.to(DType::BF16), gpu); };
  const auto values = [](const Tensor& t) {
    const Tensor f32 = to_host(t).to(DType::F32);
    return std::vector<float>(f32.data<float>(), f32.data<float>() + f32.numel());
  };

  Tensor expected = Tensor::empty({n, outf}, DType::F32);
  ops::linear_forward(expected, inp, weight, bias, residual);
  Tensor out = Tensor::empty({n, outf}, DType::BF16, gpu);
  MOEBENCH_CUDA_CHECK(cudaMemset(out.data_ptr(), 0xFF, out.nbytes()));  // NaN: every element must be written
  ops::linear_forward(out, on_gpu(inp), on_gpu(weight), on_gpu(bias), on_gpu(residual));
  EXPECT_TRUE(all_close(values(out), values(expected), 2e-2, 5e-2, "linear + residual"));
  Tensor in_place = on_gpu(residual);
  ops::linear_forward(in_place, on_gpu(inp), on_gpu(weight), on_gpu(bias), in_place);
  EXPECT_TRUE(all_close(values(in_place), values(expected), 2e-2, 5e-2, "linear + residual in place"));
  EXPECT_THROW(ops::linear_forward(out, on_gpu(inp), on_gpu(weight), on_gpu(bias), residual), Error);

  Tensor dinp_expected = dinp_before.clone(), dweight_expected = Tensor::zeros({outf, in}, DType::F32), no_bias;
  ops::linear_backward(dinp_expected, dweight_expected, no_bias, dout, inp, weight, GemmOutput::kAccumulate);
  Tensor dinp = on_gpu(dinp_before), dweight = Tensor::empty({outf, in}, DType::F32, gpu);
  ops::zero_(dweight);
  ops::linear_backward(dinp, dweight, no_bias, on_gpu(dout), on_gpu(inp), on_gpu(weight), GemmOutput::kAccumulate);
  EXPECT_TRUE(all_close(values(dinp), values(dinp_expected), 2e-2, 5e-2, "dinp += dout @ weight"));
  EXPECT_TRUE(all_close(values(dweight), values(dweight_expected), 1e-3, 1e-3, "dweight"));
}

// Elements recomputed in double at random positions: a full CPU reference of
// 8192^3 would take minutes.
double sampled_relative_error(const std::vector<float>& actual, const std::vector<__nv_bfloat16>& a_bf16,
                              const std::vector<__nv_bfloat16>& b_bf16, std::int64_t m, std::int64_t n,
                              std::int64_t k) {
  const std::vector<float> a = from_bf16(a_bf16), b = from_bf16(b_bf16);  // a [M,K], b [N,K] (NT)
  std::mt19937_64 rng(7);
  double diff = 0, norm = 0;
  for (int sample = 0; sample < 64; ++sample) {
    const std::int64_t i = rng() % m, j = rng() % n;
    double dot = 0;
    for (std::int64_t p = 0; p < k; ++p) dot += double(a[i * k + p]) * b[j * k + p];
    diff += (actual[i * n + j] - dot) * (actual[i * n + j] - dot);
    norm += dot * dot;
  }
  return std::sqrt(diff / norm);
}

TEST(GemmTiming, Dense8192Cubed) {
  constexpr std::int64_t m = 8192, n = 8192, k = 8192;
  constexpr int kWarmup = 5, kRepetitions = 20;
  auto& context = ops::cuda::GemmContext::for_current_device();
  const std::vector<__nv_bfloat16> a_host = to_bf16(random_floats(m * k, 1)), b_host = to_bf16(random_floats(n * k, 2));
  DeviceBuffer<__nv_bfloat16> a(a_host), b(b_host), c(m * n);
  DeviceBuffer<float> c_f32(m * n);
  cudaEvent_t start, stop;
  MOEBENCH_CUDA_CHECK(cudaEventCreate(&start));
  MOEBENCH_CUDA_CHECK(cudaEventCreate(&stop));
  const auto time = [&](const char* what, const auto& run) {
    for (int i = 0; i < kWarmup; ++i) run();
    MOEBENCH_CUDA_CHECK(cudaEventRecord(start));
    for (int i = 0; i < kRepetitions; ++i) run();
    MOEBENCH_CUDA_CHECK(cudaEventRecord(stop));
    MOEBENCH_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    MOEBENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    const double seconds = ms / 1e3 / kRepetitions;
    std::printf("  dense cuBLASLt %-28s %8.3f ms  %6.1f TFLOP/s\n", what, seconds * 1e3,
                2.0 * m * n * k / seconds / 1e12);
  };
  time("8192^3 NT bf16 out", [&] {
    ops::cuda::gemm(context, c.get(), a.get(), b.get(), nullptr, m, n, k, GemmLayout::kNT, nullptr);
  });
  time("8192^3 NN bf16 out", [&] {
    ops::cuda::gemm(context, c.get(), a.get(), b.get(), nullptr, m, n, k, GemmLayout::kNN, nullptr);
  });
  time("8192^3 TN f32 += (wgrad)", [&] {
    ops::cuda::gemm(context, c_f32.get(), a.get(), b.get(), m, n, k, GemmLayout::kTN, GemmOutput::kAccumulate,
                    nullptr);
  });
  MOEBENCH_CUDA_CHECK(cudaEventDestroy(start));
  MOEBENCH_CUDA_CHECK(cudaEventDestroy(stop));

  ops::cuda::gemm(context, c.get(), a.get(), b.get(), nullptr, m, n, k, GemmLayout::kNT, nullptr);
  const double error = sampled_relative_error(from_bf16(c.download()), a_host, b_host, m, n, k);
  std::printf("  8192^3 NT sampled relative error %.3e\n", error);
  EXPECT_LT(error, kBf16OutputTolerance);
}

}  // namespace
}  // namespace moebench
