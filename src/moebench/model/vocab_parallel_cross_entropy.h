#pragma once
// Megatron's vocab_parallel_cross_entropy: the cross-entropy of logits whose
// vocabulary columns are split over the tp ranks (the column-parallel output
// layer's), without assembling the full logits anywhere. Each rank reduces
// its columns to a row maximum, a sum of exponentials and the label's logit
// (zero when the label is another rank's); the max is all-reduced (max), the
// other two (sum); every rank gets every token's loss. With one tp rank this
// is ops::cross_entropy_forward / _backward, unchanged.
#include <cstdint>

#include "moebench/core/tensor.h"
#include "moebench/dist/tensor_parallel_regions.h"

namespace moebench::model {

class VocabParallelCrossEntropy {
 public:
  explicit VocabParallelCrossEntropy(const dist::TensorParallelRegions& tp = {});

  // The contract of ops::cross_entropy_forward over `vocab`, the global
  // (padded) vocabulary, each rank passing its columns: logits [N, vocab/TP],
  // rank r's being columns [r vocab/TP, (r+1) vocab/TP); labels int64 [N] in
  // [0, vocab); losses f32 [N]. With TP > 1 (CPU float32) `logsumexp` is
  // (re)allocated to f32 [N] and keeps what the backward needs.
  void forward(Tensor& losses, Tensor& logsumexp, const Tensor& logits, const Tensor& labels,
               int64_t vocab) const;
  // dlogits [N, vocab/TP] = dlosses * (softmax - onehot) on this rank's columns.
  void backward(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits, const Tensor& labels,
                const Tensor& logsumexp, int64_t vocab) const;

 private:
  dist::TensorParallelRegions tp_;
};

}  // namespace moebench::model
