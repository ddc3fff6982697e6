// MoE pieces of the CPU reference model on small cases: grouped vs per-expert
// experts, finite differences through the router and its auxiliary losses,
// hand-computed aux / seq-aux / z-loss values, the expert-bias update,
// capacity dropping and forced load balancing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "moebench/dist/single_rank_communicator.h"
#include "moebench/model/gpt_model.h"
#include "moebench/model/moe/router.h"
#include "tiny_moe_config.h"

namespace moebench::model {
namespace {

using config::LoadBalancing;
using config::ModelConfig;
using config::ScoreFunction;

ModelConfig tiny_config() {
  ModelConfig m = moebench::testing::tiny_moe_config();
  m.moe.shared_expert_gate = true;
  m.moe.is_moe_layer = {false, true};
  return m;
}

Tensor tokens(int64_t batch, int64_t seq, int64_t vocab, int64_t shift) {
  std::vector<int64_t> ids(batch * seq);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((i * 7 + 3 + shift) % vocab);
  return Tensor::from_vector(ids, {batch, seq});
}

double total_loss(GPTModel& model) {
  const auto out = model.forward(tokens(2, 6, 32, 0), tokens(2, 6, 32, 1), Tensor());
  return out.lm_loss + out.aux_loss;
}

TEST(ModelMoe, GroupedExpertsEqualThePerExpertLoop) {
  ModelConfig config = tiny_config();
  config.moe.grouped_gemm = true;
  GPTModel grouped(config, 7);
  config.moe.grouped_gemm = false;
  GPTModel looped(config, 7);
  const double grouped_loss = total_loss(grouped);
  grouped.backward(1.0);
  const double looped_loss = total_loss(looped);
  looped.backward(1.0);
  EXPECT_DOUBLE_EQ(grouped_loss, looped_loss);
  for (Parameter* parameter : grouped.parameters()) {
    const Tensor& other = looped.parameter(parameter->name).grad;
    for (int64_t i = 0; i < other.numel(); ++i)
      ASSERT_NEAR(parameter->grad.data<float>()[i], other.data<float>()[i], 1e-6)
          << parameter->name;
  }
}

// Central differences in float32 on a few entries of each named parameter,
// with every auxiliary loss switched on.
void expect_gradients_match_finite_differences(const ModelConfig& config,
                                               const std::vector<std::string>& names) {
  GPTModel model(config, 11);
  model.zero_grad();
  total_loss(model);
  model.backward(1.0);
  const double h = 1e-2;
  for (const std::string& name : names) {
    Parameter& parameter = model.parameter(name);
    float largest = 0;
    for (int64_t i = 0; i < parameter.grad.numel(); ++i)
      largest = std::max(largest, std::abs(parameter.grad.data<float>()[i]));
    EXPECT_GT(largest, 1e-3) << name << " has no gradient to check";
    for (int64_t i : {int64_t(0), parameter.value.numel() / 2 + 1, parameter.value.numel() - 1}) {
      float& value = parameter.value.data<float>()[i];
      const float saved = value;
      value = saved + float(h);
      const double plus = total_loss(model);
      value = saved - float(h);
      const double minus = total_loss(model);
      value = saved;
      const double numeric = (plus - minus) / (2 * h);
      const double analytic = parameter.grad.data<float>()[i];
      EXPECT_NEAR(analytic, numeric, 2e-3 + 2e-2 * std::abs(numeric)) << name << "[" << i << "]";
    }
  }
}

TEST(ModelMoe, SoftmaxRouterWithAuxAndZLossMatchesFiniteDifferences) {
  ModelConfig config = tiny_config();
  config.moe.load_balancing = LoadBalancing::AuxLoss;
  config.moe.aux_loss_coeff = 0.5;
  config.moe.z_loss_coeff = 0.1;
  expect_gradients_match_finite_differences(
      config, {"decoder.layers.1.mlp.router.weight", "decoder.layers.1.mlp.shared_experts.gate_weight",
               "decoder.layers.1.mlp.experts.linear_fc1.weight2"});
}

TEST(ModelMoe, SigmoidRouterWithSeqAuxLossMatchesFiniteDifferences) {
  ModelConfig config = tiny_config();
  config.moe.score_function = ScoreFunction::Sigmoid;
  config.moe.expert_bias = true;
  config.moe.topk_scaling_factor = 2.5;
  config.moe.load_balancing = LoadBalancing::SeqAuxLoss;
  config.moe.aux_loss_coeff = 0.5;
  expect_gradients_match_finite_differences(config, {"decoder.layers.1.mlp.router.weight"});
}

TEST(ModelMoe, PreSoftmaxGroupLimitedRouterMatchesFiniteDifferences) {
  ModelConfig config = tiny_config();
  config.moe.pre_softmax = true;
  config.moe.num_groups = 2;
  config.moe.group_topk = 1;
  config.moe.topk_scaling_factor = 16;
  expect_gradients_match_finite_differences(config, {"decoder.layers.1.mlp.router.weight"});
}

// A router on hidden = E = 3 with weight = identity, so logits = inputs.
struct IdentityRouter {
  ModelConfig config;
  std::unique_ptr<TopKRouter> router;
  explicit IdentityRouter(const config::MoeConfig& moe) {
    config = tiny_config();
    config.hidden_size = 3;
    config.moe = moe;
    router = std::make_unique<TopKRouter>("router", config, 1, ModelConventions{});
    router->weight.value.fill_(0.0);
    for (int e = 0; e < 3; ++e) router->weight.value.data<float>()[e * 3 + e] = 1;
  }
};

config::MoeConfig three_experts(int topk) {
  config::MoeConfig moe;
  moe.num_experts = 3;
  moe.topk = topk;
  moe.ffn_hidden_size = 4;
  moe.is_moe_layer = {true};
  return moe;
}

TEST(ModelMoe, AuxSeqAuxAndZLossValuesByHand) {
  // Two sequences of two tokens; logits ln(p) give softmax scores p exactly.
  const std::vector<float> p = {0.5f, 0.3f, 0.2f, 0.1f, 0.6f, 0.3f,
                                0.2f, 0.2f, 0.6f, 0.7f, 0.2f, 0.1f};
  std::vector<float> logits(p.size());
  for (size_t i = 0; i < p.size(); ++i) logits[i] = std::log(p[i]);
  const Tensor inp = Tensor::from_vector(logits, {4, 3});
  // top-1 experts: token 0 -> 0, 1 -> 1, 2 -> 2, 3 -> 0.

  config::MoeConfig moe = three_experts(1);
  moe.load_balancing = LoadBalancing::AuxLoss;
  moe.aux_loss_coeff = 0.1;
  {
    IdentityRouter r(moe);
    TopKRouter::Context context;
    double aux = 0;
    r.router->forward(inp, 2, 2, context, aux);
    // counts (2, 1, 1); column sums of p (1.5, 1.3, 1.2); coeff * E / (k N^2) = 0.3 / 16.
    EXPECT_NEAR(aux, 0.3 / 16 * (2 * 1.5 + 1 * 1.3 + 1 * 1.2), 1e-6);
  }
  moe.load_balancing = LoadBalancing::SeqAuxLoss;
  {
    IdentityRouter r(moe);
    TopKRouter::Context context;
    double aux = 0;
    r.router->forward(inp, 2, 2, context, aux);
    // Sequence 0: counts (1,1,0), sums (0.6,0.9,0.5); sequence 1: counts (1,0,1), sums (0.9,0.4,0.7).
    // Each: coeff * E / (k S^2) * sum(count * sum); averaged over the 2 sequences.
    const double first = 0.3 / 4 * (0.6 + 0.9), second = 0.3 / 4 * (0.9 + 0.7);
    EXPECT_NEAR(aux, (first + second) / 2, 1e-6);
  }
  moe.load_balancing = LoadBalancing::None;
  moe.z_loss_coeff = 0.01;
  {
    IdentityRouter r(moe);
    TopKRouter::Context context;
    double aux = 0;
    r.router->forward(inp, 2, 2, context, aux);
    // logsumexp(ln p) = ln(sum p) = 0 for rows summing to 1: rows 0-3 all do.
    EXPECT_NEAR(aux, 0.0, 1e-6);
    const Tensor doubled = Tensor::from_vector(std::vector<float>(12, std::log(2.0f)), {4, 3});
    aux = 0;
    r.router->forward(doubled, 2, 2, context, aux);
    EXPECT_NEAR(aux, 0.01 * std::pow(std::log(6.0), 2), 1e-6);  // lse = ln(3 * 2)
  }
}

TEST(ModelMoe, ExpertBiasMovesTowardsBalanceByTheUpdateRate) {
  config::MoeConfig moe = three_experts(1);
  moe.score_function = ScoreFunction::Sigmoid;
  moe.expert_bias = true;
  moe.bias_update_rate = 0.01;
  IdentityRouter r(moe);
  // Tokens pick experts 0, 0, 0, 1: counts (3, 1, 0), mean 4/3.
  const Tensor inp = Tensor::from_vector(
      std::vector<float>{3, 0, 0, 2, 1, 0, 1, 0, 0, 0, 2, 1}, {4, 3});
  TopKRouter::Context context;
  double aux = 0;
  const Routing routing = r.router->forward(inp, 1, 4, context, aux);
  EXPECT_EQ(routing.routing_map.data<int64_t>()[3], 1);
  dist::SingleRankCommunicator one_rank;
  r.router->update_expert_bias(one_rank);
  const float* bias = r.router->expert_bias.data<float>();
  EXPECT_FLOAT_EQ(bias[0], -0.01f);
  EXPECT_FLOAT_EQ(bias[1], 0.01f);
  EXPECT_FLOAT_EQ(bias[2], 0.01f);
  EXPECT_EQ(r.router->local_tokens_per_expert.data<float>()[0], 0.0f);  // counts restart
  // The bias now steers choice but not weight: a tie at 0 goes to the raised expert.
  const Tensor tie = Tensor::from_vector(std::vector<float>{0, 0, 0}, {1, 3});
  const Routing steered = r.router->forward(tie, 1, 1, context, aux);
  EXPECT_EQ(steered.routing_map.data<int64_t>()[0], 1);
  EXPECT_FLOAT_EQ(steered.probs.data<float>()[0], 0.5f);  // sigmoid(0), unbiased
}

TEST(ModelMoe, CapacityDropsTheLowestProbabilityTokens) {
  config::MoeConfig moe = three_experts(1);
  moe.capacity_factor = 1.0;  // capacity = ceil(6 tokens / 3 experts) = 2
  moe.pre_softmax = true;      // top-1 weights differ (softmax over one logit would be 1)
  IdentityRouter r(moe);
  // Every token prefers expert 0, with rising confidence.
  std::vector<float> logits;
  for (int t = 0; t < 6; ++t) logits.insert(logits.end(), {float(t + 1), 0, 0});
  TopKRouter::Context context;
  double aux = 0;
  const Routing routing = r.router->forward(Tensor::from_vector(logits, {6, 3}), 1, 6, context, aux);
  const int64_t* map = routing.routing_map.data<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(map, map + 6), (std::vector<int64_t>{-1, -1, -1, -1, 0, 0}));
  EXPECT_EQ(routing.probs.data<float>()[0], 0.0f);
  EXPECT_EQ(r.router->local_tokens_per_expert.data<float>()[0], 2.0f);
}

TEST(ModelMoe, ForceLoadBalancingSpreadsTokensAndIgnoresTheWeight) {
  config::MoeConfig moe = three_experts(2);
  moe.force_load_balancing = true;
  IdentityRouter r(moe);
  // Inputs that would send every token to expert 0.
  std::vector<float> logits;
  for (int t = 0; t < 600; ++t) logits.insert(logits.end(), {10, 0, 0});
  const Tensor inp = Tensor::from_vector(logits, {600, 3});
  TopKRouter::Context context;
  double aux = 0;
  const Routing routing = r.router->forward(inp, 1, 600, context, aux);
  std::vector<int> counts(3, 0);
  for (int64_t i = 0; i < 1200; ++i) ++counts[routing.routing_map.data<int64_t>()[i]];
  for (int count : counts) EXPECT_NEAR(count, 400, 60);
  const Tensor dinp = r.router->backward(routing.probs, context, 1.0);
  for (int64_t i = 0; i < r.router->weight.grad.numel(); ++i)
    EXPECT_EQ(r.router->weight.grad.data<float>()[i], 0.0f);
  EXPECT_EQ(dinp.data<float>()[0], 0.0f);
}

}  // namespace
}  // namespace moebench::model
