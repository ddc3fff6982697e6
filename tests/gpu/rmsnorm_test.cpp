// RMSNorm CUDA kernels against the CPU reference (float64 on bf16-rounded
// inputs): bf16 outputs to bf16 rounding, fp32 rstd and dweight to fp32
// accumulation error, the backward with and without the residual addend, on
// every backward path: packed rows of several rows per block (narrow groups
// of lanes, or whole warps), packed rows of one block per row, and the
// element-wise path (odd widths, misaligned pointers, the widest rows).
#include "moebench/ops/rmsnorm.h"

#include <gtest/gtest.h>

#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"

namespace moebench {
namespace {

using namespace gpu_testing;
namespace gpu = ops::cuda;

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }
std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

struct RmsnormCase {
  int64_t n, c;
  int64_t misalign = 0;           // elements by which every pointer is shifted off 16-byte alignment
  int64_t residual_misalign = 0;  // the same for residual_grad alone
};

void check_rmsnorm(const RmsnormCase& shape, uint64_t seed) {
  const int64_t n = shape.n, c = shape.c, off = shape.misalign, res_off = shape.residual_misalign;
  SCOPED_TRACE("n=" + std::to_string(n) + " c=" + std::to_string(c) + " misalign=" + std::to_string(off) +
               " residual misalign=" + std::to_string(res_off));
  const float eps = 1e-5f;
  const auto x = round_to_bf16(random_floats(n * c, seed, -2, 2));
  const auto w = round_to_bf16(random_floats(c, seed + 1, 0.5, 1.5));
  const auto dy = round_to_bf16(random_floats(n * c, seed + 2, -1, 1));
  const auto dweight_init = random_floats(c, seed + 3, -1, 1);
  const auto residual = round_to_bf16(random_floats(n * c, seed + 4, -1, 1));

  std::vector<double> out_ref(n * c), rstd_ref(n), dweight_ref = to_double(dweight_init);
  ops::cpu::rmsnorm_forward(out_ref.data(), rstd_ref.data(), to_double(x).data(), to_double(w).data(), n, c,
                            double(eps));
  // The backward sees the forward's fp32 rstd, as on the GPU.
  std::vector<double> dinp_ref[2] = {std::vector<double>(n * c), std::vector<double>(n * c)};
  for (int with_residual = 0; with_residual < 2; ++with_residual) {
    dweight_ref = to_double(dweight_init);
    ops::cpu::rmsnorm_backward(dinp_ref[with_residual].data(), dweight_ref.data(), to_double(dy).data(),
                               to_double(x).data(), to_double(w).data(), rstd_ref.data(),
                               with_residual ? to_double(residual).data() : nullptr, n, c);
  }

  auto padded = [](const std::vector<float>& v, int64_t offset) {
    std::vector<float> p(offset, 0.0f);
    p.insert(p.end(), v.begin(), v.end());
    return p;
  };
  DeviceBuffer<__nv_bfloat16> d_x(to_bf16(padded(x, off))), d_w(to_bf16(padded(w, off))),
      d_dy(to_bf16(padded(dy, off))), d_residual(to_bf16(padded(residual, res_off)));
  DeviceBuffer<__nv_bfloat16> d_out(off + n * c), d_dinp(off + n * c);
  DeviceBuffer<float> d_rstd(n), d_dweight(dweight_init);
  DeviceBuffer<float> d_scratch(gpu::rmsnorm_backward_scratch_floats(n, c));

  gpu::rmsnorm_forward(d_out.get() + off, d_rstd.get(), d_x.get() + off, d_w.get() + off, n, c, eps, nullptr);
  auto out = from_bf16(d_out.download());
  out.erase(out.begin(), out.begin() + off);
  EXPECT_TRUE(all_close(out, to_float(out_ref), 8e-3, 1e-5, "rmsnorm out (bf16)"));
  EXPECT_TRUE(all_close(d_rstd.download(), to_float(rstd_ref), 1e-5, 0, "rmsnorm rstd (fp32)"));

  for (int with_residual = 0; with_residual < 2; ++with_residual) {
    SCOPED_TRACE(with_residual ? "with residual_grad" : "without residual_grad");
    d_dinp.poison();
    d_scratch.poison();
    d_dweight.upload(dweight_init);
    gpu::rmsnorm_backward(d_dinp.get() + off, d_dweight.get(), d_dy.get() + off, d_x.get() + off, d_w.get() + off,
                          d_rstd.get(), with_residual ? d_residual.get() + res_off : nullptr, n, c,
                          d_scratch.get(), nullptr);
    auto dinp = from_bf16(d_dinp.download());
    dinp.erase(dinp.begin(), dinp.begin() + off);
    EXPECT_TRUE(all_close(dinp, to_float(dinp_ref[with_residual]), 8e-3, 1e-4, "rmsnorm dinp (bf16)"));
    EXPECT_TRUE(all_close(d_dweight.download(), to_float(dweight_ref), 1e-4, 1e-4, "rmsnorm dweight (fp32, +=)"));
  }
}

TEST(RmsnormCuda, MatchesCpuReferenceOnPackedAndOddWidths) {
  const RmsnormCase cases[] = {{1, 1},    {3, 7},       {5, 64},  {17, 1000}, {2, 8},
                               {33, 4096}, {4, 12288}, {700, 24}, {9, 2048, 1}, {1, 4104}};
  uint64_t seed = 100;
  for (const auto& shape : cases) check_rmsnorm(shape, seed += 10);
}

// Row counts are not multiples of the grid's rows per step, so the last step
// leaves some groups (or blocks) without a row.
TEST(RmsnormCuda, PackedBackwardSeveralRowsPerBlock) {
  // Groups of 1 to 32 lanes (widths 8 to 1024), then of whole warps (1536 to 4096).
  const RmsnormCase cases[] = {{301, 8},    {20000, 128}, {129, 512},  {65, 1024},
                               {100, 1536}, {300, 2048},  {100, 3584}, {1100, 4096}};
  uint64_t seed = 300;
  for (const auto& shape : cases) check_rmsnorm(shape, seed += 10);
}

TEST(RmsnormCuda, PackedBackwardOneRowPerBlock) {
  const RmsnormCase cases[] = {{50, 5120}, {50, 6144}, {300, 7168}, {40, 8192}, {3, 16384}};
  uint64_t seed = 400;
  for (const auto& shape : cases) check_rmsnorm(shape, seed += 10);
}

TEST(RmsnormCuda, ElementwiseBackward) {
  // Odd widths, a misaligned residual_grad beside aligned tensors, and a
  // multiple of 8 too wide for the packed kernel (past 48 KiB of shared memory).
  const RmsnormCase cases[] = {{600, 1000}, {37, 4100}, {9, 2048, 0, 1}, {3, 16392}};
  uint64_t seed = 500;
  for (const auto& shape : cases) check_rmsnorm(shape, seed += 10);
}

// 1500 rows: the element-wise path runs its most blocks (512); the packed
// path puts 32 rows of width 136 in a block.
TEST(RmsnormCuda, ManyRowsUseEveryPartialBlock) {
  check_rmsnorm({1500, 136}, 7);
  check_rmsnorm({1500, 130}, 8);
}

// The same dweight bits on every run, on each backward path.
TEST(RmsnormCuda, BackwardIsBitwiseDeterministic) {
  for (const int64_t c : {512, 7168, 1000}) {
    SCOPED_TRACE("c=" + std::to_string(c));
    const int64_t n = 1024;
    DeviceBuffer<__nv_bfloat16> x(to_bf16(random_floats(n * c, 1))), w(to_bf16(random_floats(c, 2))),
        dy(to_bf16(random_floats(n * c, 3))), residual(to_bf16(random_floats(n * c, 4))), dinp(n * c), out(n * c);
    DeviceBuffer<float> rstd(n), scratch(gpu::rmsnorm_backward_scratch_floats(n, c));
    gpu::rmsnorm_forward(out.get(), rstd.get(), x.get(), w.get(), n, c, 1e-6f, nullptr);
    std::vector<std::vector<float>> results;
    std::vector<std::vector<__nv_bfloat16>> dinps;
    for (int run = 0; run < 2; ++run) {
      DeviceBuffer<float> dweight(std::vector<float>(c, 0.0f));
      dinp.poison();
      gpu::rmsnorm_backward(dinp.get(), dweight.get(), dy.get(), x.get(), w.get(), rstd.get(), residual.get(), n, c,
                            scratch.get(), nullptr);
      results.push_back(dweight.download());
      dinps.push_back(dinp.download());
    }
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(), c * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(dinps[0].data(), dinps[1].data(), n * c * sizeof(__nv_bfloat16)));
  }
}

