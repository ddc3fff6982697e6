// The caching device allocator (see cuda_allocator.h): host code only, no
// kernels. Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c
// src/moebench/core/cuda_allocator.cu; tested by tests/gpu/cuda_allocator_test.cpp.
#include "moebench/core/cuda_allocator.h"

#include <memory>
#include <string>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"
#include "moebench/core/tensor.h"

namespace moebench {
namespace {

size_t round_up(size_t value, size_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// The largest cached block a request of `size` (already rounded) may take.
size_t largest_acceptable(size_t size) {
  if (size <= CudaCachingAllocator::kSmallLimit) return 2 * size;
  return size + std::max(CudaCachingAllocator::kLargeRounding, size / 8);
}

// Switches to `device` for the scope when it is not the current one.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    MOEBENCH_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) MOEBENCH_CUDA_CHECK(cudaSetDevice(device));
    switched_ = previous_ != device;
  }
  ~DeviceScope() {
    if (switched_) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

thread_local cudaStream_t current_allocation_stream = nullptr;

std::string mib(size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

}  // namespace

CudaCachingAllocator& CudaCachingAllocator::instance() {
  static CudaCachingAllocator* allocator = new CudaCachingAllocator();  // never destroyed, on purpose
  return *allocator;
}

size_t CudaCachingAllocator::rounded_size(size_t nbytes) {
  if (nbytes <= kSmallLimit) return round_up(std::max<size_t>(nbytes, 1), kSmallRounding);
  return round_up(nbytes, kLargeRounding);
}

CudaAllocatorStats& CudaCachingAllocator::stats_of(int device) {
  if (device < 0) throw Error("CUDA allocator: device index " + std::to_string(device) + " must be >= 0");
  if (size_t(device) >= stats_.size()) stats_.resize(size_t(device) + 1);
  return stats_[size_t(device)];
}

void* CudaCachingAllocator::take_cached(FreeList& free_list, size_t size) {
  auto found = free_list.lower_bound(size);
  if (found == free_list.end() || found->first > largest_acceptable(size)) return nullptr;
  void* pointer = found->second;
  free_list.erase(found);
  return pointer;
}

void* CudaCachingAllocator::allocate(size_t nbytes, int device, cudaStream_t stream) {
  if (nbytes == 0) return nullptr;
  const size_t size = rounded_size(nbytes);
  std::lock_guard lock(mutex_);
  CudaAllocatorStats& stats = stats_of(device);
  void* pointer = take_cached(free_lists_[PoolKey{device, stream}], size);
  if (pointer != nullptr) {
    ++stats.cache_hits;
  } else {
    DeviceScope scope(device);
    cudaError_t status = cudaMalloc(&pointer, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the sticky-free error before retrying
      release_cached(device);
      status = cudaMalloc(&pointer, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw Error("CUDA allocator: cannot allocate " + std::to_string(nbytes) + " bytes (" + mib(size) +
                  " rounded) on cuda:" + std::to_string(device) + " (" + cudaGetErrorString(status) +
                  "); " + mib(stats.allocated_bytes) + " allocated, " + mib(stats.reserved_bytes) +
                  " reserved; reduce the micro-batch size or enable recomputation");
    }
    blocks_[pointer] = Block{size, device, stream};
    stats.reserved_bytes += size;
    ++stats.device_mallocs;
  }
  const size_t block_size = blocks_.at(pointer).size;
  stats.allocated_bytes += block_size;
  stats.peak_allocated_bytes = std::max(stats.peak_allocated_bytes, stats.allocated_bytes);
  ++stats.allocations;
  return pointer;
}

void CudaCachingAllocator::free(void* pointer) {
  if (pointer == nullptr) return;
  std::lock_guard lock(mutex_);
  const auto found = blocks_.find(pointer);
  if (found == blocks_.end())
    throw Error("CUDA allocator: free of a pointer it did not allocate; free memory where it was allocated");
  const Block& block = found->second;
  stats_of(block.device).allocated_bytes -= block.size;
  free_lists_[PoolKey{block.device, block.stream}].emplace(block.size, pointer);
}

void CudaCachingAllocator::release_cached(int device) {
  DeviceScope scope(device);
  // Cached blocks may still be read by queued kernels of their stream.
  MOEBENCH_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto& [key, free_list] : free_lists_) {
    if (key.device != device) continue;
    for (const auto& [size, pointer] : free_list) {
      MOEBENCH_CUDA_CHECK(cudaFree(pointer));
      stats_of(device).reserved_bytes -= size;
      blocks_.erase(pointer);
    }
    free_list.clear();
  }
}

void CudaCachingAllocator::empty_cache() {
  std::lock_guard lock(mutex_);
  for (size_t device = 0; device < stats_.size(); ++device) {
    if (stats_[device].reserved_bytes > stats_[device].allocated_bytes) release_cached(int(device));
  }
}

CudaAllocatorStats CudaCachingAllocator::stats(int device) const {
  std::lock_guard lock(mutex_);
  if (device < 0 || size_t(device) >= stats_.size()) return CudaAllocatorStats{};
  return stats_[size_t(device)];
}

void CudaCachingAllocator::reset_peak(int device) {
  std::lock_guard lock(mutex_);
  CudaAllocatorStats& stats = stats_of(device);
  stats.peak_allocated_bytes = stats.allocated_bytes;
}

CudaAllocationStream::CudaAllocationStream(cudaStream_t stream) : previous_(current_allocation_stream) {
  current_allocation_stream = stream;
}

CudaAllocationStream::~CudaAllocationStream() { current_allocation_stream = previous_; }

cudaStream_t CudaAllocationStream::current() { return current_allocation_stream; }

void enable_cuda_tensors() {
  set_storage_allocator(DeviceKind::CUDA, [](size_t nbytes, Device device) {
    CudaCachingAllocator& allocator = CudaCachingAllocator::instance();
    void* data = allocator.allocate(nbytes, device.index, CudaAllocationStream::current());
    return std::make_shared<Storage>(data, nbytes, device,
                                     [](void* pointer) { CudaCachingAllocator::instance().free(pointer); });
  });
}

}  // namespace moebench
