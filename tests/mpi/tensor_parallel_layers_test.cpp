// The tensor-parallel layers against their one-rank twins, with the test
// world as the tp group (TP = 2 or 4): the vocab-parallel cross-entropy
// against ops::cross_entropy_*, the vocab-parallel embedding against the
// unsplit embedding, the row-parallel linear (with its bias) against Linear,
// each with and without sequence parallelism where that applies. Inputs are
// seeded and the same on every rank; each rank checks its own part.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "moebench/core/rng.h"
#include "moebench/dist/tensor_parallel_regions.h"
#include "moebench/model/embedding.h"
#include "moebench/model/linear.h"
#include "moebench/model/tensor_parallel_linear.h"
#include "moebench/model/vocab_parallel_cross_entropy.h"
#include "moebench/ops/cross_entropy.h"
#include "mpi_test_world.h"
#include "zoo_training.h"

namespace moebench::model {
namespace {

using train::relative_difference;

constexpr uint64_t kSeed = 1234;
constexpr double kTolerance = 1e-6;

Tensor random_tensor(const std::vector<int64_t>& shape, const std::string& stream) {
  Tensor tensor = Tensor::empty(shape, DType::F32);
  fill_normal(tensor, CounterRng(kSeed, stream), 0.0f, 1.0f);
  return tensor;
}

// Token ids spread over the whole vocabulary, so every rank's range is hit.
Tensor spread_ids(int64_t count, int64_t vocab) {
  std::vector<int64_t> ids(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) ids[size_t(i)] = (7 * i + 3) % vocab;
  return Tensor::from_vector(ids);
}

// Rows [first, first + count) of `rows` (this rank's tokens under SP).
Tensor rows_of(const Tensor& rows, int64_t first, int64_t count) {
  return rows.slice(0, first, first + count).contiguous();
}

dist::TensorParallelRegions world_as_tp(bool sequence_parallel) {
  return dist::TensorParallelRegions(&dist::test_world(), sequence_parallel);
}

TEST(VocabParallelCrossEntropy, EqualsTheUnsplitCrossEntropy) {
  const dist::TensorParallelRegions tp = world_as_tp(false);
  const int64_t tokens = 6, vocab = 16 * tp.size(), width = vocab / tp.size();
  const Tensor logits = random_tensor({tokens, vocab}, "logits");
  const Tensor labels = spread_ids(tokens, vocab);
  const Tensor dlosses = random_tensor({tokens}, "dlosses");
  Tensor losses = Tensor::empty({tokens}, DType::F32), no_logsumexp;
  ops::cross_entropy_forward(losses, no_logsumexp, logits, labels, vocab);
  Tensor dlogits = Tensor::empty({tokens, vocab}, DType::F32);
  ops::cross_entropy_backward(dlogits, dlosses, logits, labels, no_logsumexp, vocab);

  const VocabParallelCrossEntropy cross_entropy(tp);
  const Tensor own_logits = logits.slice(1, tp.rank() * width, (tp.rank() + 1) * width).contiguous();
  Tensor parallel_losses = Tensor::empty({tokens}, DType::F32), logsumexp;
  cross_entropy.forward(parallel_losses, logsumexp, own_logits, labels, vocab);
  Tensor parallel_dlogits = Tensor::empty({tokens, width}, DType::F32);
  cross_entropy.backward(parallel_dlogits, dlosses, own_logits, labels, logsumexp, vocab);

  EXPECT_LT(relative_difference(parallel_losses, losses), kTolerance);
  const Tensor own_dlogits = dlogits.slice(1, tp.rank() * width, (tp.rank() + 1) * width).contiguous();
  EXPECT_LT(relative_difference(parallel_dlogits, own_dlogits), kTolerance);
}

class VocabParallelEmbedding : public ::testing::TestWithParam<bool> {};

TEST_P(VocabParallelEmbedding, EqualsTheUnsplitEmbedding) {
  const bool sequence_parallel = GetParam();
  const dist::TensorParallelRegions tp = world_as_tp(sequence_parallel);
  const int64_t vocab = 8 * tp.size(), hidden = 6, batch = 2, seq = 4 * tp.size(), tokens = batch * seq;
  const Tensor ids = spread_ids(tokens, vocab).view({batch, seq});
  VocabEmbedding whole(vocab, hidden, 0.02f, kSeed);
  VocabEmbedding split(vocab, hidden, 0.02f, kSeed, tp);
  const int64_t own_rows = vocab / tp.size(), first_row = tp.rank() * own_rows;
  EXPECT_EQ(relative_difference(split.word_embeddings.value,
                                rows_of(whole.word_embeddings.value, first_row, own_rows)),
            0.0);
  const int64_t own_tokens = sequence_parallel ? tokens / tp.size() : tokens;
  const int64_t first_token = sequence_parallel ? tp.rank() * own_tokens : 0;

  const Tensor expected = whole.forward(ids);
  EXPECT_LT(relative_difference(split.forward(ids), rows_of(expected, first_token, own_tokens)), kTolerance);

  const Tensor dout = random_tensor({tokens, hidden}, "dout");
  whole.backward(dout, ids);
  split.backward(rows_of(dout, first_token, own_tokens), ids);
  EXPECT_LT(relative_difference(split.word_embeddings.grad, rows_of(whole.word_embeddings.grad, first_row, own_rows)),
            kTolerance);
}

INSTANTIATE_TEST_SUITE_P(SequenceParallel, VocabParallelEmbedding, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "sequence_parallel" : "all_reduce");
                         });

