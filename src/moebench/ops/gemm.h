#pragma once
// Dense matrix products: the general GEMM and the linear layer built on it.
// All matrices are row-major and contiguous. Forward and backward take their
// arguments in the same order; parameter gradients accumulate (+=),
// activation gradients are written (=) unless the caller asks to add them to
// what is there (GemmOutput::kAccumulate: one GEMM with beta = 1 instead of a
// GEMM and a separate add). A forward may add a residual matrix to its
// output the same way. The optional pointers are std::type_identity_t<T> so
// that T is deduced from the other arrays and nullptr can be passed.
#include <cstdint>

#include "moebench/core/tensor.h"
#include <type_traits>

namespace moebench::ops {

// Which operands of C[M,N] = A @ B are stored transposed, named as BLAS and
// DeepGEMM name them: the first letter is A, the second is B.
//   kNN  A is [M,K], B is [K,N]   (activation gradient: dinp = dout @ W)
//   kNT  A is [M,K], B is [N,K]   (forward: out = inp @ W^T)
//   kTN  A is [K,M], B is [K,N]   (weight gradient: dW = dout^T @ inp)
enum class GemmLayout { kNN, kNT, kTN };

// Whether the product replaces C or is added to it (BLAS beta = 0 or 1).
enum class GemmOutput { kOverwrite, kAccumulate };

}  // namespace moebench::ops

namespace moebench::ops::cpu {

// c[M,N] (=|+=) op(a) @ op(b), with op() chosen by `layout`.
// Instantiated for float and double.
template <typename T>
void gemm(T* c, const T* a, const T* b, std::int64_t m, std::int64_t n, std::int64_t k,
          GemmLayout layout, GemmOutput output);

// out[N,OC] = inp[N,IC] @ weight[OC,IC]^T + bias[OC] + residual[N,OC]; bias
// and residual may be nullptr, residual may be out itself. The residual is
// added last, so the result is exactly that of a linear layer followed by a
// separate residual add.
template <typename T>
void linear_forward(T* out, const T* inp, const T* weight, const std::type_identity_t<T>* bias,
                    const std::type_identity_t<T>* residual, std::int64_t n, std::int64_t in_features,
                    std::int64_t out_features);

// dinp[N,IC] (=|+=) dout @ weight; dweight[OC,IC] += dout^T @ inp;
// dbias[OC] += column sums of dout (pass nullptr when the layer has no bias).
// dinp += adds the finished product, as a separate add after the GEMM would.
template <typename T>
void linear_backward(T* dinp, T* dweight, std::type_identity_t<T>* dbias, const T* dout,
                     const T* inp, const T* weight, std::int64_t n, std::int64_t in_features,
                     std::int64_t out_features, GemmOutput dinp_output);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <memory>

namespace moebench::ops::cuda {

// Dense GEMMs on the GPU through cuBLASLt: bf16 operands, fp32 accumulation,
// the same row-major GemmLayout semantics as ops::cpu::gemm.
//
// cuBLASLt is column-major. A row-major [R, C] matrix is the column-major
// [C, R] matrix with the same bytes, so row-major C = op(A) @ op(B) is run as
// column-major C^T = op(B)^T @ op(A)^T: the operands swap places, M and N
// swap, and each keeps its own transpose flag. gemm.cu does this in one place.

// The cuBLASLt state of one device: the handle, a 32 MiB workspace and the
// plans (descriptors, layouts, chosen algorithm) already made, keyed by
// (m, n, k, layout, output type, epilogue, whether C is read and whether it
// is the output itself, pointer alignment). Get the device's one context
// with for_current_device(); it lives for the process.
// All GEMMs through one context share its workspace, so GEMMs issued on two
// streams that can run at the same time need two contexts.
class GemmContext {
 public:
  explicit GemmContext(int device);
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  // The context of the calling thread's current device, created on first use.
  static GemmContext& for_current_device();

  int device() const;
  struct State;  // cuBLASLt handle, workspace, plan cache (gemm.cu)
  State& state() { return *state_; }

 private:
  std::unique_ptr<State> state_;
};

// c[M,N] = op(a) @ op(b) + bias[N] (bias broadcast over the rows; nullptr for
// none), written as bf16. Any sizes and alignments cuBLASLt accepts; k >= 1.
void gemm(GemmContext& context, __nv_bfloat16* c, const __nv_bfloat16* a, const __nv_bfloat16* b,
          const __nv_bfloat16* bias, std::int64_t m, std::int64_t n, std::int64_t k, GemmLayout layout,
          cudaStream_t stream);

// c[M,N] = op(a) @ op(b) + bias[N] + addend[M,N] in one cuBLASLt call (the
// addend is its C, with beta = 1): a residual add or an accumulation in the
// GEMM's epilogue, rounded to bf16 once. addend is c itself (c +=), a bf16
// [M,N] matrix that does not overlap c, or nullptr (the overload above).
void gemm(GemmContext& context, __nv_bfloat16* c, const __nv_bfloat16* a, const __nv_bfloat16* b,
          const __nv_bfloat16* bias, const __nv_bfloat16* addend, std::int64_t m, std::int64_t n, std::int64_t k,
          GemmLayout layout, cudaStream_t stream);

// c[M,N] (=|+=) op(a) @ op(b) in fp32: the weight-gradient path into fp32
// main gradients (kTN with kAccumulate).
void gemm(GemmContext& context, float* c, const __nv_bfloat16* a, const __nv_bfloat16* b, std::int64_t m,
          std::int64_t n, std::int64_t k, GemmLayout layout, GemmOutput output, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// Matrices are contiguous; a linear layer's inp and out may have more dims
// (rows = numel / features). CUDA: bf16 a and b with a bf16 c or an f32 c, each
// = or += (f32: weight gradients accumulate into f32 main grads; bf16: beta = 1).
void gemm(Tensor& c, const Tensor& a, const Tensor& b, GemmLayout layout, GemmOutput output);
// out[N, OC] = inp[N, IC] @ weight[OC, IC]^T (+ bias[OC]) (+ residual[N, OC]);
// bias and residual are undefined for none. The residual has out's dtype,
// device and element count, and is either out itself or apart from it; on
// CUDA it is added in the GEMM's epilogue. On CUDA out is bf16 (bias and
// residual allowed) or f32 (the router's fp32 logits, neither).
void linear_forward(Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                    const Tensor& residual = Tensor());
// dinp = dout @ weight, written (kOverwrite) or added to dinp (kAccumulate: on
// CUDA the same GEMM with beta = 1); dweight += dout^T @ inp; dbias += column
// sums of dout (undefined when the layer has none). On CUDA dweight and dbias
// are f32.
void linear_backward(Tensor& dinp, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& inp,
                     const Tensor& weight, GemmOutput dinp_output = GemmOutput::kOverwrite);

}  // namespace moebench::ops
