#include "moebench/model/linear.h"

#include <utility>

#include "moebench/model/parameter_init.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/gemm.h"

namespace moebench::model {
namespace {

void backward_into(Linear& linear, Tensor& dinp, const Tensor& dout, const Tensor& inp,
                   ops::GemmOutput dinp_output) {
  Tensor no_bias;
  ops::linear_backward(dinp, linear.weight.grad, linear.has_bias() ? linear.bias.grad : no_bias, dout, inp,
                       linear.weight.value, dinp_output);
}

}  // namespace

Linear::Linear(const std::string& prefix, int64_t in_features, int64_t out_features, float std,
               uint64_t seed, bool with_bias, bool is_expert)
    : weight(normal_parameter(prefix + ".weight", {out_features, in_features}, std, seed,
                              is_expert)) {
  if (with_bias) bias = constant_parameter(prefix + ".bias", {out_features}, 0.0f);
}

Linear::Linear(Parameter weight, Parameter bias) : weight(std::move(weight)), bias(std::move(bias)) {}

Tensor Linear::forward(const Tensor& inp, const Tensor& residual) const {
  const int64_t n = inp.size(0);
  Tensor out = ops::empty_like(inp, {n, out_features()});
  ops::linear_forward(out, inp, weight.value, bias.value, residual);
  return out;
}

Tensor Linear::backward(const Tensor& dout, const Tensor& inp) {
  const int64_t n = inp.size(0);
  Tensor dinp = ops::empty_like(inp, {n, in_features()});
  backward_into(*this, dinp, dout, inp, ops::GemmOutput::kOverwrite);
  return dinp;
}

void Linear::backward_accumulate(Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  backward_into(*this, dinp, dout, inp, ops::GemmOutput::kAccumulate);
}

void Linear::collect(std::vector<Parameter*>& parameters) {
  parameters.push_back(&weight);
  if (has_bias()) parameters.push_back(&bias);
}

}  // namespace moebench::model
