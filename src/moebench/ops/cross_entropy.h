#pragma once
// Cross-entropy of next-token logits over a padded vocabulary, and the
// loss-mask reduction Megatron applies to the per-token losses.
//
// logits are [N, Vpad]: only the first V columns are vocabulary; the columns
// V..Vpad-1 are ignored (treated as -inf) and get zero gradient. Passing
// V == Vpad softmaxes over every column, as Megatron's
// vocab_parallel_cross_entropy does over its padded vocabulary.
// Labels are int64 in [0, V); anything else throws moebench::Error.
// Activation gradients are written (=). Optional pointers and scalars are
// std::type_identity_t<T> so that T is deduced from the other arrays and
// nullptr or a literal can be passed.
#include <cstdint>

#include "moebench/core/tensor.h"
#include <type_traits>

namespace moebench::ops::cpu {

// losses[N] = logsumexp(logits[i, :V]) - logits[i, labels[i]] (max-subtracted,
// so stable). Instantiated for float and double.
template <typename T>
void cross_entropy_forward(T* losses, const T* logits, const std::int64_t* labels, std::int64_t n,
                           std::int64_t vocab, std::int64_t padded_vocab);

// dlogits[N, Vpad] = dlosses[i] * (softmax(logits[i, :V]) - onehot(labels[i])),
// and 0 in the padded columns.
template <typename T>
void cross_entropy_backward(T* dlogits, const T* dlosses, const T* logits,
                            const std::int64_t* labels, std::int64_t n, std::int64_t vocab,
                            std::int64_t padded_vocab);

// sum(loss_mask * losses) / sum(loss_mask) over N tokens; a null loss_mask
// counts every token. Throws when the mask selects no token.
template <typename T>
T masked_mean_forward(const T* losses, const std::type_identity_t<T>* loss_mask, std::int64_t n);

// dlosses[N] = dmean * loss_mask[i] / sum(loss_mask).
template <typename T>
void masked_mean_backward(T* dlosses, std::type_identity_t<T> dmean,
                          const std::type_identity_t<T>* loss_mask, std::int64_t n);

}  // namespace moebench::ops::cpu

#ifdef MOEBENCH_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace moebench::ops::cuda {

// losses[N] fp32 and logsumexp[N] fp32 (saved for the backward) from bf16
// logits[N, Vpad], reading each row once (online max and sum, fp32). Labels
// are int64 on the device; the GPU cannot throw, so a label outside [0, V)
// gives a NaN loss (and a NaN gradient row), which the loss check reports.
void cross_entropy_forward(float* losses, float* logsumexp, const __nv_bfloat16* logits,
                           const std::int64_t* labels, std::int64_t n, std::int64_t vocab,
                           std::int64_t padded_vocab, cudaStream_t stream);

// dlogits[N, Vpad] bf16 = dlosses[i] * (softmax(logits[i, :V]) - onehot(labels[i])),
// 0 in the padded columns. dlogits may be logits itself (the gradient then
// replaces the logits in place, saving a buffer of N * Vpad).
void cross_entropy_backward(__nv_bfloat16* dlogits, const float* dlosses, const __nv_bfloat16* logits,
                            const std::int64_t* labels, const float* logsumexp, std::int64_t n,
                            std::int64_t vocab, std::int64_t padded_vocab, cudaStream_t stream);

// mean[0] = sum(loss_mask * losses) / sum(loss_mask) over N tokens, in a fixed
// order; a null loss_mask counts every token. A mask summing to 0 gives NaN.
void masked_mean_forward(float* mean, const float* losses, const float* loss_mask, std::int64_t n,
                         cudaStream_t stream);

// dlosses[N] = dmean * loss_mask[i] / sum(loss_mask) (written).
void masked_mean_backward(float* dlosses, float dmean, const float* loss_mask, std::int64_t n,
                          cudaStream_t stream);

}  // namespace moebench::ops::cuda
#endif  // MOEBENCH_WITH_CUDA

namespace moebench::ops {

// Tensor-level ops: check shapes, dtypes and devices, then dispatch on the
// device (CPU f32/f64 -> ops::cpu, CUDA bf16 -> ops::cuda on ops::current_stream()).
// logits [N, Vpad]; labels i64 [N]; losses [N] (f32 on CUDA, the logits'
// dtype on the CPU); logsumexp f32 [N] on CUDA (saved for the backward; may
// be undefined on the CPU, which recomputes it).
void cross_entropy_forward(Tensor& losses, Tensor& logsumexp, const Tensor& logits, const Tensor& labels,
                           int64_t vocab);
// dlogits may be logits itself on CUDA (in place).
void cross_entropy_backward(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits, const Tensor& labels,
                            const Tensor& logsumexp, int64_t vocab);
// mean [1] (losses' dtype) = masked mean of losses; loss_mask [N] may be undefined.
void masked_mean_forward(Tensor& mean, const Tensor& losses, const Tensor& loss_mask);
void masked_mean_backward(Tensor& dlosses, double dmean, const Tensor& loss_mask);

}  // namespace moebench::ops
