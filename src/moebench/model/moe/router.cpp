#include "moebench/model/moe/router.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/core/rng.h"
#include "moebench/model/parameter_init.h"
#include "moebench/ops/activation.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/gemm.h"
#include "moebench/ops/permute.h"

namespace moebench::model {
namespace {

using config::LoadBalancing;
using config::ScoreFunction;

// Megatron's sigmoid top-k > 1 renormalisation guard.
constexpr float kNormaliseEps = 1e-20f;

// Gradient of a = s / (sum(s) + eps), s = sigmoid(l), for one row of `count`
// entries: dl = (da - sum(da * a)) / Z * s * (1 - s).
void normalised_sigmoid_backward(float* dlogits, const float* da, const float* a,
                                 const float* s, int64_t count, bool normalised) {
  float z = kNormaliseEps, dot = 0;
  for (int64_t i = 0; i < count; ++i) {
    z += s[i];
    dot += da[i] * a[i];
  }
  for (int64_t i = 0; i < count; ++i) {
    const float ds = normalised ? (da[i] - dot) / z : da[i];
    dlogits[i] = ds * s[i] * (1 - s[i]);
  }
}

// The convention's group score, or Megatron's: the sum of each group's top
// topk/group_topk scores.
ops::GroupScore megatron_group_score(const config::MoeConfig& moe,
                                     const ModelConventions& conventions) {
  if (conventions.group_score) return *conventions.group_score;
  if (moe.num_groups == 0) return ops::GroupScore::kMax;  // unused
  const int per_group = moe.group_topk > 0 ? moe.topk / moe.group_topk : 0;
  if (per_group == 1) return ops::GroupScore::kMax;
  if (per_group == 2) return ops::GroupScore::kTop2Sum;
  throw Error("group-limited routing with topk " + std::to_string(moe.topk) + " and group topk " +
              std::to_string(moe.group_topk) + " ranks groups by their top " +
              std::to_string(per_group) + " scores; only 1 or 2 are supported");
}

}  // namespace

TopKRouter::TopKRouter(const std::string& prefix, const config::ModelConfig& config,
                       uint64_t seed, const ModelConventions& conventions,
                       const dist::TensorParallelRegions& tp)
    : weight(normal_parameter(prefix + ".weight",
                              {config.moe.num_experts, config.hidden_size},
                              float(config.init_method_std), seed)),
      expert_bias(Tensor::zeros({config.moe.num_experts}, DType::F32)),
      local_tokens_per_expert(Tensor::zeros({config.moe.num_experts}, DType::F32)),
      moe_(config.moe),
      tp_(tp),
      group_score_(megatron_group_score(config.moe, conventions)),
      prefix_(prefix),
      seed_(seed) {
  weight.grad_partial_over_tp = tp.sequence_parallel();
}

Tensor TopKRouter::compute_logits(const Tensor& inp) {
  const int64_t n = inp.size(0), experts = weight.value.size(0);
  Tensor logits = Tensor::empty({n, experts}, DType::F32);
  if (moe_.force_load_balancing) {
    // Fresh normal logits per call, so every expert gets tokens in expectation.
    const CounterRng rng(seed_, prefix_ + ".force_load_balancing");
    const uint64_t offset = forward_calls_ * uint64_t(n * experts);
    for (int64_t i = 0; i < n * experts; ++i) logits.data<float>()[i] = rng.normal(offset + i);
  } else {
    ops::linear_forward(logits, inp, weight.value, Tensor());
  }
  ++forward_calls_;
  return logits;
}

void TopKRouter::select_topk(const Tensor& logits, Context& context) const {
  const int64_t n = logits.size(0), experts = logits.size(1), k = moe_.topk;
  context.indices = Tensor::empty({n, k}, DType::I64);
  context.topk_probs = Tensor::empty({n, k}, DType::F32);
  int64_t* indices = context.indices.data<int64_t>();
  float* probs = context.topk_probs.data<float>();
  auto topk_of = [&](const float* scores, float* values) {
    if (moe_.num_groups > 0) {
      ops::cpu::group_limited_topk(values, indices, scores, n, experts, k, moe_.num_groups,
                                   moe_.group_topk, group_score_);
    } else {
      ops::cpu::topk(values, indices, scores, n, experts, k);
    }
  };

  if (moe_.score_function == ScoreFunction::Softmax) {
    if (!moe_.pre_softmax) {
      context.topk_logits = Tensor::empty({n, k}, DType::F32);
      topk_of(logits.data<float>(), context.topk_logits.data<float>());
      ops::cpu::softmax_forward(probs, context.topk_logits.data<float>(), n, k);
      return;
    }
    context.scores = Tensor::empty({n, experts}, DType::F32);
    ops::cpu::softmax_forward(context.scores.data<float>(), logits.data<float>(), n, experts);
    topk_of(context.scores.data<float>(), probs);
    return;
  }

  context.scores = Tensor::empty({n, experts}, DType::F32);
  const float* scores = context.scores.data<float>();
  ops::cpu::sigmoid_forward(context.scores.data<float>(), logits.data<float>(), n * experts);
  if (moe_.expert_bias) {
    // Choose on the biased scores, weigh by the unbiased ones.
    Tensor biased = context.scores.clone();
    for (int64_t t = 0; t < n; ++t)
      for (int64_t e = 0; e < experts; ++e)
        biased.data<float>()[t * experts + e] += expert_bias.data<float>()[e];
    topk_of(biased.data<float>(), probs);
    for (int64_t i = 0; i < n * k; ++i) probs[i] = scores[(i / k) * experts + indices[i]];
  } else {
    topk_of(scores, probs);
  }
  if (k > 1) {
    for (int64_t t = 0; t < n; ++t) {
      float sum = kNormaliseEps;
      for (int64_t i = 0; i < k; ++i) sum += probs[t * k + i];
      for (int64_t i = 0; i < k; ++i) probs[t * k + i] /= sum;
    }
  }
}

double TopKRouter::auxiliary_losses(const Tensor& logits, Context& context) const {
  const int64_t n = logits.size(0), experts = logits.size(1), k = moe_.topk;
  const bool balance = moe_.load_balancing != LoadBalancing::None && moe_.aux_loss_coeff > 0;
  const bool z_loss = moe_.z_loss_coeff > 0;
  if (!balance && !z_loss) return 0.0;
  context.aux_dlogits = Tensor::zeros({n, experts}, DType::F32);
  float* aux_dlogits = context.aux_dlogits.data<float>();
  double loss = 0;

  if (balance) {
    // Scores of the aux loss: softmax, or sigmoid normalised per token for k > 1.
    const bool sigmoid = moe_.score_function == ScoreFunction::Sigmoid;
    Tensor sig = Tensor::empty({n, experts}, DType::F32);
    Tensor scores = Tensor::empty({n, experts}, DType::F32);
    float* p = scores.data<float>();
    if (sigmoid) {
      ops::cpu::sigmoid_forward(sig.data<float>(), logits.data<float>(), n * experts);
      for (int64_t t = 0; t < n; ++t) {
        float sum = kNormaliseEps;
        for (int64_t e = 0; e < experts; ++e) sum += sig.data<float>()[t * experts + e];
        for (int64_t e = 0; e < experts; ++e)
          p[t * experts + e] = k > 1 ? sig.data<float>()[t * experts + e] / sum
                                     : sig.data<float>()[t * experts + e];
      }
    } else {
      ops::cpu::softmax_forward(p, logits.data<float>(), n, experts);
    }
    std::vector<float> values(n * k);
    std::vector<int64_t> chosen(n * k);
    ops::cpu::topk(values.data(), chosen.data(), p, n, experts, k);

    // A "sequence" is the whole batch for aux_loss, one row of [B, S] for
    // seq_aux_loss. Under SP this rank's rows start at global row `first`.
    const bool per_sequence = moe_.load_balancing == LoadBalancing::SeqAuxLoss;
    const int64_t sequences = per_sequence ? context.batch : 1;
    const int64_t shards = tp_.sequence_parallel() ? tp_.size() : 1;
    const int64_t length = n * shards / sequences;
    const int64_t first = tp_.sequence_parallel() ? tp_.rank() * n : 0;
    const double scale = moe_.aux_loss_coeff * experts /
                         (double(k) * double(length) * double(length) * double(sequences));
    Tensor counts = Tensor::zeros({sequences, experts}, DType::F64);
    double* count = counts.data<double>();
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < k; ++i) count[(first + t) / length * experts + chosen[t * k + i]] += 1;
    if (tp_.sequence_parallel()) tp_.all_reduce(counts);
    std::vector<float> dscores(n * experts);
    for (int64_t t = 0; t < n; ++t) {
      const double* sequence_counts = count + (first + t) / length * experts;
      for (int64_t e = 0; e < experts; ++e) {
        loss += scale * sequence_counts[e] * p[t * experts + e];
        dscores[t * experts + e] = float(scale * sequence_counts[e]);
      }
    }
    std::vector<float> dlogits(n * experts);
    if (sigmoid) {
      for (int64_t t = 0; t < n; ++t)
        normalised_sigmoid_backward(dlogits.data() + t * experts, dscores.data() + t * experts,
                                    p + t * experts, sig.data<float>() + t * experts, experts,
                                    k > 1);
    } else {
      ops::cpu::softmax_backward(dlogits.data(), dscores.data(), p, n, experts);
    }
    for (int64_t i = 0; i < n * experts; ++i) aux_dlogits[i] += dlogits[i];
  }

