// RMSNorm CUDA kernels against the CPU reference (float64 on bf16-rounded
// inputs): bf16 outputs to bf16 rounding, fp32 rstd and dweight to fp32
// accumulation error, both the 16-byte pack path and the element-wise path.
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
  int64_t misalign;  // elements by which every pointer is shifted off 16-byte alignment
};

void check_rmsnorm(const RmsnormCase& shape, uint64_t seed) {
  const int64_t n = shape.n, c = shape.c, off = shape.misalign;
  SCOPED_TRACE("n=" + std::to_string(n) + " c=" + std::to_string(c) + " misalign=" + std::to_string(off));
  const float eps = 1e-5f;
  const auto x = round_to_bf16(random_floats(n * c, seed, -2, 2));
  const auto w = round_to_bf16(random_floats(c, seed + 1, 0.5, 1.5));
  const auto dy = round_to_bf16(random_floats(n * c, seed + 2, -1, 1));
  const auto dweight_init = random_floats(c, seed + 3, -1, 1);

  std::vector<double> out_ref(n * c), rstd_ref(n), dinp_ref(n * c), dweight_ref = to_double(dweight_init);
  ops::cpu::rmsnorm_forward(out_ref.data(), rstd_ref.data(), to_double(x).data(), to_double(w).data(), n, c,
                            double(eps));
  // The backward sees the forward's fp32 rstd, as on the GPU.
  ops::cpu::rmsnorm_backward(dinp_ref.data(), dweight_ref.data(), to_double(dy).data(), to_double(x).data(),
                             to_double(w).data(), rstd_ref.data(), n, c);

  auto padded = [&](const std::vector<float>& v) {
    std::vector<float> p(off, 0.0f);
    p.insert(p.end(), v.begin(), v.end());
    return p;
  };
  DeviceBuffer<__nv_bfloat16> d_x(to_bf16(padded(x))), d_w(to_bf16(padded(w))), d_dy(to_bf16(padded(dy)));
  DeviceBuffer<__nv_bfloat16> d_out(off + n * c), d_dinp(off + n * c);
  DeviceBuffer<float> d_rstd(n), d_dweight(dweight_init);
  DeviceBuffer<float> d_scratch(gpu::rmsnorm_backward_scratch_floats(n, c));

  gpu::rmsnorm_forward(d_out.get() + off, d_rstd.get(), d_x.get() + off, d_w.get() + off, n, c, eps, nullptr);
  gpu::rmsnorm_backward(d_dinp.get() + off, d_dweight.get(), d_dy.get() + off, d_x.get() + off, d_w.get() + off,
                        d_rstd.get(), n, c, d_scratch.get(), nullptr);

  auto out = from_bf16(d_out.download());
  auto dinp = from_bf16(d_dinp.download());
  out.erase(out.begin(), out.begin() + off);
  dinp.erase(dinp.begin(), dinp.begin() + off);
  EXPECT_TRUE(all_close(out, to_float(out_ref), 8e-3, 1e-5, "rmsnorm out (bf16)"));
  EXPECT_TRUE(all_close(d_rstd.download(), to_float(rstd_ref), 1e-5, 0, "rmsnorm rstd (fp32)"));
  EXPECT_TRUE(all_close(dinp, to_float(dinp_ref), 8e-3, 1e-4, "rmsnorm dinp (bf16)"));
  EXPECT_TRUE(all_close(d_dweight.download(), to_float(dweight_ref), 1e-4, 1e-4, "rmsnorm dweight (fp32, +=)"));
}

TEST(RmsnormCuda, MatchesCpuReferenceOnPackedAndOddWidths) {
  const RmsnormCase cases[] = {{1, 1, 0},   {3, 7, 0},    {5, 64, 0},   {17, 1000, 0}, {2, 8, 0},
                               {33, 4096, 0}, {4, 12288, 0}, {700, 24, 0}, {9, 2048, 1},  {1, 4104, 0}};
  uint64_t seed = 100;
  for (const auto& shape : cases) check_rmsnorm(shape, seed += 10);
}

TEST(RmsnormCuda, ManyRowsUseEveryPartialBlock) { check_rmsnorm({1500, 136, 0}, 7); }

TEST(RmsnormCuda, BackwardIsBitwiseDeterministic) {
  const int64_t n = 1024, c = 512;
  DeviceBuffer<__nv_bfloat16> x(to_bf16(random_floats(n * c, 1))), w(to_bf16(random_floats(c, 2))),
      dy(to_bf16(random_floats(n * c, 3))), dinp(n * c), out(n * c);
  DeviceBuffer<float> rstd(n), scratch(gpu::rmsnorm_backward_scratch_floats(n, c));
  gpu::rmsnorm_forward(out.get(), rstd.get(), x.get(), w.get(), n, c, 1e-6f, nullptr);
  std::vector<std::vector<float>> results;
  for (int run = 0; run < 2; ++run) {
    DeviceBuffer<float> dweight(std::vector<float>(c, 0.0f));
    gpu::rmsnorm_backward(dinp.get(), dweight.get(), dy.get(), x.get(), w.get(), rstd.get(), n, c, scratch.get(),
                          nullptr);
    results.push_back(dweight.download());
  }
  EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(), c * sizeof(float)));
}

TEST(RmsnormCuda, RejectsBadSizes) {
  EXPECT_THROW(gpu::rmsnorm_forward(nullptr, nullptr, nullptr, nullptr, 4, 0, 1e-5f, nullptr), Error);
  EXPECT_THROW(gpu::rmsnorm_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, -1, 8, nullptr, nullptr),
               Error);
}

TEST(RmsnormTiming, ProxyShapes) {
  for (const int64_t c : {4096, 2048, 3584}) {
    const int64_t n = 4096;
    DeviceBuffer<__nv_bfloat16> x(to_bf16(random_floats(n * c, 1))), w(to_bf16(random_floats(c, 2, 0.5, 1.5))),
        dy(to_bf16(random_floats(n * c, 3))), out(n * c), dinp(n * c);
    DeviceBuffer<float> rstd(n), dweight(std::vector<float>(c, 0.0f)),
        scratch(gpu::rmsnorm_backward_scratch_floats(n, c));
    const double forward_us = mean_microseconds(
        [&] { gpu::rmsnorm_forward(out.get(), rstd.get(), x.get(), w.get(), n, c, 1e-5f, nullptr); });
    const double backward_us = mean_microseconds([&] {
      gpu::rmsnorm_backward(dinp.get(), dweight.get(), dy.get(), x.get(), w.get(), rstd.get(), n, c, scratch.get(),
                            nullptr);
    });
    const std::string shape = "[" + std::to_string(n) + ", " + std::to_string(c) + "]";
    print_bandwidth(("rmsnorm_forward " + shape).c_str(), forward_us, 2.0 * n * c * 2);
    print_bandwidth(("rmsnorm_backward " + shape).c_str(), backward_us, 3.0 * n * c * 2);
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
