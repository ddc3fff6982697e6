#pragma once
// The argument checks of the Tensor-level ops: each failure is a
// moebench::Error naming the op, the tensor, what it got and what is allowed,
// e.g. "ops::rmsnorm_forward: inp must be f32 or f64 on the CPU, bf16 on CUDA; got f16[4, 8] on cpu".
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "moebench/core/tensor.h"

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#endif

namespace moebench::ops::checks {

void require_defined(const char* op, const char* name, const Tensor& tensor);
void require_contiguous(const char* op, const char* name, const Tensor& tensor);
void require_dtype(const char* op, const char* name, const Tensor& tensor,
                   std::initializer_list<DType> allowed);
void require_shape(const char* op, const char* name, const Tensor& tensor,
                   const std::vector<int64_t>& shape);
void require_numel(const char* op, const char* name, const Tensor& tensor, int64_t numel);
void require_same_device(const char* op, const char* name, const Tensor& tensor,
                         const Tensor& reference, const char* reference_name);
// Defined, contiguous, and an activation dtype of its device: f32 or f64 on
// the CPU, bf16 on CUDA.
void require_activation(const char* op, const char* name, const Tensor& tensor);
// true when `tensor` lives on a CUDA device; throws when it does but this
// build has no CUDA engine.
bool is_cuda(const char* op, const Tensor& tensor);
// Throws: `op` has no implementation for `tensor`'s dtype on its device.
[[noreturn]] void unsupported(const char* op, const char* name, const Tensor& tensor,
                              const char* allowed);

#ifdef MOEBENCH_WITH_CUDA
// A bf16 tensor's device pointer as CUDA's type.
inline __nv_bfloat16* bf16_ptr(const Tensor& tensor) { return static_cast<__nv_bfloat16*>(tensor.data_ptr()); }
#endif

}  // namespace moebench::ops::checks