  if (z_loss) {
    // The mean over every token of the tp ranks (Megatron divides the coefficient by TP).
    const double tokens = double(n) * double(tp_.sequence_parallel() ? tp_.size() : 1);
    const float* l = logits.data<float>();
    for (int64_t t = 0; t < n; ++t) {
      const float* row = l + t * experts;
      const double max = *std::max_element(row, row + experts);
      double sum = 0;
      for (int64_t e = 0; e < experts; ++e) sum += std::exp(row[e] - max);
      const double lse = max + std::log(sum);
      loss += moe_.z_loss_coeff * lse * lse / tokens;
      for (int64_t e = 0; e < experts; ++e)
        aux_dlogits[t * experts + e] +=
            float(moe_.z_loss_coeff * 2.0 * lse / tokens * std::exp(row[e] - lse));
    }
  }
  return loss;
}

Routing TopKRouter::forward(const Tensor& inp, int64_t batch, int64_t seq, Context& context,
                            double& aux_loss) {
  if (inp.device().is_cuda()) return forward_on_device(inp, batch, seq, context);
  const int64_t n = inp.size(0), experts = weight.value.size(0), k = moe_.topk;
  context.batch = batch;
  context.seq = seq;
  context.inp = inp;
  const Tensor logits = compute_logits(inp);
  select_topk(logits, context);
  double layer_aux_loss = auxiliary_losses(logits, context);
  if (tp_.sequence_parallel()) {
    Tensor shares = Tensor::from_vector(std::vector<double>{layer_aux_loss});
    tp_.all_reduce(shares);
    layer_aux_loss = shares.data<double>()[0];
  }
  aux_loss += layer_aux_loss;

  Routing routing{context.indices.clone(), context.topk_probs.clone()};
  float* probs = routing.probs.data<float>();
  for (int64_t i = 0; i < n * k; ++i) probs[i] *= float(moe_.topk_scaling_factor);
  if (moe_.capacity_factor > 0) {
    const auto capacity = int64_t(std::ceil(double(n * k) / experts * moe_.capacity_factor));
    ops::cpu::drop_tokens_over_capacity(routing.routing_map.data<int64_t>(), probs, n, k, experts,
                                        capacity);
  }
  const int64_t* map = routing.routing_map.data<int64_t>();
  for (int64_t i = 0; i < n * k; ++i)
    if (map[i] >= 0) local_tokens_per_expert.data<float>()[map[i]] += 1;
  return routing;
}

