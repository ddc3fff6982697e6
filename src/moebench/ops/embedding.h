#pragma once
// Token embedding lookup: row ids[i] of table[V,C] becomes row i of out.
// Ids outside [0, V) throw moebench::Error. The table gradient accumulates (+=).
#include <cstdint>

#include "moebench/core/tensor.h"

namespace moebench::ops::cpu {

// out[N,C] = table[ids[i], :] for each of the N ids; `vocab` is V, the
// table's row count (Megatron's padded vocabulary size).
// Instantiated for float and double.
template <typename T>
void embedding_forward(T* out, const std::int64_t* ids, const T* table, std::int64_t n,
                       std::int64_t vocab, std::int64_t c);

// dtable[ids[i], :] += dout[i, :]; repeated ids sum their gradients.
template <typename T>
void embedding_backward(T* dtable, const T* dout, const std::int64_t* ids, std::int64_t n,
                        std::int64_t vocab, std::int64_t c);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace moebench::ops::cuda {

// out[N,C] bf16 = table[ids[i], :] for int64 ids on the device. The GPU cannot
// throw, so an id outside [0, V) gives a row of NaN (the loss then reports it).
void embedding_forward(__nv_bfloat16* out, const std::int64_t* ids, const __nv_bfloat16* table,
                       std::int64_t n, std::int64_t vocab, std::int64_t c, cudaStream_t stream);

// Bytes of device scratch embedding_backward needs for n ids and a vocabulary
// of V rows (the sort of the ids and its temporary storage).
std::size_t embedding_backward_scratch_bytes(std::int64_t n, std::int64_t vocab);

// dtable[ids[i], :] += dout[i, :] (fp32 dtable, bf16 dout), deterministic: the
// ids are sorted (stably, keeping token order within an id) and each run of
// equal ids is summed in token order by one warp per 256 columns, so every
// row of dtable is written by exactly one thread per column and no float
// atomics are used. Ids outside [0, V) are skipped. `scratch` holds
// embedding_backward_scratch_bytes(n, vocab) bytes, 256-byte aligned.
void embedding_backward(float* dtable, const __nv_bfloat16* dout, const std::int64_t* ids, std::int64_t n,
                        std::int64_t vocab, std::int64_t c, void* scratch, cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// ids i64 [N] (any shape) on the table's device; out [N, C]; on CUDA dtable is f32.
void embedding_forward(Tensor& out, const Tensor& ids, const Tensor& table);
void embedding_backward(Tensor& dtable, const Tensor& dout, const Tensor& ids);

}  // namespace moebench::ops