TEST(RmsnormCuda, RejectsBadSizes) {
  EXPECT_THROW(gpu::rmsnorm_forward(nullptr, nullptr, nullptr, nullptr, 4, 0, 1e-5f, nullptr), Error);
  EXPECT_THROW(gpu::rmsnorm_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, -1, 8, nullptr,
                                     nullptr),
               Error);
}

// Bytes are those of the [N, C] tensors read and written once each: x and dy
// read, dinp written, and residual_grad read when it is added. Left out:
// weight and rstd, and the dweight partials (one row of C floats per block,
// written then read back), the op's overhead over that floor.
TEST(RmsnormTiming, ProxyShapes) {
  for (const int64_t c : {4096, 2048, 3584, 7168}) {
    const int64_t n = 4096;
    DeviceBuffer<__nv_bfloat16> x(to_bf16(random_floats(n * c, 1))), w(to_bf16(random_floats(c, 2, 0.5, 1.5))),
        dy(to_bf16(random_floats(n * c, 3))), residual(to_bf16(random_floats(n * c, 4))), out(n * c), dinp(n * c);
    DeviceBuffer<float> rstd(n), dweight(std::vector<float>(c, 0.0f)),
        scratch(gpu::rmsnorm_backward_scratch_floats(n, c));
    const double forward_us = mean_microseconds(
        [&] { gpu::rmsnorm_forward(out.get(), rstd.get(), x.get(), w.get(), n, c, 1e-5f, nullptr); });
    const double backward_us = mean_microseconds([&] {
      gpu::rmsnorm_backward(dinp.get(), dweight.get(), dy.get(), x.get(), w.get(), rstd.get(), nullptr, n, c,
                            scratch.get(), nullptr);
    });
    const double backward_residual_us = mean_microseconds([&] {
      gpu::rmsnorm_backward(dinp.get(), dweight.get(), dy.get(), x.get(), w.get(), rstd.get(), residual.get(), n, c,
                            scratch.get(), nullptr);
    });
    const std::string shape = "[" + std::to_string(n) + ", " + std::to_string(c) + "]";
    const double tensor_bytes = double(n) * c * 2;
    print_bandwidth(("rmsnorm_forward " + shape).c_str(), forward_us, 2 * tensor_bytes);
    print_bandwidth(("rmsnorm_backward " + shape).c_str(), backward_us, 3 * tensor_bytes);
    print_bandwidth(("rmsnorm_backward + residual_grad " + shape).c_str(), backward_residual_us, 4 * tensor_bytes);
    // Correctness at this shape: rstd of one row.
    const auto rstd_host = rstd.download();
    std::vector<double> xr(c), wr(c), yr(c), rr(1);
    const auto x_host = from_bf16(x.download());
    const auto w_host = from_bf16(w.download());
    for (int64_t j = 0; j < c; ++j) xr[j] = x_host[j], wr[j] = w_host[j];
    ops::cpu::rmsnorm_forward(yr.data(), rr.data(), xr.data(), wr.data(), 1, c, 1e-5);
    EXPECT_NEAR(rstd_host[0], rr[0], 1e-5 * rr[0]);
  }
}

}  // namespace
}  // namespace moebench