Tensor TopKRouter::backward(const Tensor& dprobs, const Context& context, double loss_scale) {
  Tensor dinp = ops::empty_like(context.inp);
  ops::zero_(dinp);
  backward_accumulate(dinp, dprobs, context, loss_scale);
  return dinp;
}

void TopKRouter::backward_accumulate(Tensor& dinp, const Tensor& dprobs, const Context& context,
                                     double loss_scale) {
  if (moe_.force_load_balancing) return;  // random logits do not depend on the weight
  const Tensor dlogits = context.inp.device().is_cuda() ? logits_gradient_on_device(dprobs, context, loss_scale)
                                                        : logits_gradient(dprobs, context, loss_scale);
  Tensor no_bias;
  ops::linear_backward(dinp, weight.grad, no_bias, ops::cast(dlogits, context.inp.dtype()), context.inp,
                       weight.value, ops::GemmOutput::kAccumulate);
}

Tensor TopKRouter::logits_gradient(const Tensor& dprobs, const Context& context, double loss_scale) const {
  const int64_t n = context.inp.size(0), experts = weight.value.size(0), k = moe_.topk;
  std::vector<float> dvalues(n * k);
  for (int64_t i = 0; i < n * k; ++i)
    dvalues[i] = dprobs.data<float>()[i] * float(moe_.topk_scaling_factor);
  const int64_t* indices = context.indices.data<int64_t>();
  Tensor dlogits = Tensor::zeros({n, experts}, DType::F32);
  float* dl = dlogits.data<float>();

  if (moe_.score_function == ScoreFunction::Softmax && !moe_.pre_softmax) {
    std::vector<float> dselected(n * k);
    ops::cpu::softmax_backward(dselected.data(), dvalues.data(),
                               context.topk_probs.data<float>(), n, k);
    for (int64_t i = 0; i < n * k; ++i) dl[(i / k) * experts + indices[i]] += dselected[i];
  } else if (moe_.score_function == ScoreFunction::Softmax) {
    std::vector<float> dscores(n * experts, 0.0f);
    for (int64_t i = 0; i < n * k; ++i) dscores[(i / k) * experts + indices[i]] += dvalues[i];
    ops::cpu::softmax_backward(dl, dscores.data(), context.scores.data<float>(), n, experts);
  } else {
    std::vector<float> selected(k), dselected(k);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t i = 0; i < k; ++i)
        selected[i] = context.scores.data<float>()[t * experts + indices[t * k + i]];
      normalised_sigmoid_backward(dselected.data(), dvalues.data() + t * k,
                                  context.topk_probs.data<float>() + t * k, selected.data(), k,
                                  k > 1);
      for (int64_t i = 0; i < k; ++i) dl[t * experts + indices[t * k + i]] += dselected[i];
    }
  }
  if (context.aux_dlogits.defined()) {
    for (int64_t i = 0; i < n * experts; ++i)
      dl[i] += float(loss_scale) * context.aux_dlogits.data<float>()[i];
  }
  return dlogits;
}

