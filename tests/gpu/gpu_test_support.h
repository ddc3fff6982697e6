#pragma once
// What every GPU test needs: device buffers filled from and read back to host
// vectors, outputs poisoned before a kernel runs (so an unwritten element
// fails), bf16 conversion, and a comparison that prints the worst difference
// and never lets a NaN pass.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "moebench/core/cuda_check.h"
#include "moebench/core/dtype.h"

namespace moebench::gpu_testing {

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    MOEBENCH_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), std::max<size_t>(count, 1) * sizeof(T)));
    poison();
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return data_; }
  size_t size() const { return count_; }
  void upload(const std::vector<T>& host) {
    MOEBENCH_CUDA_CHECK(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    MOEBENCH_CUDA_CHECK(cudaDeviceSynchronize());
    MOEBENCH_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  // 0xFF bytes: NaN for every floating type, -1 for integers.
  void poison() { MOEBENCH_CUDA_CHECK(cudaMemset(data_, 0xFF, std::max<size_t>(count_, 1) * sizeof(T))); }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

inline std::vector<float> random_floats(size_t n, uint64_t seed, float low = -1, float high = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& v) {
  std::vector<__nv_bfloat16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t bits = float_to_bf16_bits(v[i]);
    std::memcpy(static_cast<void*>(&out[i]), &bits, sizeof bits);
  }
  return out;
}

inline std::vector<float> from_bf16(const std::vector<__nv_bfloat16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t bits;
    std::memcpy(&bits, static_cast<const void*>(&v[i]), sizeof bits);
    out[i] = bf16_bits_to_float(bits);
  }
  return out;
}

// Values rounded through bf16, as a bf16 kernel sees its inputs.
inline std::vector<float> round_to_bf16(const std::vector<float>& v) { return from_bf16(to_bf16(v)); }

// Passes when max |a - e| <= atol + rtol * |e| everywhere and nothing is NaN;
// prints the worst absolute and relative differences either way.
inline ::testing::AssertionResult all_close(const std::vector<float>& actual, const std::vector<float>& expected,
                                            double rtol, double atol, const char* what) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << what << ": size " << actual.size() << " != " << expected.size();
  double worst_abs = 0, worst_rel = 0;
  size_t worst_index = 0, bad = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i], e = expected[i];
    if (std::isnan(a) || std::isnan(e)) return ::testing::AssertionFailure() << what << ": NaN at " << i;
    const double diff = std::abs(a - e);
    if (diff > atol + rtol * std::abs(e)) ++bad;
    if (diff > worst_abs) worst_abs = diff, worst_index = i;
    worst_rel = std::max(worst_rel, diff / std::max(std::abs(e), 1e-30));
  }
  std::printf("  %-28s max abs %.3e (at %zu: %.6g vs %.6g), max rel %.3e, %zu of %zu outside tolerance\n", what,
              worst_abs, worst_index, actual.empty() ? 0.0 : actual[worst_index],
              expected.empty() ? 0.0 : expected[worst_index], worst_rel, bad, actual.size());
  if (bad) return ::testing::AssertionFailure() << what << ": " << bad << " elements outside rtol " << rtol << " atol " << atol;
  return ::testing::AssertionSuccess();
}

// Norm of the difference over the norm of the reference: the measure for
// large bf16 reductions (GEMMs, attention) where single elements cancel.
inline double relative_l2_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(actual[i])) return INFINITY;
    diff += (double(actual[i]) - expected[i]) * (double(actual[i]) - expected[i]);
    norm += double(expected[i]) * expected[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

}  // namespace moebench::gpu_testing
