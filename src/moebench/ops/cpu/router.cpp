// Reference router, composed of the CPU softmax / sigmoid / top-k ops in the
// order model/moe/router.cpp applies them; the twin of ops/cuda/router.cu.
#include "moebench/ops/router.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/ops/activation.h"

namespace moebench::ops {
namespace {

std::string str(std::int64_t value) { return std::to_string(value); }

}  // namespace

void check_router_arguments(const char* op, std::int64_t tokens, std::int64_t tokens_per_sequence,
                            const RouterConfig& config, const RouterStatistics* statistics) {
  const std::string name(op);
  const std::int64_t experts = config.num_experts, k = config.topk;
  if (tokens < 0 || experts <= 0)
    throw Error(name + ": tokens " + str(tokens) + " must be >= 0 and num_experts " + str(experts) +
                " > 0");
  if (k <= 0 || k > experts)
    throw Error(name + ": topk " + str(k) + " must be in [1, num_experts " + str(experts) +
                "]; set moe_router_topk accordingly");
  if (tokens > 0 && (tokens_per_sequence <= 0 || tokens % tokens_per_sequence != 0))
    throw Error(name + ": tokens_per_sequence " + str(tokens_per_sequence) +
                " must divide tokens " + str(tokens) +
                "; pass all tokens for aux_loss, the sequence length for seq_aux_loss");
  if (config.num_groups < 0)
    throw Error(name + ": num_groups " + str(config.num_groups) + " must be >= 0 (0: no groups)");
  if (config.num_groups > 0) {
    const std::int64_t groups = config.num_groups;
    if (experts % groups != 0)
      throw Error(name + ": num_groups " + str(groups) + " must divide num_experts " +
                  str(experts) + "; set moe_router_num_groups to a divisor");
    const std::int64_t group_size = experts / groups;
    if (config.group_topk <= 0 || config.group_topk > groups || k > config.group_topk * group_size)
      throw Error(name + ": group_topk " + str(config.group_topk) + " must be in [1, num_groups " +
                  str(groups) + "] and keep at least topk " + str(k) + " experts (" +
                  str(group_size) + " per group); raise moe_router_group_topk");
    if (config.group_score == GroupScore::kTop2Sum && group_size < 2)
      throw Error(name + ": top-2-sum group scores need >= 2 experts per group, got " +
                  str(group_size) + "; use fewer groups");
  }
  if (!(config.aux_loss_coeff >= 0) || !(config.z_loss_coeff >= 0) ||
      !std::isfinite(config.scaling_factor))
    throw Error(name + ": aux_loss_coeff " + std::to_string(config.aux_loss_coeff) +
                " and z_loss_coeff " + std::to_string(config.z_loss_coeff) +
                " must be >= 0 and scaling_factor " + std::to_string(config.scaling_factor) +
                " finite");
  if (statistics != nullptr) {
    if (config.aux_loss_coeff > 0 &&
        (statistics->aux_counts == nullptr || statistics->aux_score_sums == nullptr))
      throw Error(name + ": aux_loss_coeff " + std::to_string(config.aux_loss_coeff) +
                  " > 0 needs statistics.aux_counts and statistics.aux_score_sums");
    if (config.z_loss_coeff > 0 && statistics->z_loss_sum == nullptr)
      throw Error(name + ": z_loss_coeff " + std::to_string(config.z_loss_coeff) +
                  " > 0 needs statistics.z_loss_sum");
  }
}

}  // namespace moebench::ops