ops::RouterConfig TopKRouter::router_config() const {
  ops::RouterConfig config;
  config.num_experts = moe_.num_experts;
  config.topk = moe_.topk;
  config.score_function = moe_.score_function == ScoreFunction::Sigmoid ? ops::RouterScoreFunction::kSigmoid
                                                                        : ops::RouterScoreFunction::kSoftmax;
  config.pre_softmax = moe_.pre_softmax;
  config.num_groups = moe_.num_groups;
  config.group_topk = moe_.group_topk;
  config.group_score = group_score_;
  config.scaling_factor = float(moe_.topk_scaling_factor);
  config.aux_loss_coeff =
      moe_.load_balancing != LoadBalancing::None && moe_.aux_loss_coeff > 0 ? float(moe_.aux_loss_coeff) : 0.0f;
  config.z_loss_coeff = moe_.z_loss_coeff > 0 ? float(moe_.z_loss_coeff) : 0.0f;
  return config;
}

int64_t TopKRouter::tokens_per_sequence(int64_t batch, int64_t seq) const {
  return moe_.load_balancing == LoadBalancing::SeqAuxLoss ? seq : batch * seq;
}

Routing TopKRouter::forward_on_device(const Tensor& inp, int64_t batch, int64_t seq, Context& context) {
  if (moe_.capacity_factor > 0)
    throw Error("--moe-expert-capacity-factor (token dropping) is not supported on the GPU yet; drop the flag "
                "or run with --device cpu");
  const int64_t n = inp.size(0), experts = weight.value.size(0), k = moe_.topk;
  const Device device = inp.device();
  context.batch = batch;
  context.seq = seq;
  context.inp = inp;
  if (moe_.force_load_balancing) {
    // The CPU's random logits, uploaded (a small copy per layer and microbatch).
    context.logits = ops::to_device_of(compute_logits(Tensor::empty({n, 0}, DType::F32)), inp);
  } else {
    context.logits = Tensor::empty({n, experts}, DType::F32, device);
    ops::linear_forward(context.logits, inp, weight.value, Tensor());
    ++forward_calls_;
  }
  const ops::RouterConfig config = router_config();
  const int64_t per_sequence = tokens_per_sequence(batch, seq);
  context.statistics = ops::zero_router_statistics(config, n / per_sequence, device);
  Routing routing{Tensor::empty({n, k}, DType::I64, device), Tensor::empty({n, k}, DType::F32, device)};
  const bool biased = moe_.expert_bias && moe_.score_function == ScoreFunction::Sigmoid;
  ops::router_forward(routing.routing_map, routing.probs, context.statistics, context.logits,
                      biased ? ops::to_device_of(expert_bias, inp) : Tensor(), per_sequence, config);
  context.indices = routing.routing_map;
  context.aux_loss = Tensor();
  if (config.aux_loss_coeff > 0 || config.z_loss_coeff > 0) {
    context.aux_loss = Tensor::empty({1}, DType::F32, device);
    ops::router_auxiliary_loss(context.aux_loss, context.statistics, n, per_sequence, config);
  }
  if (moe_.expert_bias) {
    // Aux-loss-free balancing counts routed slots on the host (one small copy).
    const Tensor map = ops::to_cpu(routing.routing_map);
    for (int64_t i = 0; i < n * k; ++i)
      if (map.data<int64_t>()[i] >= 0) local_tokens_per_expert.data<float>()[map.data<int64_t>()[i]] += 1;
  }
  return routing;
}

