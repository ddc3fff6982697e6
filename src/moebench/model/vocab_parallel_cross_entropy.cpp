#include "moebench/model/vocab_parallel_cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/ops/cross_entropy.h"

namespace moebench::model {
namespace {

// The column of `label` among this rank's `width` columns, or -1 when another rank holds it.
int64_t local_column(int64_t label, int64_t position, int64_t vocab, int64_t first, int64_t width) {
  if (label < 0 || label >= vocab)
    throw Error("vocab-parallel cross-entropy: label " + std::to_string(label) + " at position " +
                std::to_string(position) + " is outside the vocabulary [0, " + std::to_string(vocab) +
                "); labels must be token ids of the model's tokenizer");
  const int64_t column = label - first;
  return column >= 0 && column < width ? column : -1;
}

void check_shapes(const Tensor& logits, const Tensor& labels, int64_t vocab, int ranks) {
  if (logits.dim() != 2 || logits.dtype() != DType::F32 || !logits.device().is_cpu() ||
      logits.size(1) * ranks != vocab || labels.numel() != logits.size(0))
    throw Error("vocab-parallel cross-entropy needs CPU f32 logits [N, vocab / TP] = [N, " +
                std::to_string(vocab / ranks) + "] and N labels, got logits " + logits.describe() + " and labels " +
                labels.describe());
}

}  // namespace

VocabParallelCrossEntropy::VocabParallelCrossEntropy(const dist::TensorParallelRegions& tp) : tp_(tp) {}

void VocabParallelCrossEntropy::forward(Tensor& losses, Tensor& logsumexp, const Tensor& logits,
                                        const Tensor& labels, int64_t vocab) const {
  if (!tp_.is_parallel()) return ops::cross_entropy_forward(losses, logsumexp, logits, labels, vocab);
  check_shapes(logits, labels, vocab, tp_.size());
  const Tensor x = logits.contiguous(), ids = labels.contiguous();
  const int64_t n = x.size(0), width = x.size(1), first = tp_.rank() * width;
  Tensor max = Tensor::empty({n}, DType::F32);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data<float>() + i * width;
    max.data<float>()[i] = *std::max_element(row, row + width);
  }
  tp_.group().all_reduce(max, dist::ReduceOp::kMax);
  // [sum of exp(logit - max) | the label's logit - max], summed over the ranks in one call.
  Tensor sums = Tensor::zeros({2, n}, DType::F32);
  float* sum_exp = sums.data<float>();
  float* label_logit = sum_exp + n;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data<float>() + i * width;
    const float m = max.data<float>()[i];
    for (int64_t j = 0; j < width; ++j) sum_exp[i] += std::exp(row[j] - m);
    const int64_t column = local_column(ids.data<int64_t>()[i], i, vocab, first, width);
    if (column >= 0) label_logit[i] = row[column] - m;
  }
  tp_.all_reduce(sums);
  logsumexp = Tensor::empty({n}, DType::F32);
  for (int64_t i = 0; i < n; ++i) {
    const float log_sum = std::log(sum_exp[i]);
    logsumexp.data<float>()[i] = max.data<float>()[i] + log_sum;
    losses.data<float>()[i] = log_sum - label_logit[i];
  }
}

void VocabParallelCrossEntropy::backward(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                                         const Tensor& labels, const Tensor& logsumexp, int64_t vocab) const {
  if (!tp_.is_parallel())
    return ops::cross_entropy_backward(dlogits, dlosses, logits, labels, logsumexp, vocab);
  check_shapes(logits, labels, vocab, tp_.size());
  const Tensor x = logits.contiguous(), ids = labels.contiguous();
  const int64_t n = x.size(0), width = x.size(1), first = tp_.rank() * width;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data<float>() + i * width;
    float* drow = dlogits.data<float>() + i * width;
    const float lse = logsumexp.data<float>()[i], dloss = dlosses.data<float>()[i];
    for (int64_t j = 0; j < width; ++j) drow[j] = dloss * std::exp(row[j] - lse);
    const int64_t column = local_column(ids.data<int64_t>()[i], i, vocab, first, width);
    if (column >= 0) drow[column] -= dloss;
  }
}

}  // namespace moebench::model