namespace moebench::ops::cpu {
namespace {

// Megatron's guard in the sigmoid renormalisation a = s / (sum(s) + eps).
constexpr float kNormaliseEps = 1e-20f;

bool is_softmax(const RouterConfig& config) {
  return config.score_function == RouterScoreFunction::kSoftmax;
}

void select_topk(float* values, std::int64_t* indices, const float* scores, std::int64_t tokens,
                 const RouterConfig& config) {
  if (config.num_groups > 0) {
    group_limited_topk(values, indices, scores, tokens, config.num_experts, config.topk,
                       config.num_groups, config.group_topk, config.group_score);
  } else {
    topk(values, indices, scores, tokens, config.num_experts, config.topk);
  }
}

// a[count] = s / (eps + sum(s)) in place when `normalised`, summing in index order.
void normalise_row(float* a, std::int64_t count, bool normalised) {
  if (!normalised) return;
  float sum = kNormaliseEps;
  for (std::int64_t i = 0; i < count; ++i) sum += a[i];
  for (std::int64_t i = 0; i < count; ++i) a[i] /= sum;
}

// Gradient of a = s / (eps + sum(s)) (or a = s), s = sigmoid(l), over one row:
// dl = (da - sum(da * a)) / Z * s * (1 - s).
void normalised_sigmoid_backward(float* dlogits, const float* da, const float* s,
                                 std::int64_t count, bool normalised) {
  float z = kNormaliseEps;
  for (std::int64_t i = 0; i < count; ++i) z += s[i];
  float dot = 0;
  for (std::int64_t i = 0; i < count; ++i) dot += da[i] * (normalised ? s[i] / z : s[i]);
  for (std::int64_t i = 0; i < count; ++i) {
    const float ds = normalised ? (da[i] - dot) / z : da[i];
    dlogits[i] = ds * s[i] * (1 - s[i]);
  }
}

// The aux-loss scores p[N, E]; `sigmoid_scores` receives the plain sigmoid for the backward.
void aux_scores(float* p, std::vector<float>& sigmoid_scores, const float* logits,
                std::int64_t tokens, const RouterConfig& config) {
  const std::int64_t experts = config.num_experts;
  if (is_softmax(config)) {
    softmax_forward(p, logits, tokens, experts);
    return;
  }
  sigmoid_scores.resize(tokens * experts);
  sigmoid_forward(sigmoid_scores.data(), logits, tokens * experts);
  std::copy(sigmoid_scores.begin(), sigmoid_scores.end(), p);
  for (std::int64_t t = 0; t < tokens; ++t) normalise_row(p + t * experts, experts, config.topk > 1);
}

double aux_loss_scale(std::int64_t tokens, std::int64_t tokens_per_sequence,
                      const RouterConfig& config) {
  const double length = double(tokens_per_sequence);
  const double sequences = double(tokens) / length;
  return double(config.aux_loss_coeff) * double(config.num_experts) /
         (double(config.topk) * length * length * sequences);
}

float logsumexp(const float* row, std::int64_t count) {
  const float max = *std::max_element(row, row + count);
  float sum = 0;
  for (std::int64_t i = 0; i < count; ++i) sum += std::exp(row[i] - max);
  return max + std::log(sum);
}

}  // namespace

void router_forward(std::int64_t* indices, float* probs, const RouterStatistics& statistics,
                    const float* logits, const float* expert_bias, std::int64_t tokens,
                    std::int64_t tokens_per_sequence, const RouterConfig& config) {
  check_router_arguments("router_forward", tokens, tokens_per_sequence, config, &statistics);
  const std::int64_t experts = config.num_experts, k = config.topk;
  std::vector<float> scores(tokens * experts);

  if (is_softmax(config) && !config.pre_softmax) {
    std::vector<float> topk_logits(tokens * k);
    select_topk(topk_logits.data(), indices, logits, tokens, config);
    softmax_forward(probs, topk_logits.data(), tokens, k);
  } else if (is_softmax(config)) {
    softmax_forward(scores.data(), logits, tokens, experts);
    select_topk(probs, indices, scores.data(), tokens, config);
  } else {
    sigmoid_forward(scores.data(), logits, tokens * experts);
    if (expert_bias != nullptr) {
      // Choose on the biased scores, weigh by the unbiased ones.
      std::vector<float> biased(scores);
      for (std::int64_t i = 0; i < tokens * experts; ++i) biased[i] += expert_bias[i % experts];
      select_topk(probs, indices, biased.data(), tokens, config);
      for (std::int64_t i = 0; i < tokens * k; ++i)
        probs[i] = scores[(i / k) * experts + indices[i]];
    } else {
      select_topk(probs, indices, scores.data(), tokens, config);
    }
    for (std::int64_t t = 0; t < tokens; ++t) normalise_row(probs + t * k, k, k > 1);
  }
  for (std::int64_t i = 0; i < tokens * k; ++i) probs[i] *= config.scaling_factor;

  if (config.aux_loss_coeff > 0) {
    std::vector<float> sigmoid_scores;
    aux_scores(scores.data(), sigmoid_scores, logits, tokens, config);
    std::vector<float> values(tokens * k);
    std::vector<std::int64_t> chosen(tokens * k);
    topk(values.data(), chosen.data(), scores.data(), tokens, experts, k);
    for (std::int64_t t = 0; t < tokens; ++t) {
      const std::int64_t base = (t / tokens_per_sequence) * experts;
      for (std::int64_t i = 0; i < k; ++i) statistics.aux_counts[base + chosen[t * k + i]] += 1;
      for (std::int64_t e = 0; e < experts; ++e)
        statistics.aux_score_sums[base + e] += scores[t * experts + e];
    }
  }
  if (config.z_loss_coeff > 0) {
    for (std::int64_t t = 0; t < tokens; ++t) {
      const float lse = logsumexp(logits + t * experts, experts);
      *statistics.z_loss_sum += lse * lse;
    }
  }
}

void router_backward(float* dlogits, const float* dprobs, const float* logits,
                     const std::int64_t* indices, const std::int32_t* aux_counts,
                     std::int64_t tokens, std::int64_t tokens_per_sequence,
                     const RouterConfig& config, float loss_scale) {
  check_router_arguments("router_backward", tokens, tokens_per_sequence, config, nullptr);
  if (config.aux_loss_coeff > 0 && aux_counts == nullptr)
    throw Error("router_backward: aux_loss_coeff " + std::to_string(config.aux_loss_coeff) +
                " > 0 needs the forward's aux_counts");
  const std::int64_t experts = config.num_experts, k = config.topk;
  std::fill(dlogits, dlogits + tokens * experts, 0.0f);
  std::vector<float> dvalues(tokens * k);
  for (std::int64_t i = 0; i < tokens * k; ++i) dvalues[i] = dprobs[i] * config.scaling_factor;

  if (is_softmax(config) && !config.pre_softmax) {
    std::vector<float> topk_logits(tokens * k), topk_probs(tokens * k), dselected(tokens * k);
    for (std::int64_t i = 0; i < tokens * k; ++i)
      topk_logits[i] = logits[(i / k) * experts + indices[i]];
    softmax_forward(topk_probs.data(), topk_logits.data(), tokens, k);
    softmax_backward(dselected.data(), dvalues.data(), topk_probs.data(), tokens, k);
    for (std::int64_t i = 0; i < tokens * k; ++i)
      dlogits[(i / k) * experts + indices[i]] += dselected[i];
  } else if (is_softmax(config)) {
    std::vector<float> scores(tokens * experts), dscores(tokens * experts, 0.0f);
    softmax_forward(scores.data(), logits, tokens, experts);
    for (std::int64_t i = 0; i < tokens * k; ++i)
      dscores[(i / k) * experts + indices[i]] += dvalues[i];
    softmax_backward(dlogits, dscores.data(), scores.data(), tokens, experts);
  } else {
    std::vector<float> selected(k), dselected(k);
    for (std::int64_t t = 0; t < tokens; ++t) {
      for (std::int64_t i = 0; i < k; ++i)
        selected[i] = sigmoid(logits[t * experts + indices[t * k + i]]);
      normalised_sigmoid_backward(dselected.data(), dvalues.data() + t * k, selected.data(), k,
                                  k > 1);
      for (std::int64_t i = 0; i < k; ++i) dlogits[t * experts + indices[t * k + i]] += dselected[i];
    }
  }

  if (config.aux_loss_coeff > 0) {
    std::vector<float> p(tokens * experts), sigmoid_scores, dscores(tokens * experts);
    std::vector<float> daux(tokens * experts);
    aux_scores(p.data(), sigmoid_scores, logits, tokens, config);
    const double scale = aux_loss_scale(tokens, tokens_per_sequence, config);
    for (std::int64_t i = 0; i < tokens * experts; ++i) {
      const std::int64_t sequence = (i / experts) / tokens_per_sequence;
      dscores[i] = float(scale * aux_counts[sequence * experts + i % experts]);
    }
    if (is_softmax(config)) {
      softmax_backward(daux.data(), dscores.data(), p.data(), tokens, experts);
    } else {
      for (std::int64_t t = 0; t < tokens; ++t)
        normalised_sigmoid_backward(daux.data() + t * experts, dscores.data() + t * experts,
                                    sigmoid_scores.data() + t * experts, experts, k > 1);
    }
    for (std::int64_t i = 0; i < tokens * experts; ++i) dlogits[i] += loss_scale * daux[i];
  }
  if (config.z_loss_coeff > 0) {
    for (std::int64_t t = 0; t < tokens; ++t) {
      const float* row = logits + t * experts;
      const float lse = logsumexp(row, experts);
      const float dlse = loss_scale * config.z_loss_coeff * 2.0f * lse / float(tokens);
      for (std::int64_t e = 0; e < experts; ++e)
        dlogits[t * experts + e] += dlse * std::exp(row[e] - lse);
    }
  }
}

double router_auxiliary_loss(const RouterStatistics& statistics, std::int64_t tokens,
                             std::int64_t tokens_per_sequence, const RouterConfig& config) {
  check_router_arguments("router_auxiliary_loss", tokens, tokens_per_sequence, config, &statistics);
  double loss = 0;
  if (config.aux_loss_coeff > 0 && tokens > 0) {
    double sum = 0;
    for (std::int64_t i = 0; i < (tokens / tokens_per_sequence) * config.num_experts; ++i)
      sum += double(statistics.aux_counts[i]) * double(statistics.aux_score_sums[i]);
    loss += aux_loss_scale(tokens, tokens_per_sequence, config) * sum;
  }
  if (config.z_loss_coeff > 0 && tokens > 0)
    loss += double(config.z_loss_coeff) * double(*statistics.z_loss_sum) / double(tokens);
  return loss;
}

}  // namespace moebench::ops::cpu