Tensor TopKRouter::logits_gradient_on_device(const Tensor& dprobs, const Context& context,
                                             double loss_scale) const {
  const int64_t n = context.inp.size(0), experts = weight.value.size(0);
  Tensor dlogits = Tensor::empty({n, experts}, DType::F32, context.inp.device());
  ops::router_backward(dlogits, dprobs, context.logits, context.indices, context.statistics.aux_counts,
                       tokens_per_sequence(context.batch, context.seq), router_config(), float(loss_scale));
  return dlogits;
}

void TopKRouter::update_expert_bias(dist::Communicator& token_count_group) {
  if (!moe_.expert_bias) return;
  token_count_group.all_reduce(local_tokens_per_expert, dist::ReduceOp::kSum);
  const int64_t experts = expert_bias.numel();
  float* counts = local_tokens_per_expert.data<float>();
  double total = 0;
  for (int64_t e = 0; e < experts; ++e) total += counts[e];
  const double mean = total / double(experts);
  for (int64_t e = 0; e < experts; ++e) {
    const double offset = mean - counts[e];
    const float sign = offset > 0 ? 1.0f : (offset < 0 ? -1.0f : 0.0f);
    expert_bias.data<float>()[e] += sign * float(moe_.bias_update_rate);
  }
  local_tokens_per_expert.fill_(0.0);
}

}  // namespace moebench::model
