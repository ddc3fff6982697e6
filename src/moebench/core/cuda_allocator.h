#pragma once
// The caching device allocator behind CUDA tensors.
//
// cudaMalloc and cudaFree are slow and cudaFree synchronises the device, so a
// training step must not call them. Freed blocks stay in a cache and are
// handed out again to later requests of a fitting size:
//   - sizes are rounded up to a multiple of 512 B (small, up to 1 MiB) or of
//     2 MiB (large), so repeated shapes meet blocks of exactly their class;
//   - a request takes the smallest cached block of at least its rounded size,
//     and only one that wastes little (at most twice the size for small, one
//     2 MiB step or 1/8 of the size for large), so a small request never pins a
//     huge block;
//   - each free list belongs to one (device, stream): work queued on a stream
//     is ordered, so a block freed after a kernel on stream S can be reused by
//     the next kernel on S without a synchronisation. Memory used on another
//     stream than the one it was allocated on must be synchronised by the
//     caller before it is freed (there is no record_stream).
// Blocks are never split, so every pointer keeps cudaMalloc's 256-byte alignment.
// When cudaMalloc fails the allocator empties its cache on that device and
// tries once more before throwing moebench::Error with its statistics.
//
// Usage: call enable_cuda_tensors() once at start; Tensor::empty(..., Device::cuda(i))
// then allocates here (on the calling thread's allocation stream, the legacy
// default stream unless a CudaAllocationStream guard names another).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace moebench {

struct CudaAllocatorStats {
  size_t allocated_bytes = 0;       // in blocks handed out now (rounded sizes)
  size_t peak_allocated_bytes = 0;  // the most allocated_bytes since start or reset_peak()
  size_t reserved_bytes = 0;        // held from cudaMalloc: allocated plus cached
  int64_t allocations = 0;          // requests served
  int64_t cache_hits = 0;           // requests served from the cache
  int64_t device_mallocs = 0;       // cudaMalloc calls that succeeded
};

class CudaCachingAllocator {
 public:
  static constexpr size_t kSmallRounding = 512;
  static constexpr size_t kLargeRounding = size_t(2) << 20;
  static constexpr size_t kSmallLimit = size_t(1) << 20;  // larger requests are "large"

  // The process-wide allocator. It is never destroyed, so tensors released
  // during static destruction still find it.
  static CudaCachingAllocator& instance();

  // The size class a request of nbytes is served from.
  static size_t rounded_size(size_t nbytes);

  // A block of at least nbytes on `device`, to be used on `stream`. nbytes 0
  // gives nullptr. Throws moebench::Error when the device has no memory left.
  void* allocate(size_t nbytes, int device, cudaStream_t stream);
  // Returns a block to its stream's cache; never calls CUDA, so it is safe in
  // destructors. nullptr is ignored; a pointer not from allocate() throws.
  void free(void* pointer);
  // Waits for every device with cached blocks and cudaFree's those blocks.
  void empty_cache();

  CudaAllocatorStats stats(int device) const;
  void reset_peak(int device);

 private:
  CudaCachingAllocator() = default;

  struct Block {
    size_t size = 0;
    int device = 0;
    cudaStream_t stream = nullptr;
  };
  struct PoolKey {
    int device;
    cudaStream_t stream;
    friend bool operator<(const PoolKey& a, const PoolKey& b) {
      return a.device != b.device ? a.device < b.device : a.stream < b.stream;
    }
  };
  // Cached blocks of one (device, stream), by size.
  using FreeList = std::multimap<size_t, void*>;

  void* take_cached(FreeList& free_list, size_t size);
  void release_cached(int device);  // cudaFree every cached block of `device` (lock held)
  CudaAllocatorStats& stats_of(int device);

  mutable std::mutex mutex_;
  std::unordered_map<void*, Block> blocks_;  // every block we hold, used or cached
  std::map<PoolKey, FreeList> free_lists_;
  std::vector<CudaAllocatorStats> stats_;  // by device index
};

// The stream that CUDA tensors allocated by this thread are meant for, until
// the guard goes out of scope (guards nest).
class CudaAllocationStream {
 public:
  explicit CudaAllocationStream(cudaStream_t stream);
  ~CudaAllocationStream();
  CudaAllocationStream(const CudaAllocationStream&) = delete;
  CudaAllocationStream& operator=(const CudaAllocationStream&) = delete;

  static cudaStream_t current();

 private:
  cudaStream_t previous_;
};

// Installs the caching allocator as the Tensor storage allocator for
// DeviceKind::CUDA. Idempotent.
void enable_cuda_tensors();

}  // namespace moebench
