// ops::split_qkv / merge_qkv on CUDA against the CPU engine (f32 on the same
// bf16 inputs): both kernel widths (16-byte packs and one channel), with and
// without the rotation, rotary_percent < 1, outputs poisoned first; and the
// time of both at the Mixtral proxy's shape.
#include "moebench/ops/qkv_heads.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"
#include "moebench/core/cuda_allocator.h"
#include "moebench/core/device_transfer.h"
#include "moebench/ops/elementwise.h"

namespace moebench {
namespace {

using namespace gpu_testing;

struct QkvCase {
  int64_t tokens, heads, groups, head_dim;
  double rotary_percent;  // 0: no rotation
};

Tensor host_bf16_values(std::vector<int64_t> shape, uint64_t seed) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return Tensor::from_vector(round_to_bf16(random_floats(size_t(n), seed)), shape);
}

Tensor poisoned_on_gpu(std::vector<int64_t> shape) {
  Tensor t = Tensor::empty(shape, DType::BF16, Device::cuda(0));
  MOEBENCH_CUDA_CHECK(cudaMemset(t.data_ptr(), 0xFF, t.nbytes()));  // NaN: every element must be written
  return t;
}

std::vector<float> values(const Tensor& t) {
  const Tensor f32 = to_host(t).to(DType::F32);
  return std::vector<float>(f32.data<float>(), f32.data<float>() + f32.numel());
}

void check_case(const QkvCase& c) {
  SCOPED_TRACE("tokens " + std::to_string(c.tokens) + " heads " + std::to_string(c.heads) + " groups " +
               std::to_string(c.groups) + " head_dim " + std::to_string(c.head_dim) + " rotary " +
               std::to_string(c.rotary_percent));
  const Device gpu = Device::cuda(0);
  const int64_t fused_width = c.groups * (c.heads / c.groups + 2) * c.head_dim;
  const ops::RopeTable<float> table(c.head_dim, 10000.0, c.tokens + 3, c.rotary_percent > 0 ? c.rotary_percent : 1.0);
  std::vector<int64_t> positions(size_t(c.tokens));
  for (int64_t t = 0; t < c.tokens; ++t) positions[size_t(t)] = (t * 7 + 2) % (c.tokens + 3);
  const int64_t half = table.rot_dim / 2;
  const ops::QkvRotation host_rotation{{&table, Tensor(), Tensor()}, Tensor::from_vector(positions)};
  const ops::QkvRotation device_rotation{
      {&table, to_device(Tensor::from_vector(table.cos, {table.num_positions, half}), gpu),
       to_device(Tensor::from_vector(table.sin, {table.num_positions, half}), gpu)},
      to_device(Tensor::from_vector(positions), gpu)};
  const ops::QkvRotation* on_host = c.rotary_percent > 0 ? &host_rotation : nullptr;
  const ops::QkvRotation* on_device = c.rotary_percent > 0 ? &device_rotation : nullptr;
  const auto on_gpu = [&](const Tensor& t) { return to_device(t.to(DType::BF16), gpu); };

  const Tensor qkv = host_bf16_values({c.tokens, fused_width}, 1);
  Tensor q = Tensor::empty({c.tokens, c.heads, c.head_dim}, DType::F32);
  Tensor k = Tensor::empty({c.tokens, c.groups, c.head_dim}, DType::F32), v = k.clone();
  ops::split_qkv(q, k, v, qkv, on_host);
  Tensor gq = poisoned_on_gpu(q.shape()), gk = poisoned_on_gpu(k.shape()), gv = poisoned_on_gpu(v.shape());
  ops::split_qkv(gq, gk, gv, on_gpu(qkv), on_device);
  EXPECT_TRUE(all_close(values(gq), values(q), 1e-2, 1e-2, "q"));
  EXPECT_TRUE(all_close(values(gk), values(k), 1e-2, 1e-2, "k"));
  EXPECT_TRUE(all_close(values(gv), values(v), 0.0, 0.0, "v (copied)"));

  const Tensor dq = host_bf16_values(q.shape(), 2), dk = host_bf16_values(k.shape(), 3),
               dv = host_bf16_values(v.shape(), 4);
  Tensor dqkv = Tensor::empty({c.tokens, fused_width}, DType::F32);
  ops::merge_qkv(dqkv, dq, dk, dv, on_host);
  Tensor gdqkv = poisoned_on_gpu(dqkv.shape());
  ops::merge_qkv(gdqkv, on_gpu(dq), on_gpu(dk), on_gpu(dv), on_device);
  EXPECT_TRUE(all_close(values(gdqkv), values(dqkv), 1e-2, 1e-2, "dqkv"));
}

TEST(QkvHeadsCuda, SplitAndMergeMatchTheCpuEngine) {
  enable_cuda_tensors();
  for (const QkvCase& c : {QkvCase{37, 8, 2, 128, 1.0},   // 16-byte packs, rotated (Mixtral's heads)
                           QkvCase{37, 8, 2, 128, 0.5},   // packs, half the channels rotated
                           QkvCase{19, 4, 4, 128, 0.0},   // packs, no rotation (Qwen3's split)
                           QkvCase{23, 6, 3, 12, 1.0},    // one channel: rot_dim / 2 = 6
                           QkvCase{23, 4, 2, 16, 0.75},   // one channel: 12 of 16 rotated
                           QkvCase{5, 2, 1, 10, 0.0}})    // one channel, no rotation
    check_case(c);
}

TEST(QkvHeadsTiming, MixtralProxyShape) {
  enable_cuda_tensors();
  const Device gpu = Device::cuda(0);
  const int64_t tokens = 4096, heads = 32, groups = 8, head_dim = 128, fused = (heads + 2 * groups) * head_dim;
  const ops::RopeTable<float> table(head_dim, 1e6, tokens);
  std::vector<int64_t> positions(tokens);
  for (int64_t t = 0; t < tokens; ++t) positions[size_t(t)] = t;
  const ops::QkvRotation rotation{{&table, to_device(Tensor::from_vector(table.cos, {tokens, head_dim / 2}), gpu),
                                   to_device(Tensor::from_vector(table.sin, {tokens, head_dim / 2}), gpu)},
                                  to_device(Tensor::from_vector(positions), gpu)};
  Tensor qkv = poisoned_on_gpu({tokens, fused});
  ops::zero_(qkv);
  Tensor q = poisoned_on_gpu({tokens, heads, head_dim}), k = poisoned_on_gpu({tokens, groups, head_dim}),
         v = poisoned_on_gpu({tokens, groups, head_dim});
  const double bytes = 2.0 * double(qkv.nbytes());
  print_bandwidth("split_qkv + rope, mixtral [4096, 32+8+8 heads x 128]",
                  mean_microseconds([&] { ops::split_qkv(q, k, v, qkv, &rotation); }), bytes);
  print_bandwidth("merge_qkv + rope^T, mixtral [4096, 32+8+8 heads x 128]",
                  mean_microseconds([&] { ops::merge_qkv(qkv, q, k, v, &rotation); }), bytes);
}

}  // namespace
}  // namespace moebench
