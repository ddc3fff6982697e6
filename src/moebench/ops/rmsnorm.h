#pragma once
// RMSNorm over the last dimension, as Megatron-Core's RMSNorm:
//   out = inp * rstd * weight,  rstd = 1 / sqrt(mean(inp^2) + eps).
// Megatron computes the norm in fp32; the reference runs in T (float or
// double). Forward and backward take their arguments in the same order;
// parameter gradients accumulate (+=), activation gradients are written (=).
// Scalars and the optional residual_grad are std::type_identity_t<T> so that T
// is deduced from the other arrays alone and a literal such as 1e-5 can be
// passed for eps, nullptr for residual_grad.
#include <cstdint>

#include "moebench/core/tensor.h"
#include <type_traits>

namespace moebench::ops::cpu {

// out[N,C] and rstd[N] (saved for the backward) from inp[N,C] and weight[C].
// Instantiated for float and double.
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, std::int64_t n, std::int64_t c,
                     std::type_identity_t<T> eps);

// dinp[N,C] is written, dweight[C] accumulated; rstd[N] is the forward's.
// residual_grad[N,C], when not null, is added to dinp (the gradient of a
// residual branch that meets the norm's input); it may not overlap dinp.
template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                      const T* rstd, const std::type_identity_t<T>* residual_grad, std::int64_t n,
                      std::int64_t c);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace moebench::ops::cuda {

// out[N,C] bf16 and rstd[N] fp32 (saved for the backward) from inp[N,C] and
// weight[C], both bf16; the norm is computed in fp32.
void rmsnorm_forward(__nv_bfloat16* out, float* rstd, const __nv_bfloat16* inp,
                     const __nv_bfloat16* weight, std::int64_t n, std::int64_t c, float eps,
                     cudaStream_t stream);

// Floats of device scratch rmsnorm_backward needs for its per-block partial
// sums of dweight: min(n, 512) * c.
std::size_t rmsnorm_backward_scratch_floats(std::int64_t n, std::int64_t c);

// dinp[N,C] bf16 is written, dweight[C] fp32 accumulated (+=) in a fixed order
// (the same bits on every run); rstd[N] is the forward's. residual_grad[N,C]
// bf16, when not null, is added to dinp in fp32 before the one rounding to
// bf16; it may not overlap dinp. `scratch` holds
// rmsnorm_backward_scratch_floats(n, c) floats and may be reused once the stream passes this op.
// The fast path wants every pointer 16-byte aligned (scratch included) and C a multiple of 8.
void rmsnorm_backward(__nv_bfloat16* dinp, float* dweight, const __nv_bfloat16* dout,
                      const __nv_bfloat16* inp, const __nv_bfloat16* weight, const float* rstd,
                      const __nv_bfloat16* residual_grad, std::int64_t n, std::int64_t c, float* scratch,
                      cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// Rows are numel / C with C = weight's size. rstd is [rows], f32 (the input's
// dtype on the CPU); on CUDA dweight is f32. residual_grad, when defined, is
// added to dinp: it has dout's size, inp's dtype and device, and does not
// overlap dinp; an undefined Tensor adds nothing.
void rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& inp, const Tensor& weight, double eps);
void rmsnorm_backward(Tensor& dinp, Tensor& dweight, const Tensor& dout, const Tensor& inp, const Tensor& weight,
                      const Tensor& rstd, const Tensor& residual_grad = Tensor());

}  // namespace moebench::ops
