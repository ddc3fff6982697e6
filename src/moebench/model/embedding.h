#pragma once
// Megatron's LanguageModelEmbedding without position embeddings (RoPE is
// applied in attention): embedding.word_embeddings.weight [padded vocab, h].
#include <cstdint>

#include "moebench/model/parameter.h"

namespace moebench::model {

struct VocabEmbedding {
  Parameter word_embeddings;  // [padded_vocab, hidden]

  VocabEmbedding(int64_t padded_vocab, int64_t hidden, float std, uint64_t seed);

  // input_ids int64 [B, S] -> hidden [B*S, h] (rows in batch-major token order).
  Tensor forward(const Tensor& input_ids) const;
  // Accumulates word_embeddings.grad from dout [B*S, h].
  void backward(const Tensor& dout, const Tensor& input_ids);
};

}  // namespace moebench::model
