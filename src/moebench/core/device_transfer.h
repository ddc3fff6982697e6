#pragma once
// Copies of tensors between host and CUDA devices. Each returns a fresh
// contiguous tensor of the same shape and dtype; the source may be any view.
// Both wait for the copy to finish (they are for setup, checkpoints and tests,
// not for the training step). CUDA memory comes from the Tensor storage
// allocator of DeviceKind::CUDA, so call enable_cuda_tensors() first.
#include "moebench/core/tensor.h"

namespace moebench {

// A copy of `source` (on the host or any CUDA device) on `device`.
Tensor to_device(const Tensor& source, Device device);
// A copy of `source` in host memory.
Tensor to_host(const Tensor& source);
// Overwrites the contiguous `destination` (host or device) with `source`
// (same shape and dtype, host or device), waiting for the copy.
void copy_into(const Tensor& destination, const Tensor& source);

}  // namespace moebench
