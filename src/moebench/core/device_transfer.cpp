// Host <-> device tensor copies (see device_transfer.h). A contiguous
// source moves with one cudaMemcpy; a strided view moves the span of storage
// it covers to the host, is made contiguous there, and then goes on to its
// destination, so no strided copy kernel is needed. A build without CUDA has
// host tensors only, copied with memcpy.
// Tested by tests/core_tensor_test.cpp (host) and tests/gpu/cuda_allocator_test.cpp.
#include "moebench/core/device_transfer.h"

#include <cstring>

#include "moebench/core/error.h"

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_runtime_api.h>

#include "moebench/core/cuda_check.h"
#endif

namespace moebench {
namespace {

// Copies bytes between any two places: memcpy between host buffers (no GPU
// needed), else cudaMemcpy, whose unified addressing tells where each
// pointer lives, device to device across GPUs included.
void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                size_t nbytes) {
  if (nbytes == 0) return;
  if (destination_device.is_cpu() && source_device.is_cpu()) {
    std::memcpy(destination, source, nbytes);
    return;
  }
#ifdef MOEBENCH_WITH_CUDA
  MOEBENCH_CUDA_CHECK(cudaMemcpy(destination, source, nbytes, cudaMemcpyDefault));
#else
  throw Error("a CUDA tensor in a build without CUDA: rebuild with MOEBENCH_CUDA=ON");
#endif
}

// A contiguous host copy of a CUDA view that need not be contiguous.
Tensor strided_device_view_to_host(const Tensor& source) {
  // The view reaches storage elements [offset, offset + span); strides are never negative.
  int64_t span = 1;
  for (int64_t d = 0; d < source.dim(); ++d) span += (source.size(d) - 1) * source.stride(d);
  const size_t element_bytes = size_in_bytes(source.dtype());
  auto host_storage = allocate_storage(size_t(span) * element_bytes, Device::cpu());
  copy_bytes(host_storage->data(), Device::cpu(), source.data_ptr(), source.device(), size_t(span) * element_bytes);
  return Tensor::from_storage(host_storage, source.dtype(), source.shape(), source.strides(), 0).contiguous();
}

}  // namespace

Tensor to_host(const Tensor& source) {
  if (!source.defined()) throw Error("to_host got an undefined tensor; pass an allocated tensor");
  if (source.device().is_cpu()) return source.clone();
  if (source.numel() == 0) return Tensor::empty(source.shape(), source.dtype());
  if (!source.is_contiguous()) return strided_device_view_to_host(source);
  Tensor result = Tensor::empty(source.shape(), source.dtype());
  copy_bytes(result.data_ptr(), Device::cpu(), source.data_ptr(), source.device(), source.nbytes());
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
  copy_bytes(destination.data_ptr(), destination.device(), contiguous_source.data_ptr(), contiguous_source.device(),
             source.nbytes());
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
  copy_bytes(result.data_ptr(), device, contiguous_source.data_ptr(), contiguous_source.device(), source.nbytes());
  return result;
}

}  // namespace moebench
