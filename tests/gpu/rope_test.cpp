// RoPE CUDA kernels against the CPU reference (float64 table and math on the
// same bf16 inputs): bf16 outputs to bf16 rounding, half and interleaved
// layouts, rotary_percent < 1, YaRN, out of place and in place, forward and backward.
#include "moebench/ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"

namespace moebench {
namespace {

using namespace gpu_testing;
namespace gpu = ops::cuda;

struct RopeCase {
  int64_t tokens, heads, head_dim;
  double rotary_percent;
  ops::RopeLayout layout;
  bool yarn;
};

std::vector<int64_t> random_positions(int64_t tokens, int64_t num_positions, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> dist(0, num_positions - 1);
  std::vector<int64_t> positions(tokens);
  for (auto& p : positions) p = dist(rng);
  if (tokens > 0) positions[0] = num_positions - 1;
  return positions;
}

void check_rope(const RopeCase& rc, bool in_place, uint64_t seed) {
  const bool interleaved = rc.layout == ops::RopeLayout::kInterleaved;
  SCOPED_TRACE("tokens=" + std::to_string(rc.tokens) + " heads=" + std::to_string(rc.heads) +
               " head_dim=" + std::to_string(rc.head_dim) + " percent=" + std::to_string(rc.rotary_percent) +
               (interleaved ? " interleaved" : " half") + (rc.yarn ? " yarn" : "") + (in_place ? " in place" : ""));
  const int64_t num_positions = 4096;
  std::optional<ops::YarnScaling> yarn;
  if (rc.yarn) yarn = ops::YarnScaling{40.0, 4096, 32.0, 1.0, 0.707, 0.707};
  const ops::RopeTable<double> table_d(rc.head_dim, 10000.0, num_positions, rc.rotary_percent, yarn);
  const ops::RopeTable<float> table_f(rc.head_dim, 10000.0, num_positions, rc.rotary_percent, yarn);
  const int64_t count = rc.tokens * rc.heads * rc.head_dim;
  const auto x = round_to_bf16(random_floats(count, seed, -1, 1));
  const auto dout = round_to_bf16(random_floats(count, seed + 1, -1, 1));
  const auto positions = random_positions(rc.tokens, num_positions, seed + 2);
  const std::vector<double> x_d(x.begin(), x.end()), dout_d(dout.begin(), dout.end());
  std::vector<double> out_ref(count), dx_ref(count);
  ops::cpu::rope_forward(out_ref.data(), x_d.data(), table_d, positions.data(), rc.tokens, rc.heads, rc.head_dim,
                         rc.layout);
  ops::cpu::rope_backward(dx_ref.data(), dout_d.data(), table_d, positions.data(), rc.tokens, rc.heads, rc.head_dim,
                          rc.layout);

  DeviceBuffer<float> cos(table_f.cos), sin(table_f.sin);
  const gpu::RopeTableView view{cos.get(), sin.get(), table_f.rot_dim, table_f.num_positions};
  DeviceBuffer<int64_t> d_positions(positions);
  DeviceBuffer<__nv_bfloat16> d_x(to_bf16(x)), d_dout(to_bf16(dout)), d_out(count), d_dx(count);
  __nv_bfloat16* out = in_place ? d_x.get() : d_out.get();
  __nv_bfloat16* dx = in_place ? d_dout.get() : d_dx.get();
  gpu::rope_forward(out, d_x.get(), view, d_positions.get(), rc.tokens, rc.heads, rc.head_dim, rc.layout, nullptr);
  gpu::rope_backward(dx, d_dout.get(), view, d_positions.get(), rc.tokens, rc.heads, rc.head_dim, rc.layout, nullptr);
  const auto out_host = from_bf16(in_place ? d_x.download() : d_out.download());
  const auto dx_host = from_bf16(in_place ? d_dout.download() : d_dx.download());
  EXPECT_TRUE(all_close(out_host, std::vector<float>(out_ref.begin(), out_ref.end()), 8e-3, 1e-5, "rope out (bf16)"));
  EXPECT_TRUE(all_close(dx_host, std::vector<float>(dx_ref.begin(), dx_ref.end()), 8e-3, 1e-5, "rope dx (bf16)"));
}

TEST(RopeCuda, MatchesCpuReference) {
  using ops::RopeLayout;
  const RopeCase cases[] = {
      {5, 3, 128, 1.0, RopeLayout::kHalf, false},         // Llama / Mixtral
      {5, 3, 128, 1.0, RopeLayout::kInterleaved, false},
      {7, 2, 128, 0.5, RopeLayout::kHalf, false},         // rotary_percent 0.5
      {4, 16, 64, 1.0, RopeLayout::kInterleaved, true},   // DeepSeek-V2 rope part with YaRN
      {3, 5, 12, 0.5, RopeLayout::kHalf, false},          // rot_dim 6 of 12
      {3, 5, 12, 0.5, RopeLayout::kInterleaved, false},
      {2, 2, 256, 1.0, RopeLayout::kInterleaved, false},  // the largest rot_dim
      {1, 1, 2, 1.0, RopeLayout::kHalf, false},
  };
  uint64_t seed = 1;
  for (const RopeCase& rc : cases) {
    check_rope(rc, false, seed += 3);
    check_rope(rc, true, seed += 3);
  }
}

TEST(RopeCuda, RejectsBadShapes) {
  const gpu::RopeTableView too_wide{nullptr, nullptr, 258, 10};
  EXPECT_THROW(gpu::rope_forward(nullptr, nullptr, too_wide, nullptr, 1, 1, 258, ops::RopeLayout::kHalf, nullptr),
               Error);
  const gpu::RopeTableView view{nullptr, nullptr, 64, 10};
  EXPECT_THROW(gpu::rope_backward(nullptr, nullptr, view, nullptr, 1, 1, 32, ops::RopeLayout::kHalf, nullptr), Error);
  EXPECT_NO_THROW(gpu::rope_forward(nullptr, nullptr, view, nullptr, 0, 4, 64, ops::RopeLayout::kHalf, nullptr));
}

TEST(RopeTiming, ProxyShapes) {
  struct Shape {
    const char* name;
    int64_t heads, head_dim;
    ops::RopeLayout layout;
  };
  const int64_t tokens = 4096;
  for (const Shape& s : {Shape{"mixtral q 32x128 half", 32, 128, ops::RopeLayout::kHalf},
                         Shape{"qwen2 q 28x128 half", 28, 128, ops::RopeLayout::kHalf},
                         Shape{"deepseek q_pe 16x64 interleaved", 16, 64, ops::RopeLayout::kInterleaved}}) {
    const ops::RopeTable<float> table(s.head_dim, 10000.0, tokens);
    DeviceBuffer<float> cos(table.cos), sin(table.sin);
    const gpu::RopeTableView view{cos.get(), sin.get(), table.rot_dim, table.num_positions};
    std::vector<int64_t> positions(tokens);
    for (int64_t t = 0; t < tokens; ++t) positions[t] = t;
    DeviceBuffer<int64_t> d_positions(positions);
    const int64_t count = tokens * s.heads * s.head_dim;
    DeviceBuffer<__nv_bfloat16> x(count), out(count);
    MOEBENCH_CUDA_CHECK(cudaMemset(x.get(), 0x3F, count * 2));  // bf16 0x3F3F = 0.746 everywhere
    const double forward_us = mean_microseconds([&] {
      gpu::rope_forward(out.get(), x.get(), view, d_positions.get(), tokens, s.heads, s.head_dim, s.layout, nullptr);
    });
    const double backward_us = mean_microseconds([&] {
      gpu::rope_backward(out.get(), x.get(), view, d_positions.get(), tokens, s.heads, s.head_dim, s.layout, nullptr);
    });
    print_bandwidth((std::string("rope_forward ") + s.name).c_str(), forward_us, 4.0 * count);
    print_bandwidth((std::string("rope_backward ") + s.name).c_str(), backward_us, 4.0 * count);
    // Correctness at this shape: position 0 is the identity, so token 0 keeps its values.
    gpu::rope_forward(out.get(), x.get(), view, d_positions.get(), tokens, s.heads, s.head_dim, s.layout, nullptr);
    const auto out_host = from_bf16(out.download());
    for (int64_t j = 0; j < s.heads * s.head_dim; ++j) ASSERT_EQ(out_host[j], 0.74609375f) << "channel " << j;
  }
}

}  // namespace
}  // namespace moebench
