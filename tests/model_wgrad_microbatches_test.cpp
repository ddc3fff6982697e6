// --moe-wgrad-microbatches on the CPU reference model: the routed experts
// keep their weight-gradient operands until N backwards have run (or a flush
// comes), and the gradients are then those of computing each micro-batch's
// weight gradient in its own backward (N = 1, Megatron's order), for the
// experts alone and for a GPTModel over several micro-batches with N dividing
// them or not; a bad N fails when the experts are built.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/model/gpt_model.h"
#include "moebench/model/moe/grouped_experts.h"
#include "tiny_moe_config.h"

namespace moebench::model {
namespace {

using config::ModelConfig;
using ::testing::HasSubstr;

ModelConfig tiny_config(int wgrad_microbatches) {
  ModelConfig m = moebench::testing::tiny_moe_config();
  m.moe.is_moe_layer = {true, true};
  m.moe.aux_loss_coeff = 0.1;
  m.moe.grouped_gemm = true;
  m.moe.wgrad_microbatches = wgrad_microbatches;
  return m;
}

// Deterministic values in [-1, 1) of the given shape.
Tensor filled(const std::vector<int64_t>& shape, int salt) {
  int64_t numel = 1;
  for (int64_t size : shape) numel *= size;
  std::vector<float> values(static_cast<size_t>(numel));
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(int64_t((i * 37 + 11 * salt) % 101) - 50) / 50.0f;
  return Tensor::from_vector(values, shape);
}

// Largest |a - b| relative to b's largest magnitude.
double relative_difference(const Tensor& a, const Tensor& b) {
  double difference = 0, scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    difference = std::max(difference, double(std::abs(a.data<float>()[i] - b.data<float>()[i])));
    scale = std::max(scale, double(std::abs(b.data<float>()[i])));
  }
  return difference / std::max(scale, 1e-30);
}

bool all_zero(const Tensor& t) {
  return std::all_of(t.data<float>(), t.data<float>() + t.numel(), [](float v) { return v == 0.0f; });
}

// One micro-batch of expert-sorted rows: counts per expert (expert 2 gets none).
struct ExpertRows {
  std::vector<int64_t> counts;
  Tensor inp, dout;
};

ExpertRows expert_rows(int microbatch) {
  const std::vector<int64_t> counts = {3, 2 + microbatch, 0, 4};
  int64_t rows = 0;
  for (int64_t c : counts) rows += c;
  return {counts, filled({rows, 16}, 2 * microbatch), filled({rows, 16}, 2 * microbatch + 1)};
}

std::vector<Parameter*> parameters_of(GroupedExperts& experts) {
  std::vector<Parameter*> parameters;
  experts.collect(parameters);
  return parameters;
}

TEST(WgradMicrobatches, ExpertGradientsArriveAtTheNthBackwardOrAtTheFlush) {
  GroupedExperts once("experts", tiny_config(1), 3);
  GroupedExperts batched("experts", tiny_config(3), 3);
  const std::vector<Parameter*> reference = parameters_of(once), kept = parameters_of(batched);
  const auto expect_same_gradients = [&](const char* when) {
    for (size_t p = 0; p < kept.size(); ++p)
      EXPECT_LT(relative_difference(kept[p]->grad, reference[p]->grad), 1e-6) << kept[p]->name << " " << when;
  };
  for (int microbatch = 0; microbatch < 5; ++microbatch) {
    const ExpertRows rows = expert_rows(microbatch);
    GroupedExperts::Context once_context, batched_context;
    once.forward(rows.inp, rows.counts, once_context);
    batched.forward(rows.inp, rows.counts, batched_context);
    const Tensor once_dinp = once.backward(rows.dout, once_context);
    // The data gradient is returned at once either way.
    EXPECT_LT(relative_difference(batched.backward(rows.dout, batched_context), once_dinp), 1e-6);
    if (microbatch < 2) {
      for (Parameter* parameter : kept)
        EXPECT_TRUE(all_zero(parameter->grad)) << parameter->name << " after micro-batch " << microbatch;
    }
    // The third backward adds the three kept micro-batches.
    if (microbatch == 2) expect_same_gradients("after the third micro-batch");
  }
  // Micro-batches 3 and 4 wait for the flush.
  EXPECT_GT(relative_difference(kept[0]->grad, reference[0]->grad), 1e-3);
  batched.flush_weight_gradients();
  expect_same_gradients("after the flush");
  // Nothing is left to add.
  batched.flush_weight_gradients();
  expect_same_gradients("after a second flush");
}

// Stale values in every expert gradient, as a previous step leaves them.
void make_gradients_stale(GroupedExperts& experts) {
  for (Parameter* parameter : parameters_of(experts)) parameter->grad.copy_from(filled(parameter->grad.shape(), 9));
}

TEST(WgradMicrobatches, ZeroGradDropsWhatIsKeptAndTheFlushZeroes) {
  GroupedExperts experts("experts", tiny_config(2), 3);
  const ExpertRows rows = expert_rows(0);
  GroupedExperts::Context context;
  experts.forward(rows.inp, rows.counts, context);
  experts.backward(rows.dout, context);
  make_gradients_stale(experts);
  experts.zero_grad();
  experts.flush_weight_gradients();
  for (Parameter* parameter : parameters_of(experts)) EXPECT_TRUE(all_zero(parameter->grad)) << parameter->name;
}

// With N > 1 zero_grad leaves the zeroing to the first flush, which
// overwrites the stale gradients: the same gradients as zeroing first.
TEST(WgradMicrobatches, TheFirstFlushAfterZeroGradOverwrites) {
  GroupedExperts once("experts", tiny_config(1), 3);
  GroupedExperts batched("experts", tiny_config(2), 3);
  make_gradients_stale(once);
  make_gradients_stale(batched);
  once.zero_grad();
  batched.zero_grad();
  for (int microbatch = 0; microbatch < 3; ++microbatch) {  // a flush at the 2nd, a remainder of one
    const ExpertRows rows = expert_rows(microbatch);
    GroupedExperts::Context once_context, batched_context;
    once.forward(rows.inp, rows.counts, once_context);
    batched.forward(rows.inp, rows.counts, batched_context);
    once.backward(rows.dout, once_context);
    batched.backward(rows.dout, batched_context);
  }
  batched.flush_weight_gradients();
  const std::vector<Parameter*> reference = parameters_of(once), kept = parameters_of(batched);
  for (size_t p = 0; p < kept.size(); ++p)
    EXPECT_LT(relative_difference(kept[p]->grad, reference[p]->grad), 1e-6) << kept[p]->name;
}

std::string construction_error(const ModelConfig& config) {
  try {
    GroupedExperts("experts", config, 3);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WgradMicrobatches, BadValuesFailWhenTheExpertsAreBuilt) {
  EXPECT_THAT(construction_error(tiny_config(0)), HasSubstr("--moe-wgrad-microbatches 0 must be at least 1"));
  EXPECT_THAT(construction_error(tiny_config(-1)), HasSubstr("--moe-wgrad-microbatches -1 must be at least 1"));
  ModelConfig sequential = tiny_config(2);
  sequential.moe.grouped_gemm = false;
  EXPECT_THAT(construction_error(sequential),
              HasSubstr("--moe-wgrad-microbatches 2 batches the weight gradients of the grouped experts only; add "
                        "--moe-grouped-gemm"));
  sequential.moe.wgrad_microbatches = 1;
  EXPECT_EQ(construction_error(sequential), "");
}

Tensor tokens(int64_t shift) {
  std::vector<int64_t> ids(2 * 6);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((i * 7 + 3 + 5 * shift) % 32);
  return Tensor::from_vector(ids, {2, 6});
}

// The gradients after `microbatches` forwards and backwards (each scaled by
// 1 / microbatches, as the trainer does) and a flush.
std::vector<Tensor> accumulated_gradients(int wgrad_microbatches, int microbatches) {
  GPTModel model(tiny_config(wgrad_microbatches), 11);
  model.zero_grad();
  for (int m = 0; m < microbatches; ++m) {
    model.forward(tokens(m), tokens(m + 1), Tensor());
    model.backward(1.0 / microbatches);
  }
  model.flush_weight_gradients();
  std::vector<Tensor> gradients;
  for (Parameter* parameter : model.parameters()) gradients.push_back(parameter->grad.clone());
  return gradients;
}

TEST(WgradMicrobatches, ModelGradientsEqualOneMicrobatchAtATime) {
  const std::vector<Tensor> reference = accumulated_gradients(1, 4);
  const std::vector<std::string> names = [] {
    std::vector<std::string> names;
    GPTModel model(tiny_config(1), 11);
    for (Parameter* parameter : model.parameters()) names.push_back(parameter->name);
    return names;
  }();
  // 2 divides the 4 micro-batches; 3 leaves one for the flush; 8 keeps all four.
  for (int n : {2, 3, 8}) {
    const std::vector<Tensor> batched = accumulated_gradients(n, 4);
    ASSERT_EQ(batched.size(), reference.size());
    for (size_t p = 0; p < batched.size(); ++p) {
      EXPECT_FALSE(all_zero(reference[p])) << names[p];
      EXPECT_LT(relative_difference(batched[p], reference[p]), 1e-5) << names[p] << " with N " << n;
    }
  }
}

TEST(WgradMicrobatches, ZeroGradDropsWhatIsKept) {
  GPTModel model(tiny_config(2), 11);
  model.forward(tokens(0), tokens(1), Tensor());
  model.backward(1.0);
  model.zero_grad();
  model.flush_weight_gradients();
  for (Parameter* parameter : model.parameters()) EXPECT_TRUE(all_zero(parameter->grad)) << parameter->name;
  // A step after the zeroing sees only its own micro-batches.
  const std::vector<Tensor> reference = accumulated_gradients(1, 1);
  model.forward(tokens(0), tokens(1), Tensor());
  model.backward(1.0);
  model.flush_weight_gradients();
  const std::vector<Parameter*> parameters = model.parameters();
  for (size_t p = 0; p < parameters.size(); ++p)
    EXPECT_LT(relative_difference(parameters[p]->grad, reference[p]), 1e-5) << parameters[p]->name;
}

}  // namespace
}  // namespace moebench::model
