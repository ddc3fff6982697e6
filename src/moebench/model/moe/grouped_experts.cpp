#include "moebench/model/moe/grouped_experts.h"

#include <cmath>

#include "moebench/model/parameter_init.h"
#include "moebench/ops/gemm.h"
#include "moebench/ops/swiglu.h"

namespace moebench::model {
namespace {

using ops::GemmLayout;
using ops::GemmOutput;

// out[rows, n] = inp[rows, k] @ weights[g]^T for the rows of group g
// (rows of group g are contiguous, m_per_group[g] of them).
void m_grouped_gemm_nt_contiguous(float* out, const float* inp,
                                  const std::vector<Parameter>& weights,
                                  const std::vector<int64_t>& m_per_group, int64_t n, int64_t k) {
  int64_t row = 0;
  for (size_t g = 0; g < weights.size(); ++g) {
    const int64_t m = m_per_group[g];
    if (m > 0)
      ops::cpu::gemm(out + row * n, inp + row * k, weights[g].value.data<float>(), m, n, k,
                     GemmLayout::kNT, GemmOutput::kOverwrite);
    row += m;
  }
}

// dinp[rows, k] = dout[rows, n] @ weights[g] per group (the activation gradient).
void m_grouped_gemm_nn_contiguous(float* dinp, const float* dout,
                                  const std::vector<Parameter>& weights,
                                  const std::vector<int64_t>& m_per_group, int64_t n, int64_t k) {
  int64_t row = 0;
  for (size_t g = 0; g < weights.size(); ++g) {
    const int64_t m = m_per_group[g];
    if (m > 0)
      ops::cpu::gemm(dinp + row * k, dout + row * n, weights[g].value.data<float>(), m, k, n,
                     GemmLayout::kNN, GemmOutput::kOverwrite);
    row += m;
  }
}

// weights[g].grad[n, k] += dout[rows_g, n]^T @ inp[rows_g, k]: reduction over each group's rows.
void k_grouped_gemm_tn_contiguous(std::vector<Parameter>& weights, const float* dout,
                                  const float* inp, const std::vector<int64_t>& m_per_group,
                                  int64_t n, int64_t k) {
  int64_t row = 0;
  for (size_t g = 0; g < weights.size(); ++g) {
    const int64_t m = m_per_group[g];
    if (m > 0)
      ops::cpu::gemm(weights[g].grad.data<float>(), dout + row * n, inp + row * k, n, k, m,
                     GemmLayout::kTN, GemmOutput::kAccumulate);
    row += m;
  }
}

}  // namespace

GroupedExperts::GroupedExperts(const std::string& prefix, const config::ModelConfig& config,
                               uint64_t seed)
    : grouped_gemm(config.moe.grouped_gemm),
      hidden_(config.hidden_size),
      ffn_(config.moe.ffn_hidden_size) {
  const float std = float(config.init_method_std);
  const float fc2_std = float(config.init_method_std / std::sqrt(2.0 * config.num_layers));
  for (int e = 0; e < config.moe.num_experts; ++e) {
    linear_fc1_.push_back(normal_parameter(prefix + ".linear_fc1.weight" + std::to_string(e),
                                           {2 * ffn_, hidden_}, std, seed, true));
    linear_fc2_.push_back(normal_parameter(prefix + ".linear_fc2.weight" + std::to_string(e),
                                           {hidden_, ffn_}, fc2_std, seed, true));
  }
}

Tensor GroupedExperts::forward(const Tensor& inp, const std::vector<int64_t>& tokens_per_expert,
                               Context& context) const {
  const int64_t rows = inp.size(0);
  context.tokens_per_expert = tokens_per_expert;
  context.inp = inp;
  context.fc1 = Tensor::empty({rows, 2 * ffn_}, DType::F32);
  context.act = Tensor::empty({rows, ffn_}, DType::F32);
  Tensor out = Tensor::empty({rows, hidden_}, DType::F32);
  float* fc1 = context.fc1.data<float>();
  float* act = context.act.data<float>();
  if (grouped_gemm) {
    m_grouped_gemm_nt_contiguous(fc1, inp.data<float>(), linear_fc1_, tokens_per_expert,
                                 2 * ffn_, hidden_);
    ops::cpu::swiglu_forward(act, fc1, rows, ffn_);
    m_grouped_gemm_nt_contiguous(out.data<float>(), act, linear_fc2_, tokens_per_expert, hidden_,
                                 ffn_);
    return out;
  }
  int64_t row = 0;
  for (size_t e = 0; e < linear_fc1_.size(); ++e) {
    const int64_t m = tokens_per_expert[e];
    if (m == 0) continue;
    ops::cpu::linear_forward(fc1 + row * 2 * ffn_, inp.data<float>() + row * hidden_,
                             linear_fc1_[e].value.data<float>(), nullptr, m, hidden_, 2 * ffn_);
    ops::cpu::swiglu_forward(act + row * ffn_, fc1 + row * 2 * ffn_, m, ffn_);
    ops::cpu::linear_forward(out.data<float>() + row * hidden_, act + row * ffn_,
                             linear_fc2_[e].value.data<float>(), nullptr, m, ffn_, hidden_);
    row += m;
  }
  return out;
}

Tensor GroupedExperts::backward(const Tensor& dout, const Context& context) {
  const int64_t rows = context.inp.size(0);
  const std::vector<int64_t>& counts = context.tokens_per_expert;
  Tensor dinp = Tensor::empty({rows, hidden_}, DType::F32);
  Tensor dact = Tensor::empty({rows, ffn_}, DType::F32);
  Tensor dfc1 = Tensor::empty({rows, 2 * ffn_}, DType::F32);
  const float* fc1 = context.fc1.data<float>();
  const float* act = context.act.data<float>();
  const float* inp = context.inp.data<float>();
  if (grouped_gemm) {
    m_grouped_gemm_nn_contiguous(dact.data<float>(), dout.data<float>(), linear_fc2_, counts,
                                 hidden_, ffn_);
    k_grouped_gemm_tn_contiguous(linear_fc2_, dout.data<float>(), act, counts, hidden_, ffn_);
    ops::cpu::swiglu_backward(dfc1.data<float>(), dact.data<float>(), fc1, rows, ffn_);
    m_grouped_gemm_nn_contiguous(dinp.data<float>(), dfc1.data<float>(), linear_fc1_, counts,
                                 2 * ffn_, hidden_);
    k_grouped_gemm_tn_contiguous(linear_fc1_, dfc1.data<float>(), inp, counts, 2 * ffn_, hidden_);
    return dinp;
  }
  int64_t row = 0;
  for (size_t e = 0; e < linear_fc1_.size(); ++e) {
    const int64_t m = counts[e];
    if (m == 0) continue;
    float* dact_e = dact.data<float>() + row * ffn_;
    float* dfc1_e = dfc1.data<float>() + row * 2 * ffn_;
    ops::cpu::linear_backward(dact_e, linear_fc2_[e].grad.data<float>(), nullptr,
                              dout.data<float>() + row * hidden_, act + row * ffn_,
                              linear_fc2_[e].value.data<float>(), m, ffn_, hidden_);
    ops::cpu::swiglu_backward(dfc1_e, dact_e, fc1 + row * 2 * ffn_, m, ffn_);
    ops::cpu::linear_backward(dinp.data<float>() + row * hidden_,
                              linear_fc1_[e].grad.data<float>(), nullptr, dfc1_e,
                              inp + row * hidden_, linear_fc1_[e].value.data<float>(), m, hidden_,
                              2 * ffn_);
    row += m;
  }
  return dinp;
}

void GroupedExperts::collect(std::vector<Parameter*>& parameters) {
  for (auto& weight : linear_fc1_) parameters.push_back(&weight);
  for (auto& weight : linear_fc2_) parameters.push_back(&weight);
}

}  // namespace moebench::model
