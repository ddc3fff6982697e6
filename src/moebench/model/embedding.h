#pragma once
// Megatron's LanguageModelEmbedding without position embeddings (RoPE is
// applied in attention): embedding.word_embeddings.weight [padded vocab, h].
//
// Vocab-parallel as Megatron's VocabParallelEmbedding: tp rank r holds rows
// [r V/TP, (r+1) V/TP) of the table; ids outside its range look up zeros and
// the ranks' partial rows are summed, all-reduced or, under sequence
// parallelism, reduce-scattered onto each rank's token rows.
#include <cstdint>

#include "moebench/dist/tensor_parallel_regions.h"
#include "moebench/model/parameter.h"

namespace moebench::model {

struct VocabEmbedding {
  Parameter word_embeddings;  // [padded_vocab / TP, hidden]: this rank's vocabulary rows

  VocabEmbedding(int64_t padded_vocab, int64_t hidden, float std, uint64_t seed,
                 const dist::TensorParallelRegions& tp = {});

  // input_ids int64 [B, S] -> hidden [B*S, h] (rows in batch-major token order;
  // this rank's rows under SP).
  Tensor forward(const Tensor& input_ids) const;
  // Accumulates word_embeddings.grad from dout (shaped as forward's output).
  void backward(const Tensor& dout, const Tensor& input_ids);

 private:
  // The ids relative to this rank's first row, out-of-range ones as 0 and
  // flagged in `outside` (int64 [N], 1 where the id is another rank's).
  Tensor local_ids(const Tensor& ids, Tensor& outside) const;

  dist::TensorParallelRegions tp_;
};

}  // namespace moebench::model
