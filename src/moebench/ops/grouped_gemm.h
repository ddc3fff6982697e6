#pragma once
// Grouped GEMMs for the routed experts, named with DeepGEMM's grammar
// `[m|k]_grouped_<dtype>_gemm_<layout>_contiguous`. "Contiguous": the tokens
// routed to the experts sit in one row-major buffer sorted by expert, group g
// owning the rows [offset[g], offset[g] + counts[g]) where offset is the
// exclusive prefix sum of counts. The layout letters follow ops/gemm.h (first
// letter the token-side operand, second the weights).
//
//   m_grouped ... nt   forward        out[M, N]  = a[M, K] @ w[g][N, K]^T
//   m_grouped ... nn   data gradient  da[M, K]   = dout[M, N] @ w[g][N, K]
//   k_grouped ... tn   weight grad.   dw[g][N, K] += dout_g^T @ a_g   (sum over g's rows)
//
// The weights of all experts are one contiguous [G, N, K] buffer (expert g at
// w + g*N*K); their fp32 gradients likewise. Activation gradients are written
// (=), parameter gradients accumulate (+=). Rows past the sum of the counts
// are neither read nor written; a group with no rows leaves its dw unchanged.
#include <cstdint>
#include <vector>

#include "moebench/core/tensor.h"
#include "moebench/ops/gemm.h"

