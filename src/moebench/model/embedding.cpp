#include "moebench/model/embedding.h"

#include "moebench/model/parameter_init.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/embedding.h"

namespace moebench::model {

VocabEmbedding::VocabEmbedding(int64_t padded_vocab, int64_t hidden, float std, uint64_t seed)
    : word_embeddings(normal_parameter("embedding.word_embeddings.weight", {padded_vocab, hidden},
                                       std, seed)) {}

Tensor VocabEmbedding::forward(const Tensor& input_ids) const {
  const Tensor ids = input_ids.contiguous();
  const Tensor& table = word_embeddings.value;
  Tensor out = ops::empty_like(table, {ids.numel(), table.size(1)});
  ops::embedding_forward(out, ids, table);
  return out;
}

void VocabEmbedding::backward(const Tensor& dout, const Tensor& input_ids) {
  const Tensor ids = input_ids.contiguous();
  ops::embedding_backward(word_embeddings.grad, dout, ids);
}

}  // namespace moebench::model
