#include "moebench/model/moe/grouped_experts.h"

#include <cmath>
#include <utility>

#include "moebench/config/validation.h"
#include "moebench/core/error.h"
#include "moebench/model/parameter_init.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/gemm.h"
#include "moebench/ops/grouped_gemm.h"
#include "moebench/ops/swiglu.h"

namespace moebench::model {
namespace {

using ops::GemmLayout;
using ops::GemmOutput;

// Rows [row, row + m) of a [rows, width] tensor.
Tensor rows_of(const Tensor& tensor, int64_t row, int64_t m) { return tensor.slice(0, row, row + m); }

// out[rows, n] = inp[rows, k] @ weights[g]^T for the rows of group g
// (rows of group g are contiguous, m_per_group[g] of them).
void m_grouped_gemm_nt_contiguous(Tensor& out, const Tensor& inp, const std::vector<Parameter>& weights,
                                  const std::vector<int64_t>& m_per_group) {
  int64_t row = 0;
  for (size_t g = 0; g < weights.size(); ++g) {
    const int64_t m = m_per_group[g];
    if (m > 0) {
      Tensor out_g = rows_of(out, row, m);
      ops::gemm(out_g, rows_of(inp, row, m), weights[g].value, GemmLayout::kNT, GemmOutput::kOverwrite);
    }
    row += m;
  }
}

// dinp[rows, k] = dout[rows, n] @ weights[g] per group (the activation gradient).
void m_grouped_gemm_nn_contiguous(Tensor& dinp, const Tensor& dout, const std::vector<Parameter>& weights,
                                  const std::vector<int64_t>& m_per_group) {
  int64_t row = 0;
  for (size_t g = 0; g < weights.size(); ++g) {
    const int64_t m = m_per_group[g];
    if (m > 0) {
      Tensor dinp_g = rows_of(dinp, row, m);
      ops::gemm(dinp_g, rows_of(dout, row, m), weights[g].value, GemmLayout::kNN, GemmOutput::kOverwrite);
    }
    row += m;
  }
}

// weights[g].grad[n, k] += dout[rows_g, n]^T @ inp[rows_g, k]: reduction over each group's rows.
void k_grouped_gemm_tn_contiguous(std::vector<Parameter>& weights, const Tensor& dout, const Tensor& inp,
                                  const std::vector<int64_t>& m_per_group) {
  int64_t row = 0;
  for (size_t g = 0; g < weights.size(); ++g) {
    const int64_t m = m_per_group[g];
    if (m > 0)
      ops::gemm(weights[g].grad, rows_of(dout, row, m), rows_of(inp, row, m), GemmLayout::kTN,
                GemmOutput::kAccumulate);
    row += m;
  }
}

// The experts' values (or grads) as one [E, N, K] tensor: they must already
// sit back to back in one allocation, as ModelPlacement lays them out.
Tensor stacked(const std::vector<Parameter>& experts, bool grads) {
  const Tensor& first = grads ? experts.front().grad : experts.front().value;
  const int64_t per_expert = first.numel();
  for (size_t e = 0; e < experts.size(); ++e) {
    const Tensor& t = grads ? experts[e].grad : experts[e].value;
    if (t.storage() != first.storage() || !t.is_contiguous() ||
        t.storage_offset() != first.storage_offset() + int64_t(e) * per_expert)
      throw Error("GroupedExperts: the " + std::string(grads ? "gradients" : "weights") + " of " +
                  experts[e].name + " do not follow expert " + std::to_string(e == 0 ? 0 : e - 1) +
                  "'s in one buffer; the GPU path needs them as one [E, N, K] tensor (build the model with a "
                  "ModelPlacement on the device)");
  }
  return Tensor::from_storage(first.storage(), first.dtype(),
                              {int64_t(experts.size()), first.size(0), first.size(1)},
                              contiguous_strides({int64_t(experts.size()), first.size(0), first.size(1)}),
                              first.storage_offset());
}

}  // namespace

GroupedExperts::GroupedExperts(const std::string& prefix, const config::ModelConfig& config,
                               uint64_t seed)
    : GroupedExperts(prefix, config, seed, 0, config.moe.num_experts) {}

GroupedExperts::GroupedExperts(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
                               int64_t first_expert, int64_t num_local_experts)
    : grouped_gemm(config.moe.grouped_gemm),
      hidden_(config.hidden_size),
      ffn_(config.moe.ffn_hidden_size),
      wgrad_microbatches_(config.moe.wgrad_microbatches) {
  config::validate_wgrad_microbatches(config.moe);
  if (first_expert < 0 || num_local_experts < 1 || first_expert + num_local_experts > config.moe.num_experts)
    throw Error("GroupedExperts: experts [" + std::to_string(first_expert) + ", " +
                std::to_string(first_expert + num_local_experts) + ") are not among the model's " +
                std::to_string(config.moe.num_experts));
  const float std = float(config.init_method_std);
  const float fc2_std = float(config.init_method_std / std::sqrt(2.0 * config.num_layers));
  for (int64_t e = first_expert; e < first_expert + num_local_experts; ++e) {
    linear_fc1_.push_back(normal_parameter(prefix + ".linear_fc1.weight" + std::to_string(e),
                                           {2 * ffn_, hidden_}, std, seed, true));
    linear_fc2_.push_back(normal_parameter(prefix + ".linear_fc2.weight" + std::to_string(e),
                                           {hidden_, ffn_}, fc2_std, seed, true));
  }
}

Tensor GroupedExperts::forward(const Tensor& inp, const std::vector<int64_t>& tokens_per_expert,
                               const Tensor& group_counts, Context& context) const {
  const int64_t rows = inp.size(0);
  context.tokens_per_expert = tokens_per_expert;
  context.group_counts = group_counts;
  context.inp = inp;
  context.fc1 = ops::empty_like(inp, {rows, 2 * ffn_});
  context.act = ops::empty_like(inp, {rows, ffn_});
  Tensor out = ops::empty_like(inp, {rows, hidden_});
  if (inp.device().is_cuda()) {
    // One grouped GEMM per projection over the device-side counts.
    ops::m_grouped_gemm_nt_contiguous(context.fc1, inp, stacked(linear_fc1_, false), group_counts);
    ops::swiglu_forward(context.act, context.fc1);
    ops::m_grouped_gemm_nt_contiguous(out, context.act, stacked(linear_fc2_, false), group_counts);
    return out;
  }
  if (grouped_gemm) {
    m_grouped_gemm_nt_contiguous(context.fc1, inp, linear_fc1_, tokens_per_expert);
    ops::swiglu_forward(context.act, context.fc1);
    m_grouped_gemm_nt_contiguous(out, context.act, linear_fc2_, tokens_per_expert);
    return out;
  }
  int64_t row = 0;
  const Tensor no_bias;
  for (size_t e = 0; e < linear_fc1_.size(); ++e) {
    const int64_t m = tokens_per_expert[e];
    if (m == 0) continue;
    Tensor fc1 = rows_of(context.fc1, row, m), act = rows_of(context.act, row, m), out_e = rows_of(out, row, m);
    ops::linear_forward(fc1, rows_of(inp, row, m), linear_fc1_[e].value, no_bias);
    ops::swiglu_forward(act, fc1);
    ops::linear_forward(out_e, act, linear_fc2_[e].value, no_bias);
    row += m;
  }
  return out;
}

Tensor GroupedExperts::backward(const Tensor& dout, const Context& context) {
  const int64_t rows = context.inp.size(0);
  const std::vector<int64_t>& counts = context.tokens_per_expert;
  Tensor dinp = ops::empty_like(dout, {rows, hidden_});
  Tensor dact = ops::empty_like(dout, {rows, ffn_});
  Tensor dfc1 = ops::empty_like(dout, {rows, 2 * ffn_});
  if (dout.device().is_cuda()) {
    ops::m_grouped_gemm_nn_contiguous(dact, dout, stacked(linear_fc2_, false), context.group_counts);
    ops::swiglu_backward(dfc1, dact, context.fc1);
    ops::m_grouped_gemm_nn_contiguous(dinp, dfc1, stacked(linear_fc1_, false), context.group_counts);
  } else if (grouped_gemm) {
    m_grouped_gemm_nn_contiguous(dact, dout, linear_fc2_, counts);
    ops::swiglu_backward(dfc1, dact, context.fc1);
    m_grouped_gemm_nn_contiguous(dinp, dfc1, linear_fc1_, counts);
  } else {
    int64_t row = 0;
    Tensor no_bias;
    for (size_t e = 0; e < linear_fc1_.size(); ++e) {
      const int64_t m = counts[e];
      if (m == 0) continue;
      Tensor dact_e = rows_of(dact, row, m), dfc1_e = rows_of(dfc1, row, m), dinp_e = rows_of(dinp, row, m);
      ops::linear_backward(dact_e, linear_fc2_[e].grad, no_bias, rows_of(dout, row, m),
                           rows_of(context.act, row, m), linear_fc2_[e].value);
      ops::swiglu_backward(dfc1_e, dact_e, rows_of(context.fc1, row, m));
      ops::linear_backward(dinp_e, linear_fc1_[e].grad, no_bias, dfc1_e, rows_of(context.inp, row, m),
                           linear_fc1_[e].value);
      row += m;
    }
    return dinp;
  }
  kept_.push_back({counts, context.group_counts, dout, context.act, dfc1, context.inp});
  if (int(kept_.size()) == wgrad_microbatches_) flush_weight_gradients();
  return dinp;
}

void GroupedExperts::flush_weight_gradients() {
  const bool overwrite = std::exchange(overwrite_on_flush_, false);
  if (kept_.empty()) {
    if (overwrite)
      zero_weight_gradients();
    return;
  }
  if (kept_.front().dout.device().is_cuda()) {
    // One k-grouped GEMM per projection over the kept micro-batches (with
    // N = 1, one: Megatron's per-micro-batch weight gradient).
    Tensor fc1_grads = stacked(linear_fc1_, true), fc2_grads = stacked(linear_fc2_, true);
    std::vector<ops::WeightGradientSegment> fc2_segments, fc1_segments;
    for (const WeightGradientOperands& kept : kept_) {
      fc2_segments.push_back({kept.dout, kept.act, kept.group_counts});
      fc1_segments.push_back({kept.dfc1, kept.inp, kept.group_counts});
    }
    const ops::GemmOutput output = overwrite ? ops::GemmOutput::kOverwrite : ops::GemmOutput::kAccumulate;
    if (!grad_squares_.defined()) grad_squares_ = Tensor::empty({1}, DType::F64, fc1_grads.device());
    ops::zero_(grad_squares_);
    ops::k_grouped_gemm_tn_contiguous(fc2_grads, fc2_segments, output, &grad_squares_);
    ops::k_grouped_gemm_tn_contiguous(fc1_grads, fc1_segments, output, &grad_squares_);
    set_grad_squares(grad_squares_);
  } else {
    set_grad_squares(Tensor());  // unknown: the CPU's GEMMs do not sum them
    if (overwrite)
      zero_weight_gradients();
    // In backward order, so each gradient accumulates exactly as with N = 1.
    for (const WeightGradientOperands& kept : kept_) {
      k_grouped_gemm_tn_contiguous(linear_fc2_, kept.dout, kept.act, kept.tokens_per_expert);
      k_grouped_gemm_tn_contiguous(linear_fc1_, kept.dfc1, kept.inp, kept.tokens_per_expert);
    }
  }
  kept_.clear();
}

void GroupedExperts::zero_weight_gradients() {
  set_grad_squares(Tensor());
  for (std::vector<Parameter>* weights : {&linear_fc1_, &linear_fc2_})
    for (Parameter& weight : *weights) ops::zero_(weight.grad);
}

void GroupedExperts::set_grad_squares(const Tensor& squares) {
  for (std::vector<Parameter>* weights : {&linear_fc1_, &linear_fc2_})
    for (Parameter& weight : *weights) weight.grad_squares = squares;
}

void GroupedExperts::zero_grad() {
  kept_.clear();  // gradient not yet added, and about to be zeroed
  overwrite_on_flush_ = true;
  if (wgrad_microbatches_ == 1) flush_weight_gradients();  // nothing kept: zeroes now
}

std::vector<std::vector<Parameter*>> GroupedExperts::stacked_parameter_groups() {
  std::vector<std::vector<Parameter*>> groups(2);
  for (auto& weight : linear_fc1_) groups[0].push_back(&weight);
  for (auto& weight : linear_fc2_) groups[1].push_back(&weight);
  return groups;
}

void GroupedExperts::collect(std::vector<Parameter*>& parameters) {
  for (auto& weight : linear_fc1_) parameters.push_back(&weight);
  for (auto& weight : linear_fc2_) parameters.push_back(&weight);
}

}  // namespace moebench::model
