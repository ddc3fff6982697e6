#pragma once
// SwiGLU on Megatron's fused fc1 output: each row of inp[N,2F] is
// [gate | up], the first F columns the gate projection and the next F the
// up projection, and out[N,F] = silu(gate) * up with silu(x) = x * sigmoid(x).
// Activation gradients are written (=).
#include <cstdint>

#include "moebench/core/tensor.h"

namespace moebench::ops::cpu {

// out[N,F] from inp[N,2F]; `f` is the width of one half (ffn_hidden_size).
// Instantiated for float and double.
template <typename T>
void swiglu_forward(T* out, const T* inp, std::int64_t n, std::int64_t f);

// dinp[N,2F] = [dgate | dup] from dout[N,F] and the forward's inp[N,2F].
template <typename T>
void swiglu_backward(T* dinp, const T* dout, const T* inp, std::int64_t n, std::int64_t f);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace moebench::ops::cuda {

// out[N,F] = silu(gate) * up from inp[N,2F] = [gate | up], bf16 with fp32 math.
void swiglu_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, std::int64_t n, std::int64_t f,
                    cudaStream_t stream);

// dinp[N,2F] = [dgate | dup] (written) from dout[N,F] and the forward's inp[N,2F].
void swiglu_backward(__nv_bfloat16* dinp, const __nv_bfloat16* dout, const __nv_bfloat16* inp,
                     std::int64_t n, std::int64_t f, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// out [N, F] from inp [N, 2F].
void swiglu_forward(Tensor& out, const Tensor& inp);
void swiglu_backward(Tensor& dinp, const Tensor& dout, const Tensor& inp);

}  // namespace moebench::ops