namespace moebench::ops::cpu {

// The readable twins: ops::cpu::gemm once per group, counts on the host.
// Instantiated for float and double.
template <typename T>
void m_grouped_gemm_nt_contiguous(T* out, const T* a, const T* w, const std::int32_t* group_counts,
                                  std::int64_t num_groups, std::int64_t n, std::int64_t k);
template <typename T>
void m_grouped_gemm_nn_contiguous(T* da, const T* dout, const T* w, const std::int32_t* group_counts,
                                  std::int64_t num_groups, std::int64_t n, std::int64_t k);
template <typename T>
void k_grouped_gemm_tn_contiguous(T* dw, const T* dout, const T* a, const std::int32_t* group_counts,
                                  std::int64_t num_groups, std::int64_t n, std::int64_t k);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace moebench::ops::cuda {

// Shape contract shared by the three GPU grouped GEMMs:
//   group_counts  int32 [num_groups] ON THE DEVICE, rows per group; negative
//                 counts count as 0. Read by the kernel: no host sync.
//   m_capacity    rows of the token-side buffers (a, out, da, dout); the
//                 counts may sum to less (the tail is left alone), never more
//                 (rows past m_capacity are dropped, never touched).
//   n, k          w is [num_groups, N, K] bf16; dw is [num_groups, N, K] fp32.
// Own kernel (v1: mma.sync m16n8k16 bf16, cp.async pipeline, persistent tile
// scheduler over device offsets): n and k multiples of 8 and every pointer
// 16-byte aligned (16-byte cp.async rows); 1 <= num_groups <= 1024;
// m_capacity < 2^31. Each entry checks these and throws moebench::Error.
inline constexpr std::int64_t kMaxGroupedGemmGroups = 1024;

// out[M, N] (bf16, =) = a[M, K] @ w[g][N, K]^T for the rows of group g.
void m_grouped_bf16_gemm_nt_contiguous(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* w,
                                       const std::int32_t* group_counts, std::int64_t num_groups,
                                       std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                       cudaStream_t stream);

// da[M, K] (bf16, =) = dout[M, N] @ w[g][N, K] for the rows of group g.
void m_grouped_bf16_gemm_nn_contiguous(__nv_bfloat16* da, const __nv_bfloat16* dout, const __nv_bfloat16* w,
                                       const std::int32_t* group_counts, std::int64_t num_groups,
                                       std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                       cudaStream_t stream);

// dw[g][N, K] (fp32, +=) = dout_g^T @ a_g, dout_g = dout's rows of group g
// ([count_g, N]), a_g = a's ([count_g, K]).
void k_grouped_bf16_gemm_tn_contiguous(float* dw, const __nv_bfloat16* dout, const __nv_bfloat16* a,
                                       const std::int32_t* group_counts, std::int64_t num_groups,
                                       std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                       cudaStream_t stream);

// Version 2, Hopper only (sm_90a: wgmma, TMA, warp-specialised persistent
// kernel; ops/cuda/grouped_gemm_sm90.cu). Same contracts, arguments and
// checks as the three above, plus: the current device must be compute
// capability 9.x (throws moebench::Error otherwise).
void m_grouped_bf16_gemm_nt_contiguous_sm90(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* w,
                                            const std::int32_t* group_counts, std::int64_t num_groups,
                                            std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                            cudaStream_t stream);
void m_grouped_bf16_gemm_nn_contiguous_sm90(__nv_bfloat16* da, const __nv_bfloat16* dout, const __nv_bfloat16* w,
                                            const std::int32_t* group_counts, std::int64_t num_groups,
                                            std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                            cudaStream_t stream);
void k_grouped_bf16_gemm_tn_contiguous_sm90(float* dw, const __nv_bfloat16* dout, const __nv_bfloat16* a,
                                            const std::int32_t* group_counts, std::int64_t num_groups,
                                            std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                            cudaStream_t stream);

// The weight gradient of several micro-batches in one pass over dw:
// dw[g] (fp32, += or, accumulate false, =) = sum over segments s of
// dout_s,g^T @ a_s,g (overwriting stores zeros for groups without rows,
// even with no segment at all). Each segment
// is one micro-batch's token-side operands with its own counts and capacity
// (the contract above, per segment); dw is read and written once for all of
// them instead of once per micro-batch (8 bytes per element saved each).
struct KGroupedSegment {
  const __nv_bfloat16* dout;
  const __nv_bfloat16* a;
  const std::int32_t* group_counts;
  std::int64_t m_capacity;
};
inline constexpr int kMaxKGroupedSegments = 8;  // per launch; more are done in several passes
// squares (nullable, device): the sum of the squares of dw's values after
// the call is added to *squares, summed on the way out of the kernel.
void k_grouped_bf16_gemm_tn_contiguous_sm90(float* dw, const KGroupedSegment* segments, int num_segments,
                                            bool accumulate, std::int64_t num_groups, std::int64_t n, std::int64_t k,
                                            double* squares, cudaStream_t stream);

// Megatron-style reference paths for comparison: copy the counts to the host
// (one stream synchronisation per call) and run one cuBLASLt GEMM per
// non-empty group. Same contracts and results; any n, k and alignment.
void m_grouped_bf16_gemm_nt_contiguous_cublaslt_loop(GemmContext& context, __nv_bfloat16* out,
                                                     const __nv_bfloat16* a, const __nv_bfloat16* w,
                                                     const std::int32_t* group_counts, std::int64_t num_groups,
                                                     std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                                     cudaStream_t stream);
void m_grouped_bf16_gemm_nn_contiguous_cublaslt_loop(GemmContext& context, __nv_bfloat16* da,
                                                     const __nv_bfloat16* dout, const __nv_bfloat16* w,
                                                     const std::int32_t* group_counts, std::int64_t num_groups,
                                                     std::int64_t m_capacity, std::int64_t n, std::int64_t k,
                                                     cudaStream_t stream);
void k_grouped_bf16_gemm_tn_contiguous_cublaslt_loop(GemmContext& context, float* dw, const __nv_bfloat16* dout,
                                                     const __nv_bfloat16* a, const std::int32_t* group_counts,
                                                     std::int64_t num_groups, std::int64_t m_capacity,
                                                     std::int64_t n, std::int64_t k, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// w and dw are [G, N, K]; group_counts is i32 [G] on the tensors' device.
// On CUDA the GEMMs run as grouped_gemm_backend() says.
enum class GroupedGemmBackend {
  kSm90,          // the Hopper kernel (wgmma, TMA): the default on Hopper, fastest measured (docs/benchmarks.md)
  kCublasLtLoop,  // one cuBLASLt GEMM per group (counts read once per call): the default elsewhere
  kKernel,        // the own mma.sync kernel (v1)
};
// MOEBENCH_GROUPED_GEMM=sm90|cublaslt|kernel (read once; anything else throws).
GroupedGemmBackend grouped_gemm_backend();

void m_grouped_gemm_nt_contiguous(Tensor& out, const Tensor& a, const Tensor& w, const Tensor& group_counts);
void m_grouped_gemm_nn_contiguous(Tensor& da, const Tensor& dout, const Tensor& w, const Tensor& group_counts);
void k_grouped_gemm_tn_contiguous(Tensor& dw, const Tensor& dout, const Tensor& a, const Tensor& group_counts);

// One micro-batch's operands of a weight gradient: dout [M_s, N], a [M_s, K],
// group_counts i32 [G], as k_grouped_gemm_tn_contiguous takes them.
struct WeightGradientSegment {
  Tensor dout, a, group_counts;
};
// dw[g] += (kAccumulate) or = (kOverwrite) the sum over the segments of
// dout_s,g^T @ a_s,g: the same sums as one k_grouped_gemm_tn_contiguous per
// segment (after zeroing dw, for kOverwrite), but the Hopper kernel reads
// and writes the fp32 dw once for up to kMaxKGroupedSegments of them, and
// when overwriting writes it without reading it. `squares` (optional, f64
// [1] on dw's device): the sum of the squares of dw's values after the call
// is added to it; the Hopper kernel sums them as it writes them.
void k_grouped_gemm_tn_contiguous(Tensor& dw, const std::vector<WeightGradientSegment>& segments,
                                  GemmOutput output = GemmOutput::kAccumulate, Tensor* squares = nullptr);

}  // namespace moebench::ops
