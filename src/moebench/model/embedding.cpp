#include "moebench/model/embedding.h"

#include "moebench/model/parameter_init.h"
#include "moebench/ops/embedding.h"

namespace moebench::model {

VocabEmbedding::VocabEmbedding(int64_t padded_vocab, int64_t hidden, float std, uint64_t seed)
    : word_embeddings(normal_parameter("embedding.word_embeddings.weight", {padded_vocab, hidden},
                                       std, seed)) {}

Tensor VocabEmbedding::forward(const Tensor& input_ids) const {
  const Tensor ids = input_ids.contiguous();
  const int64_t n = ids.numel();
  const int64_t vocab = word_embeddings.value.size(0);
  const int64_t hidden = word_embeddings.value.size(1);
  Tensor out = Tensor::empty({n, hidden}, DType::F32);
  ops::cpu::embedding_forward(out.data<float>(), ids.data<int64_t>(),
                              word_embeddings.value.data<float>(), n, vocab, hidden);
  return out;
}

void VocabEmbedding::backward(const Tensor& dout, const Tensor& input_ids) {
  const Tensor ids = input_ids.contiguous();
  ops::cpu::embedding_backward(word_embeddings.grad.data<float>(), dout.data<float>(),
                               ids.data<int64_t>(), ids.numel(), word_embeddings.value.size(0),
                               word_embeddings.value.size(1));
}

}  // namespace moebench::model
