#include "moebench/model/embedding.h"

#include <cstring>

#include "moebench/core/error.h"
#include "moebench/model/tensor_parallel_linear.h"
#include "moebench/model/parameter_init.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/embedding.h"

namespace moebench::model {
namespace {

// Zeroes the rows of `rows` [N, h] (CPU float32) whose token is another rank's.
void zero_outside_rows(Tensor& rows, const Tensor& outside) {
  const int64_t width = rows.size(1);
  for (int64_t t = 0; t < rows.size(0); ++t)
    if (outside.data<int64_t>()[t]) std::memset(rows.data<float>() + t * width, 0, size_t(width) * sizeof(float));
}

}  // namespace

VocabEmbedding::VocabEmbedding(int64_t padded_vocab, int64_t hidden, float std, uint64_t seed,
                               const dist::TensorParallelRegions& tp)
    : word_embeddings(normal_parameter("embedding.word_embeddings.weight", {padded_vocab, hidden}, std, seed,
                                       tensor_parallel_split(tp, 0))),
      tp_(tp) {}

Tensor VocabEmbedding::local_ids(const Tensor& ids, Tensor& outside) const {
  if (!ids.device().is_cpu())
    throw Error("the vocab-parallel embedding runs on the CPU engine only, got ids " + ids.describe() +
                "; train with --device cpu or TP=1");
  const int64_t rows = word_embeddings.value.size(0), first = tp_.rank() * rows;
  Tensor local = Tensor::empty({ids.numel()}, DType::I64);
  outside = Tensor::empty({ids.numel()}, DType::I64);
  for (int64_t t = 0; t < ids.numel(); ++t) {
    const int64_t id = ids.data<int64_t>()[t] - first;
    const bool other = id < 0 || id >= rows;
    outside.data<int64_t>()[t] = other;
    local.data<int64_t>()[t] = other ? 0 : id;
  }
  return local;
}

Tensor VocabEmbedding::forward(const Tensor& input_ids) const {
  const Tensor ids = input_ids.contiguous();
  const Tensor& table = word_embeddings.value;
  Tensor out = ops::empty_like(table, {ids.numel(), table.size(1)});
  if (!tp_.is_parallel()) {
    ops::embedding_forward(out, ids, table);
    return out;
  }
  Tensor outside;
  ops::embedding_forward(out, local_ids(ids, outside), table);
  zero_outside_rows(out, outside);
  return tp_.exit(out);
}

void VocabEmbedding::backward(const Tensor& dout, const Tensor& input_ids) {
  const Tensor ids = input_ids.contiguous();
  if (!tp_.is_parallel()) {
    ops::embedding_backward(word_embeddings.grad, dout, ids);
    return;
  }
  Tensor outside;
  const Tensor local = local_ids(ids, outside);
  Tensor all_tokens = tp_.exit_backward(dout).clone();
  zero_outside_rows(all_tokens, outside);
  ops::embedding_backward(word_embeddings.grad, all_tokens, local);
}

}  // namespace moebench::model
