// The caching device allocator (size classes, reuse per stream, statistics,
// empty_cache) and the host <-> device tensor copies built on it.
#include "moebench/core/cuda_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "moebench/core/cuda_check.h"
#include "moebench/core/device_transfer.h"
#include "moebench/core/tensor.h"

namespace moebench {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

TEST(CudaAllocator, SizeClasses) {
  EXPECT_EQ(CudaCachingAllocator::rounded_size(1), 512u);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(512), 512u);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(513), 1024u);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(kMiB), kMiB);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(kMiB + 1), 2 * kMiB);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(3 * kMiB), 4 * kMiB);
}

TEST(CudaAllocator, FreedBlocksAreReusedOnTheirStreamAndCounted) {
  auto& allocator = CudaCachingAllocator::instance();
  cudaStream_t other;
  MOEBENCH_CUDA_CHECK(cudaStreamCreate(&other));
  allocator.empty_cache();  // so that no block cached by an earlier test answers first
  const CudaAllocatorStats before = allocator.stats(0);

  void* first = allocator.allocate(1000, 0, nullptr);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 256, 0u);
  CudaAllocatorStats now = allocator.stats(0);
  EXPECT_EQ(now.allocated_bytes - before.allocated_bytes, 1024u);
  allocator.free(first);
  EXPECT_EQ(allocator.stats(0).allocated_bytes, before.allocated_bytes);

  void* again = allocator.allocate(900, 0, nullptr);  // same class, same stream: the cached block
  EXPECT_EQ(again, first);
  void* elsewhere = allocator.allocate(900, 0, other);  // another stream never sees it
  EXPECT_NE(elsewhere, first);
  now = allocator.stats(0);
  EXPECT_EQ(now.cache_hits - before.cache_hits, 1);
  EXPECT_EQ(now.allocations - before.allocations, 3);
  EXPECT_GE(now.peak_allocated_bytes, before.allocated_bytes + 2048);
  allocator.free(again);
  allocator.free(elsewhere);
  allocator.free(nullptr);
  MOEBENCH_CUDA_CHECK(cudaStreamDestroy(other));
}

TEST(CudaAllocator, SmallRequestsDoNotPinLargeBlocks) {
  auto& allocator = CudaCachingAllocator::instance();
  allocator.empty_cache();
  void* large = allocator.allocate(64 * kMiB, 0, nullptr);
  allocator.free(large);
  void* small = allocator.allocate(2 * kMiB, 0, nullptr);
  EXPECT_NE(small, large);
  void* fitting = allocator.allocate(63 * kMiB, 0, nullptr);  // within 1/8 of the size: reused
  EXPECT_EQ(fitting, large);
  allocator.free(small);
  allocator.free(fitting);
}

TEST(CudaAllocator, EmptyCacheReturnsCachedMemoryAndPeakResets) {
  auto& allocator = CudaCachingAllocator::instance();
  void* block = allocator.allocate(10 * kMiB, 0, nullptr);
  const CudaAllocatorStats with_block = allocator.stats(0);
  allocator.free(block);
  EXPECT_GE(allocator.stats(0).reserved_bytes, allocator.stats(0).allocated_bytes + 10 * kMiB);
  allocator.empty_cache();
  const CudaAllocatorStats emptied = allocator.stats(0);
  EXPECT_EQ(emptied.reserved_bytes, emptied.allocated_bytes);
  EXPECT_GE(emptied.peak_allocated_bytes, with_block.allocated_bytes);
  allocator.reset_peak(0);
  EXPECT_EQ(allocator.stats(0).peak_allocated_bytes, emptied.allocated_bytes);
}

TEST(CudaAllocator, RejectsForeignPointersAndHugeRequests) {
  auto& allocator = CudaCachingAllocator::instance();
  int on_host = 0;
  EXPECT_THROW(allocator.free(&on_host), Error);
  EXPECT_THROW(allocator.allocate(size_t(1) << 50, 0, nullptr), Error);  // a PiB
  EXPECT_EQ(allocator.allocate(0, 0, nullptr), nullptr);
}

TEST(CudaTensors, TensorsLiveInTheCacheAndReturnToIt) {
  enable_cuda_tensors();
  auto& allocator = CudaCachingAllocator::instance();
  allocator.empty_cache();
  const size_t before = allocator.stats(0).allocated_bytes;
  void* pointer = nullptr;
  {
    Tensor t = Tensor::empty({256, 1024}, DType::BF16, Device::cuda(0));
    pointer = t.data_ptr();
    EXPECT_EQ(allocator.stats(0).allocated_bytes - before, 512 * 1024u);
  }
  EXPECT_EQ(allocator.stats(0).allocated_bytes, before);
  Tensor again = Tensor::empty({1024, 256}, DType::BF16, Device::cuda(0));
  EXPECT_EQ(again.data_ptr(), pointer);
  Tensor empty = Tensor::empty({0, 7}, DType::F32, Device::cuda(0));
  EXPECT_EQ(empty.numel(), 0);
}

template <typename T>
void expect_round_trip(DType dtype) {
  std::vector<T> values(1000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = T(int(i) - 300);
  const Tensor host = Tensor::from_vector(values, {10, 100});
  const Tensor device = to_device(host, Device::cuda(0));
  EXPECT_TRUE(device.device() == Device::cuda(0));
  EXPECT_EQ(device.dtype(), dtype);
  EXPECT_EQ(device.shape(), host.shape());
  const Tensor back = to_host(to_device(device, Device::cuda(0)));  // device to device too
  EXPECT_TRUE(back.device().is_cpu());
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(back.data<T>()[i], values[i]) << "element " << i;
}

TEST(CudaTensors, RoundTripKeepsDtypeAndValues) {
  enable_cuda_tensors();
  expect_round_trip<float>(DType::F32);
  expect_round_trip<int64_t>(DType::I64);
  expect_round_trip<int32_t>(DType::I32);
  const Tensor bf16 = Tensor::from_vector<float>({1.5f, -2.25f, 3.0f}).to(DType::BF16);
  const Tensor back = to_host(to_device(bf16, Device::cuda(0))).to(DType::F32);
  EXPECT_EQ(back.data<float>()[1], -2.25f);
}

TEST(CudaTensors, StridedViewsCopyAsContiguous) {
  enable_cuda_tensors();
  std::vector<float> values(6 * 5);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i);
  const Tensor host = Tensor::from_vector(values, {6, 5});
  const Tensor expected = host.transpose(0, 1).slice(0, 1, 4).contiguous();  // [3, 6]

  const Tensor from_host_view = to_host(to_device(host.transpose(0, 1).slice(0, 1, 4), Device::cuda(0)));
  const Tensor device = to_device(host, Device::cuda(0));
  const Tensor from_device_view = to_host(device.transpose(0, 1).slice(0, 1, 4));
  const Tensor device_to_device_view = to_host(to_device(device.transpose(0, 1).slice(0, 1, 4), Device::cuda(0)));
  for (const Tensor* result : {&from_host_view, &from_device_view, &device_to_device_view}) {
    ASSERT_EQ(result->shape(), expected.shape());
    EXPECT_TRUE(result->is_contiguous());
    for (int64_t i = 0; i < expected.numel(); ++i)
      ASSERT_EQ(result->data<float>()[i], expected.data<float>()[i]) << "element " << i;
  }
}

}  // namespace
}  // namespace moebench
