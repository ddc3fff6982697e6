// Host <-> device tensor copies (see device_transfer.h): host code only.
// A contiguous source moves with one cudaMemcpy; a strided view moves the
// span of storage it covers to the host, is made contiguous there, and then
// goes on to its destination, so no strided copy kernel is needed.
// Build: nvcc -std=c++20 -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -c
// src/moebench/core/device_transfer.cu; tested by tests/gpu/cuda_allocator_test.cpp.
#include "moebench/core/device_transfer.h"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "moebench/core/cuda_check.h"
#include "moebench/core/error.h"

namespace moebench {
namespace {

// Copies bytes between any two places; unified addressing tells cudaMemcpy
// where each pointer lives, device to device across GPUs included.
void copy_bytes(void* destination, const void* source, size_t nbytes) {
  if (nbytes == 0) return;
  MOEBENCH_CUDA_CHECK(cudaMemcpy(destination, source, nbytes, cudaMemcpyDefault));
}

// A contiguous host copy of a CUDA view that need not be contiguous.
Tensor strided_device_view_to_host(const Tensor& source) {
  // The view reaches storage elements [offset, offset + span); strides are never negative.
  int64_t span = 1;
  for (int64_t d = 0; d < source.dim(); ++d) span += (source.size(d) - 1) * source.stride(d);
  const size_t element_bytes = size_in_bytes(source.dtype());
  auto host_storage = allocate_storage(size_t(span) * element_bytes, Device::cpu());
  copy_bytes(host_storage->data(), source.data_ptr(), size_t(span) * element_bytes);
  return Tensor::from_storage(host_storage, source.dtype(), source.shape(), source.strides(), 0).contiguous();
}

}  // namespace

Tensor to_host(const Tensor& source) {
  if (!source.defined()) throw Error("to_host got an undefined tensor; pass an allocated tensor");
  if (source.device().is_cpu()) return source.clone();
  if (source.numel() == 0) return Tensor::empty(source.shape(), source.dtype());
  if (!source.is_contiguous()) return strided_device_view_to_host(source);
  Tensor result = Tensor::empty(source.shape(), source.dtype());
  copy_bytes(result.data_ptr(), source.data_ptr(), source.nbytes());
  return result;
}

void copy_into(const Tensor& destination, const Tensor& source) {
  if (!destination.defined() || !source.defined())
    throw Error("copy_into got an undefined tensor; pass allocated tensors");
  if (destination.shape() != source.shape() || destination.dtype() != source.dtype())
    throw Error("copy_into: destination " + destination.describe() + " and source " + source.describe() +
                " differ in shape or dtype");
  if (!destination.is_contiguous())
    throw Error("copy_into: destination " + destination.describe() + " is not contiguous; copy into a contiguous tensor");
  const Tensor contiguous_source = source.is_contiguous() ? source : to_host(source);
  copy_bytes(destination.data_ptr(), contiguous_source.data_ptr(), source.nbytes());
}

Tensor to_device(const Tensor& source, Device device) {
  if (!source.defined()) throw Error("to_device got an undefined tensor; pass an allocated tensor");
  if (device.is_cpu()) return to_host(source);
  Tensor result = Tensor::empty(source.shape(), source.dtype(), device);
  if (source.numel() == 0) return result;
  const Tensor contiguous_source =
      source.is_contiguous() ? source
      : source.device().is_cpu() ? source.contiguous()
                                 : strided_device_view_to_host(source);
  copy_bytes(result.data_ptr(), contiguous_source.data_ptr(), source.nbytes());
  return result;
}

}  // namespace moebench
