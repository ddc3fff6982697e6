// SwiGLU CUDA kernels against the CPU reference (float64 on bf16-rounded
// inputs): bf16 outputs agree to bf16 rounding, on the 16-byte pack path, the
// element-wise path (odd F, misaligned pointers) and saturated gates.
#include "moebench/ops/swiglu.h"

#include <gtest/gtest.h>

#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"

namespace moebench {
namespace {

using namespace gpu_testing;
namespace gpu = ops::cuda;

void check_swiglu(int64_t n, int64_t f, int64_t misalign, float range, uint64_t seed) {
  SCOPED_TRACE("n=" + std::to_string(n) + " f=" + std::to_string(f) + " misalign=" + std::to_string(misalign));
  const auto inp = round_to_bf16(random_floats(n * 2 * f, seed, -range, range));
  const auto dout = round_to_bf16(random_floats(n * f, seed + 1, -1, 1));
  std::vector<double> inp_d(inp.begin(), inp.end()), dout_d(dout.begin(), dout.end());
  std::vector<double> out_ref(n * f), dinp_ref(n * 2 * f);
  ops::cpu::swiglu_forward(out_ref.data(), inp_d.data(), n, f);
  ops::cpu::swiglu_backward(dinp_ref.data(), dout_d.data(), inp_d.data(), n, f);

  auto shifted = [&](const std::vector<float>& v) {
    std::vector<float> p(misalign, 0.0f);
    p.insert(p.end(), v.begin(), v.end());
    return to_bf16(p);
  };
  DeviceBuffer<__nv_bfloat16> d_inp(shifted(inp)), d_dout(shifted(dout)), d_out(misalign + n * f),
      d_dinp(misalign + n * 2 * f);
  gpu::swiglu_forward(d_out.get() + misalign, d_inp.get() + misalign, n, f, nullptr);
  gpu::swiglu_backward(d_dinp.get() + misalign, d_dout.get() + misalign, d_inp.get() + misalign, n, f, nullptr);
  auto out = from_bf16(d_out.download());
  auto dinp = from_bf16(d_dinp.download());
  out.erase(out.begin(), out.begin() + misalign);
  dinp.erase(dinp.begin(), dinp.begin() + misalign);
  // bf16 output rounding (2^-9 relative) plus __expf's few ulp.
  EXPECT_TRUE(all_close(out, std::vector<float>(out_ref.begin(), out_ref.end()), 8e-3, 1e-6, "swiglu out (bf16)"));
  EXPECT_TRUE(
      all_close(dinp, std::vector<float>(dinp_ref.begin(), dinp_ref.end()), 8e-3, 1e-6, "swiglu dinp (bf16)"));
}

TEST(SwigluCuda, MatchesCpuReference) {
  check_swiglu(1, 1, 0, 4, 1);
  check_swiglu(3, 5, 0, 4, 2);
  check_swiglu(7, 8, 0, 4, 3);
  check_swiglu(33, 1408, 0, 4, 4);
  check_swiglu(16, 14336, 0, 4, 5);
  check_swiglu(5, 1000, 0, 4, 6);
  check_swiglu(9, 64, 3, 4, 7);   // misaligned: element-wise path
  check_swiglu(4, 256, 0, 60, 8);  // saturated sigmoid at both ends
}

TEST(SwigluCuda, EmptyAndBadSizes) {
  EXPECT_NO_THROW(gpu::swiglu_forward(nullptr, nullptr, 0, 8, nullptr));
  EXPECT_THROW(gpu::swiglu_forward(nullptr, nullptr, 4, 0, nullptr), Error);
  EXPECT_THROW(gpu::swiglu_backward(nullptr, nullptr, nullptr, -1, 8, nullptr), Error);
}

TEST(SwigluTiming, ProxyShapes) {
  // Routed-expert fc1 outputs at seq 4096: Mixtral (top-2 x 14336), DeepSeek-V2-Lite
  // (top-6 x 1408), Qwen2-57B (top-8 x 2560).
  struct Shape {
    const char* name;
    int64_t n, f;
  };
  for (const Shape& s : {Shape{"mixtral 8192x14336", 8192, 14336}, Shape{"deepseek 24576x1408", 24576, 1408},
                         Shape{"qwen2 32768x2560", 32768, 2560}}) {
    DeviceBuffer<__nv_bfloat16> inp(to_bf16(random_floats(s.n * 2 * s.f, 1, -4, 4))),
        dout(to_bf16(random_floats(s.n * s.f, 2))), out(s.n * s.f), dinp(s.n * 2 * s.f);
    const double forward_us = mean_microseconds([&] { gpu::swiglu_forward(out.get(), inp.get(), s.n, s.f, nullptr); });
    const double backward_us =
        mean_microseconds([&] { gpu::swiglu_backward(dinp.get(), dout.get(), inp.get(), s.n, s.f, nullptr); });
    print_bandwidth((std::string("swiglu_forward ") + s.name).c_str(), forward_us, 3.0 * s.n * s.f * 2);
    print_bandwidth((std::string("swiglu_backward ") + s.name).c_str(), backward_us, 5.0 * s.n * s.f * 2);
    // Correctness at this shape: the first row.
    const auto inp_host = from_bf16(inp.download());
    const auto out_host = from_bf16(out.download());
    std::vector<double> row(inp_host.begin(), inp_host.begin() + 2 * s.f), ref(s.f);
    ops::cpu::swiglu_forward(ref.data(), row.data(), 1, s.f);
    EXPECT_TRUE(all_close(std::vector<float>(out_host.begin(), out_host.begin() + s.f),
                          std::vector<float>(ref.begin(), ref.end()), 8e-3, 1e-6, "swiglu out, row 0"));
  }
}

}  // namespace
}  // namespace moebench
