// Fused multi-tensor AdamW against the CPU reference (float64): fp32 main
// weights and moments to fp32 rounding, the bf16 copy to one bf16 step, over
// tensors of odd sizes, one spanning several chunks, one misaligned and one
// without a bf16 copy, for three consecutive steps in one launch each. With
// bf16 moments (the precision-aware optimizer) against the CPU twin that
// stores them the same way, step by step from the same state.
#include "moebench/ops/adam.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
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
  hp.grad_scale = 0.37;  // a clipping factor, applied as the gradients are read

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

// The CPU twin stores a bf16 moment as moebench::bfloat16, the kernel as
// __nv_bfloat16: the same bits.
template <typename Moment>
struct TwinOf {
  using type = float;
};
template <>
struct TwinOf<__nv_bfloat16> {
  using type = bfloat16;
};

template <typename To, typename From>
std::vector<To> same_bits(const std::vector<From>& from) {
  static_assert(sizeof(To) == sizeof(From));
  std::vector<To> to(from.size());
  std::memcpy(static_cast<void*>(to.data()), static_cast<const void*>(from.data()), from.size() * sizeof(From));
  return to;
}

template <typename T>
std::vector<float> as_floats(const std::vector<T>& values) {
  return std::vector<float>(values.begin(), values.end());
}

// `values` into `buffer` from element `offset` on, and back.
template <typename T>
void upload_at(DeviceBuffer<T>& buffer, int64_t offset, const std::vector<T>& values) {
  MOEBENCH_CUDA_CHECK(cudaMemcpy(buffer.get() + offset, values.data(), values.size() * sizeof(T),
                                 cudaMemcpyHostToDevice));
}
template <typename T>
std::vector<T> download_from(const DeviceBuffer<T>& buffer, int64_t offset) {
  const std::vector<T> all = buffer.download();
  return std::vector<T>(all.begin() + offset, all.end());
}

// A moment of the kernel against the twin's: within `rtol` (fp32: a few fp32
// ulps; bf16: one bf16 step, 2^-7) plus `atol`; bf16 moments also bit for bit
// but for at most 0.1% of them, or one (a float result next to a rounding
// boundary, where the GPU's fused multiply-adds and the CPU's separate
// multiplies and adds round apart).
template <typename Moment>
void expect_moment_close(const std::vector<Moment>& kernel, const std::vector<typename TwinOf<Moment>::type>& twin,
                         double atol, const char* what) {
  constexpr bool bf16 = std::is_same_v<Moment, __nv_bfloat16>;
  EXPECT_TRUE(all_close(as_floats(same_bits<typename TwinOf<Moment>::type>(kernel)), as_floats(twin),
                        bf16 ? 0x1p-7 : 1e-5, atol, what));
  if constexpr (bf16) {
    const std::vector<uint16_t> kernel_bits = same_bits<uint16_t>(kernel), twin_bits = same_bits<uint16_t>(twin);
    size_t different = 0;
    for (size_t i = 0; i < twin_bits.size(); ++i) different += kernel_bits[i] != twin_bits[i];
    std::printf("  %-28s %zu of %zu not bit-identical\n", what, different, twin_bits.size());
    EXPECT_LE(different, std::max<size_t>(1, twin_bits.size() / 1000)) << what;
  }
}

