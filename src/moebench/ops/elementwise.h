#pragma once
// Element-wise and copy work of the model that belongs to no larger op
// family: residual sums, column copies between fused and split layouts, dtype
// casts, gradient scaling and norms, and Qwen2-MoE's sigmoid gate on the
// shared experts. Activation gradients are written (=), parameter gradients
// accumulate (+=).
//
// Two layers, as every ops/<family>.h: the raw twins (ops::cpu on host
// pointers, ops::cuda on device pointers with a trailing stream), and the
// Tensor-level functions in namespace moebench::ops that check their tensors
// and dispatch on the device (CPU f32/f64 -> ops::cpu, CUDA bf16/f32 -> ops::cuda).
#include <cstdint>
#include <vector>

#include "moebench/core/tensor.h"

namespace moebench::ops::cpu {

// target[N] += addend[N]. Instantiated for float and double.
template <typename T>
void add(T* target, const T* addend, std::int64_t n);

// dst[r, dst_col + i] (=|+=) src[r, src_col + i] for r < rows, i < count, with
// row widths dst_width and src_width. Instantiated for float and double.
template <typename T>
void copy_columns(T* dst, std::int64_t dst_width, std::int64_t dst_col, const T* src, std::int64_t src_width,
                  std::int64_t src_col, std::int64_t rows, std::int64_t count);
template <typename T>
void add_columns(T* dst, std::int64_t dst_width, std::int64_t dst_col, const T* src, std::int64_t src_width,
                 std::int64_t src_col, std::int64_t rows, std::int64_t count);

// Qwen2-MoE's shared-expert gate: gate[t] = sigmoid(inp[t, :] . weight),
// out[t, :] = gate[t] * mlp_out[t, :]; inp and mlp_out are [N, H], weight [H].
template <typename T>
void sigmoid_gate_forward(T* out, T* gate, const T* inp, const T* weight, const T* mlp_out, std::int64_t n,
                          std::int64_t hidden);
// dmlp_out = gate * dout (written); dlogit[t] = (dout[t] . mlp_out[t]) * gate * (1 - gate)
// (written); dweight[H] += sum_t dlogit[t] * inp[t, :].
template <typename T>
void sigmoid_gate_backward(T* dmlp_out, T* dlogit, T* dweight, const T* dout, const T* inp, const T* mlp_out,
                           const T* gate, std::int64_t n, std::int64_t hidden);
// dinp[t, :] += dlogit[t] * weight: the gate's share of the input gradient.
template <typename T>
void sigmoid_gate_input_backward(T* dinp, const T* dlogit, const T* weight, std::int64_t n, std::int64_t hidden);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace moebench::ops::cuda {

void add(__nv_bfloat16* target, const __nv_bfloat16* addend, std::int64_t n, cudaStream_t stream);
void add(float* target, const float* addend, std::int64_t n, cudaStream_t stream);
void scale(float* values, double factor, std::int64_t n, cudaStream_t stream);
void fill(__nv_bfloat16* values, float value, std::int64_t n, cudaStream_t stream);
void cast(__nv_bfloat16* out, const float* inp, std::int64_t n, cudaStream_t stream);
void cast(float* out, const __nv_bfloat16* inp, std::int64_t n, cudaStream_t stream);
void cast(std::int32_t* out, const std::int64_t* inp, std::int64_t n, cudaStream_t stream);
// As the CPU twins. copy_columns moves elements of `element_bytes` bytes in
// one kernel, each thread a unit of the widest of 16, 8, 4, 2 or 1 bytes that
// the addresses, row pitches and row length allow (cudaMemcpy2DAsync runs
// narrow rows slowly on the copy engines).
void copy_columns(void* dst, std::int64_t dst_width, std::int64_t dst_col, const void* src, std::int64_t src_width,
                  std::int64_t src_col, std::int64_t rows, std::int64_t count, std::int64_t element_bytes,
                  cudaStream_t stream);
void add_columns(__nv_bfloat16* dst, std::int64_t dst_width, std::int64_t dst_col, const __nv_bfloat16* src,
                 std::int64_t src_width, std::int64_t src_col, std::int64_t rows, std::int64_t count,
                 cudaStream_t stream);
// total[0] (double, +=) = sum of values[i]^2 (atomic, so the last bits may vary run to run).
void accumulate_sum_of_squares(double* total, const float* values, std::int64_t n, cudaStream_t stream);
// The gate with bf16 activations, bf16 weight, fp32 gate values, fp32 dweight (+=).
void sigmoid_gate_forward(__nv_bfloat16* out, float* gate, const __nv_bfloat16* inp, const __nv_bfloat16* weight,
                          const __nv_bfloat16* mlp_out, std::int64_t n, std::int64_t hidden, cudaStream_t stream);
void sigmoid_gate_backward(__nv_bfloat16* dmlp_out, float* dlogit, float* dweight, const __nv_bfloat16* dout,
                           const __nv_bfloat16* inp, const __nv_bfloat16* mlp_out, const float* gate,
                           std::int64_t n, std::int64_t hidden, cudaStream_t stream);
void sigmoid_gate_input_backward(__nv_bfloat16* dinp, const float* dlogit, const __nv_bfloat16* weight,
                                 std::int64_t n, std::int64_t hidden, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// A fresh contiguous tensor of `shape` with `like`'s dtype and device.
Tensor empty_like(const Tensor& like, const std::vector<int64_t>& shape);
Tensor empty_like(const Tensor& like);

// target += addend (same dtype, element count and device): f32/f64 on the
// CPU, bf16/f32 on CUDA.
void add_(Tensor& target, const Tensor& addend);
// Every element 0 (any dtype, contiguous).
void zero_(Tensor& tensor);
// values[i] = float(values[i] * factor): f32 on either device.
void scale_(Tensor& values, double factor);
// A copy in `dtype`. CPU: any pair (Tensor::to); CUDA: f32 <-> bf16, i64 -> i32,
// or the same dtype.
Tensor cast(const Tensor& source, DType dtype);
// A copy of `source` on `like`'s device (waiting for it); source itself when already there.
Tensor to_device_of(const Tensor& source, const Tensor& like);
// `source` in host memory (a waiting copy from a CUDA device); source itself on the CPU.
Tensor to_cpu(const Tensor& source);
// The dtype of fp32 statistics (norm rstd, attention lse, losses, gates) next
// to activations `like`: f32 on CUDA, the activations' own dtype on the CPU.
DType statistic_dtype(const Tensor& like);

// dst viewed as [rows, dst_width], src as [rows, src_width], same dtype and
// device: dst[:, dst_col:+count] (=|+=) src[:, src_col:+count].
void copy_columns(Tensor& dst, int64_t dst_width, int64_t dst_col, const Tensor& src, int64_t src_width,
                  int64_t src_col, int64_t rows, int64_t count);
void add_columns(Tensor& dst, int64_t dst_width, int64_t dst_col, const Tensor& src, int64_t src_width,
                 int64_t src_col, int64_t rows, int64_t count);

// total[0] += sum of x^2 over an f32 tensor, in double; total is f64 [1] on
// the tensor's device (on CUDA atomic, so the last bits may vary run to run).
void accumulate_sum_of_squares(Tensor& total, const Tensor& values);
// sum over the tensors of sum of x^2, in double: f32 tensors, all on one
// device (a CUDA reduction reads one double back).
double sum_of_squares(const std::vector<const Tensor*>& tensors);

// The shared-expert gate (cpu::sigmoid_gate_* above). gate and dlogit are f32
// [N] on the CPU as on CUDA; dweight is the f32 gradient of weight.
void sigmoid_gate_forward(Tensor& out, Tensor& gate, const Tensor& inp, const Tensor& weight,
                          const Tensor& mlp_out);
void sigmoid_gate_backward(Tensor& dmlp_out, Tensor& dlogit, Tensor& dweight, const Tensor& dout,
                           const Tensor& inp, const Tensor& mlp_out, const Tensor& gate);
void sigmoid_gate_input_backward(Tensor& dinp, const Tensor& dlogit, const Tensor& weight);

}  // namespace moebench::ops