class RowParallelLinearTest : public ::testing::TestWithParam<bool> {};

// The bias is added once, after the partial outputs are summed.
TEST_P(RowParallelLinearTest, EqualsLinearWithItsBias) {
  const bool sequence_parallel = GetParam();
  const dist::TensorParallelRegions tp = world_as_tp(sequence_parallel);
  const int64_t in = 4 * tp.size(), out = 5, tokens = 2 * tp.size(), width = in / tp.size();
  Linear whole("proj", in, out, 0.5f, kSeed, true);
  RowParallelLinear split("proj", in, out, 0.5f, kSeed, tp, true);
  std::vector<Parameter*> parameters;
  split.collect(parameters);
  ASSERT_EQ(parameters.size(), 2u);
  Parameter& bias = *parameters[1];
  const Tensor bias_values = random_tensor({out}, "bias");
  whole.bias.value.copy_from(bias_values);
  bias.value.copy_from(bias_values);

  const Tensor inp = random_tensor({tokens, in}, "inp");
  const Tensor own_inp = inp.slice(1, tp.rank() * width, (tp.rank() + 1) * width).contiguous();
  const int64_t own_tokens = sequence_parallel ? tokens / tp.size() : tokens;
  const int64_t first_token = sequence_parallel ? tp.rank() * own_tokens : 0;
  EXPECT_LT(relative_difference(split.forward(own_inp), rows_of(whole.forward(inp), first_token, own_tokens)),
            kTolerance);

  const Tensor dout = random_tensor({tokens, out}, "dout");
  const Tensor dinp = whole.backward(dout, inp);
  const Tensor own_dinp = split.backward(rows_of(dout, first_token, own_tokens), own_inp);
  EXPECT_LT(relative_difference(own_dinp, dinp.slice(1, tp.rank() * width, (tp.rank() + 1) * width).contiguous()),
            kTolerance);
  EXPECT_LT(relative_difference(parameters[0]->grad,
                                whole.weight.grad.slice(1, tp.rank() * width, (tp.rank() + 1) * width).contiguous()),
            kTolerance);
  // Under SP each rank's bias gradient covers its tokens: completed over tp, as the trainer does.
  EXPECT_EQ(bias.grad_partial_over_tp, sequence_parallel);
  if (bias.grad_partial_over_tp) tp.all_reduce(bias.grad);
  EXPECT_LT(relative_difference(bias.grad, whole.bias.grad), kTolerance);
}

INSTANTIATE_TEST_SUITE_P(SequenceParallel, RowParallelLinearTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "sequence_parallel" : "all_reduce");
                         });

}  // namespace
}  // namespace moebench::model