// One kernel step at a time against the CPU twin with the same moment storage
// (ops::cpu::adamw_step<float, m, v>), each step from the twin's state.
template <typename ExpAvg, typename ExpAvgSq>
void expect_kernel_steps_match_cpu_twin() {
  using TwinExpAvg = typename TwinOf<ExpAvg>::type;
  using TwinExpAvgSq = typename TwinOf<ExpAvgSq>::type;
  const std::vector<int64_t> sizes = {1, 3, 4099, gpu::kAdamChunkElements, gpu::kAdamChunkElements + 1, 200003};
  const size_t misaligned_tensor = 2;  // its arrays start one element past alignment: the element-wise path
  const size_t tensor_without_copy = 3;
  ops::AdamHyperparams hp;
  hp.lr = 3e-3;
  hp.beta2 = 0.95;
  hp.weight_decay = 0.1;

  struct Twin {
    std::vector<float> param;
    std::vector<TwinExpAvg> exp_avg;
    std::vector<TwinExpAvgSq> exp_avg_sq;
  };
  std::vector<Twin> twins(sizes.size());
  std::vector<std::unique_ptr<DeviceBuffer<float>>> params, grads;
  std::vector<std::unique_ptr<DeviceBuffer<ExpAvg>>> ms;
  std::vector<std::unique_ptr<DeviceBuffer<ExpAvgSq>>> vs;
  std::vector<std::unique_ptr<DeviceBuffer<__nv_bfloat16>>> models;
  std::vector<gpu::AdamTensorOf<ExpAvg, ExpAvgSq>> tensors;
  for (size_t t = 0; t < sizes.size(); ++t) {
    const int64_t n = sizes[t];
    const int64_t shift = t == misaligned_tensor ? 1 : 0;
    const auto m = random_floats(n, 10 * t + 2, -0.01f, 0.01f);
    const auto v = random_floats(n, 10 * t + 3, 2.5e-5f, 1e-4f);  // sqrt(v) >= |m| / 2: bounded updates
    twins[t] = {random_floats(n, 10 * t + 1, -1, 1), {m.begin(), m.end()}, {v.begin(), v.end()}};
    params.push_back(std::make_unique<DeviceBuffer<float>>(shift + n));
    ms.push_back(std::make_unique<DeviceBuffer<ExpAvg>>(shift + n));
    vs.push_back(std::make_unique<DeviceBuffer<ExpAvgSq>>(shift + n));
    grads.push_back(std::make_unique<DeviceBuffer<float>>(shift + n));
    models.push_back(std::make_unique<DeviceBuffer<__nv_bfloat16>>(shift + n));
    tensors.push_back({params[t]->get() + shift, ms[t]->get() + shift, vs[t]->get() + shift, grads[t]->get() + shift,
                       t == tensor_without_copy ? nullptr : models[t]->get() + shift, n});
  }
  const auto chunks = gpu::split_into_adam_chunks(tensors);
  DeviceBuffer<gpu::AdamTensorOf<ExpAvg, ExpAvgSq>> d_chunks(chunks);

  for (int64_t step = 1; step <= 3; ++step) {
    for (size_t t = 0; t < sizes.size(); ++t) {
      const int64_t shift = t == misaligned_tensor ? 1 : 0;
      upload_at(*params[t], shift, twins[t].param);
      upload_at(*ms[t], shift, same_bits<ExpAvg>(twins[t].exp_avg));
      upload_at(*vs[t], shift, same_bits<ExpAvgSq>(twins[t].exp_avg_sq));
      const auto g = random_floats(sizes[t], 1000 * step + t, -0.1f, 0.1f);
      upload_at(*grads[t], shift, g);
      ops::cpu::adamw_step(twins[t].param.data(), twins[t].exp_avg.data(), twins[t].exp_avg_sq.data(), g.data(),
                           sizes[t], step, hp);
    }
    gpu::adamw_step(d_chunks.get(), int64_t(chunks.size()), step, hp, nullptr);
    for (size_t t = 0; t < sizes.size(); ++t) {
      SCOPED_TRACE("step " + std::to_string(step) + ", tensor " + std::to_string(t) + " of " +
                   std::to_string(sizes[t]) + " elements");
      const int64_t shift = t == misaligned_tensor ? 1 : 0;
      EXPECT_TRUE(all_close(download_from(*params[t], shift), twins[t].param, 1e-6, 1e-7, "adam main param"));
      expect_moment_close(download_from(*ms[t], shift), twins[t].exp_avg, 1e-8, "adam exp_avg");
      expect_moment_close(download_from(*vs[t], shift), twins[t].exp_avg_sq, 1e-12, "adam exp_avg_sq");
      if (t == tensor_without_copy) {
        for (float x : from_bf16(models[t]->download())) ASSERT_TRUE(std::isnan(x));
      } else {
        EXPECT_TRUE(all_close(from_bf16(download_from(*models[t], shift)), round_to_bf16(twins[t].param), 4e-3, 1e-7,
                              "adam model param (bf16)"));
      }
    }
  }
}

TEST(AdamCuda, Bf16MomentsMatchCpuTwin) { expect_kernel_steps_match_cpu_twin<__nv_bfloat16, __nv_bfloat16>(); }

