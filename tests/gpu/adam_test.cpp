// Fused multi-tensor AdamW against the CPU reference (float64): fp32 main
// weights and moments to fp32 rounding, the bf16 copy to one bf16 step, over
// tensors of odd sizes, one spanning several chunks, one misaligned and one
// without a bf16 copy, for three consecutive steps in one launch each.
#include "moebench/ops/adam.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "gpu_test_support.h"
#include "kernel_timer.h"

namespace moebench {
namespace {

using namespace gpu_testing;
namespace gpu = ops::cuda;

struct HostState {
  std::vector<double> param, exp_avg, exp_avg_sq;
};

TEST(AdamCuda, MultiTensorStepsMatchCpuReference) {
  // Sizes: single element, odd, exactly one chunk, one past a chunk, several chunks.
  const std::vector<int64_t> sizes = {1, 3, 4099, gpu::kAdamChunkElements, gpu::kAdamChunkElements + 1, 200003};
  const size_t misaligned_tensor = 2;  // its arrays start one float past 16-byte alignment
  const size_t tensor_without_copy = 3;
  ops::AdamHyperparams hp;
  hp.lr = 3e-3;
  hp.beta1 = 0.9;
  hp.beta2 = 0.95;
  hp.eps = 1e-8;
  hp.weight_decay = 0.1;

  std::vector<HostState> host(sizes.size());
  std::vector<std::unique_ptr<DeviceBuffer<float>>> params, ms, vs, grads;
  std::vector<std::unique_ptr<DeviceBuffer<__nv_bfloat16>>> models;
  std::vector<gpu::AdamTensor> tensors;
  for (size_t t = 0; t < sizes.size(); ++t) {
    const int64_t n = sizes[t];
    const int64_t shift = t == misaligned_tensor ? 1 : 0;
    auto p = random_floats(n, 10 * t + 1, -1, 1);
    auto m = random_floats(n, 10 * t + 2, -0.01f, 0.01f);
    auto v = random_floats(n, 10 * t + 3, 0, 1e-4f);
    host[t] = {{p.begin(), p.end()}, {m.begin(), m.end()}, {v.begin(), v.end()}};
    p.insert(p.begin(), shift, 0.0f);
    m.insert(m.begin(), shift, 0.0f);
    v.insert(v.begin(), shift, 0.0f);
    params.push_back(std::make_unique<DeviceBuffer<float>>(p));
    ms.push_back(std::make_unique<DeviceBuffer<float>>(m));
    vs.push_back(std::make_unique<DeviceBuffer<float>>(v));
    grads.push_back(std::make_unique<DeviceBuffer<float>>(shift + n));
    models.push_back(std::make_unique<DeviceBuffer<__nv_bfloat16>>(shift + n));
    tensors.push_back({params[t]->get() + shift, ms[t]->get() + shift, vs[t]->get() + shift, grads[t]->get() + shift,
                       t == tensor_without_copy ? nullptr : models[t]->get() + shift, n});
  }
  const auto chunks = gpu::split_into_adam_chunks(tensors);
  DeviceBuffer<gpu::AdamTensor> d_chunks(chunks);

  for (int64_t step = 1; step <= 3; ++step) {
    for (size_t t = 0; t < sizes.size(); ++t) {
      const int64_t shift = t == misaligned_tensor ? 1 : 0;
      auto g = random_floats(sizes[t], 1000 * step + t, -0.1f, 0.1f);
      std::vector<double> g_d(g.begin(), g.end());
      ops::cpu::adamw_step(host[t].param.data(), host[t].exp_avg.data(), host[t].exp_avg_sq.data(), g_d.data(),
                           sizes[t], step, hp);
      g.insert(g.begin(), shift, 0.0f);
      grads[t]->upload(g);
    }
    gpu::adamw_step(d_chunks.get(), int64_t(chunks.size()), step, hp, nullptr);
  }
  for (size_t t = 0; t < sizes.size(); ++t) {
    SCOPED_TRACE("tensor " + std::to_string(t) + " of " + std::to_string(sizes[t]) + " elements");
    const int64_t shift = t == misaligned_tensor ? 1 : 0;
    auto strip = [&](std::vector<float> v) { return std::vector<float>(v.begin() + shift, v.end()); };
    auto as_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
    EXPECT_TRUE(all_close(strip(params[t]->download()), as_float(host[t].param), 1e-6, 1e-7, "adam main param"));
    EXPECT_TRUE(all_close(strip(ms[t]->download()), as_float(host[t].exp_avg), 1e-5, 1e-8, "adam exp_avg"));
    EXPECT_TRUE(all_close(strip(vs[t]->download()), as_float(host[t].exp_avg_sq), 1e-5, 1e-12, "adam exp_avg_sq"));
    if (t == tensor_without_copy) {
      // Untouched: still the 0xFF poison (NaN) everywhere.
      for (float x : from_bf16(models[t]->download())) ASSERT_TRUE(std::isnan(x));
    } else {
      EXPECT_TRUE(all_close(strip(from_bf16(models[t]->download())), as_float(host[t].param), 4e-3, 1e-7,
                            "adam model param (bf16)"));
    }
  }
}

TEST(AdamCuda, RejectsBadArguments) {
  EXPECT_THROW(gpu::adamw_step(nullptr, 1, 0, ops::AdamHyperparams{}, nullptr), Error);
  gpu::AdamTensor missing_grad;
  missing_grad.numel = 4;
  EXPECT_THROW(gpu::split_into_adam_chunks({missing_grad}), Error);
  EXPECT_NO_THROW(gpu::adamw_step(nullptr, 0, 1, ops::AdamHyperparams{}, nullptr));
}

TEST(AdamTiming, MixtralLayerSizedGroup) {
  // One group in the proportions of a Mixtral-8x7B layer: one expert's fc1 [28672, 4096]
  // and fc2 [4096, 14336], attention qkv [6144, 4096] and proj [4096, 4096], two norms:
  // 218M parameters, 3.9 GB of optimizer arrays.
  std::vector<int64_t> sizes = {28672LL * 4096, 4096LL * 14336, 6144LL * 4096, 4096LL * 4096, 4096, 4096};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  DeviceBuffer<float> p(total), m(total), v(total), g(total);
  DeviceBuffer<__nv_bfloat16> w(total);
  // Byte patterns give plain values: 0x3F3F3F3F = 0.747, 0x3C3C3C3C = 0.0115.
  MOEBENCH_CUDA_CHECK(cudaMemset(p.get(), 0x3F, total * sizeof(float)));
  MOEBENCH_CUDA_CHECK(cudaMemset(g.get(), 0x3C, total * sizeof(float)));
  MOEBENCH_CUDA_CHECK(cudaMemset(m.get(), 0, total * sizeof(float)));
  MOEBENCH_CUDA_CHECK(cudaMemset(v.get(), 0, total * sizeof(float)));
  std::vector<gpu::AdamTensor> tensors;
  int64_t offset = 0;
  for (int64_t s : sizes) {
    tensors.push_back({p.get() + offset, m.get() + offset, v.get() + offset, g.get() + offset, w.get() + offset, s});
    offset += s;
  }
  const auto chunks = gpu::split_into_adam_chunks(tensors);
  DeviceBuffer<gpu::AdamTensor> d_chunks(chunks);
  ops::AdamHyperparams hp;
  hp.lr = 1e-4;
  hp.weight_decay = 0.1;
  gpu::adamw_step(d_chunks.get(), int64_t(chunks.size()), 1, hp, nullptr);
  std::vector<float> first(1);
  MOEBENCH_CUDA_CHECK(cudaMemcpy(first.data(), p.get(), sizeof(float), cudaMemcpyDeviceToHost));
  // Correctness of the first step at this size, element 0.
  double param = 0, m0 = 0, v0 = 0, grad = 0;
  const uint32_t p_bits = 0x3F3F3F3Fu, g_bits = 0x3C3C3C3Cu;
  float pf, gf;
  std::memcpy(&pf, &p_bits, 4);
  std::memcpy(&gf, &g_bits, 4);
  param = pf, grad = gf;
  ops::cpu::adamw_step(&param, &m0, &v0, &grad, 1, 1, hp);
  EXPECT_NEAR(first[0], param, 1e-6);
  int64_t step = 2;
  const double us = mean_microseconds([&] { gpu::adamw_step(d_chunks.get(), int64_t(chunks.size()), step++, hp, nullptr); });
  print_bandwidth(("adamw_step " + std::to_string(total) + " params").c_str(), us, 30.0 * total);
}

}  // namespace
}  // namespace moebench