TEST(AdamCuda, Bf16ExpAvgOnlyMatchesCpuTwin) { expect_kernel_steps_match_cpu_twin<__nv_bfloat16, float>(); }

TEST(AdamCuda, Bf16ExpAvgSqOnlyMatchesCpuTwin) { expect_kernel_steps_match_cpu_twin<float, __nv_bfloat16>(); }

TEST(AdamCuda, RejectsBadArguments) {
  const gpu::AdamTensor* no_chunks = nullptr;
  EXPECT_THROW(gpu::adamw_step(no_chunks, 1, 0, ops::AdamHyperparams{}, nullptr), Error);
  gpu::AdamTensor missing_grad;
  missing_grad.numel = 4;
  EXPECT_THROW(gpu::split_into_adam_chunks(std::vector<gpu::AdamTensor>{missing_grad}), Error);
  EXPECT_NO_THROW(gpu::adamw_step(no_chunks, 0, 1, ops::AdamHyperparams{}, nullptr));
}

// One group in the proportions of a Mixtral-8x7B layer: one expert's fc1 [28672, 4096]
// and fc2 [4096, 14336], attention qkv [6144, 4096] and proj [4096, 4096], two norms:
// 218M parameters, 3.9 GB of optimizer arrays with fp32 moments. A step moves
// 14 bytes per parameter besides the moments, read and written once each.
template <typename ExpAvg, typename ExpAvgSq>
void time_mixtral_layer_sized_group(const std::string& name) {
  std::vector<int64_t> sizes = {28672LL * 4096, 4096LL * 14336, 6144LL * 4096, 4096LL * 4096, 4096, 4096};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  DeviceBuffer<float> p(total), g(total);
  DeviceBuffer<ExpAvg> m(total);
  DeviceBuffer<ExpAvgSq> v(total);
  DeviceBuffer<__nv_bfloat16> w(total);
  // Byte patterns give plain values: 0x3F3F3F3F = 0.747, 0x3C3C3C3C = 0.0115.
  MOEBENCH_CUDA_CHECK(cudaMemset(p.get(), 0x3F, total * sizeof(float)));
  MOEBENCH_CUDA_CHECK(cudaMemset(g.get(), 0x3C, total * sizeof(float)));
  MOEBENCH_CUDA_CHECK(cudaMemset(m.get(), 0, total * sizeof(ExpAvg)));
  MOEBENCH_CUDA_CHECK(cudaMemset(v.get(), 0, total * sizeof(ExpAvgSq)));
  std::vector<gpu::AdamTensorOf<ExpAvg, ExpAvgSq>> tensors;
  int64_t offset = 0;
  for (int64_t s : sizes) {
    tensors.push_back({p.get() + offset, m.get() + offset, v.get() + offset, g.get() + offset, w.get() + offset, s});
    offset += s;
  }
  const auto chunks = gpu::split_into_adam_chunks(tensors);
  DeviceBuffer<gpu::AdamTensorOf<ExpAvg, ExpAvgSq>> d_chunks(chunks);
  ops::AdamHyperparams hp;
  hp.lr = 1e-4;
  hp.weight_decay = 0.1;
  gpu::adamw_step(d_chunks.get(), int64_t(chunks.size()), 1, hp, nullptr);
  std::vector<float> first(1);
  MOEBENCH_CUDA_CHECK(cudaMemcpy(first.data(), p.get(), sizeof(float), cudaMemcpyDeviceToHost));
  // Correctness of the first step at this size, element 0 (from zero moments,
  // so the rounding of the new ones does not enter the first update).
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
  const double bytes_per_parameter = 14.0 + 2.0 * (sizeof(ExpAvg) + sizeof(ExpAvgSq));
  print_bandwidth(("adamw_step " + std::to_string(total) + " params, " + name).c_str(), us,
                  bytes_per_parameter * total);
}

TEST(AdamTiming, MixtralLayerSizedGroup) { time_mixtral_layer_sized_group<float, float>("fp32 m, v"); }

TEST(AdamTiming, MixtralLayerSizedGroupBf16Moments) {
  time_mixtral_layer_sized_group<__nv_bfloat16, __nv_bfloat16>("bf16 m, v");
}

}  // namespace
}  // namespace moebench
