#include "moebench/model/linear.h"

#include "moebench/model/parameter_init.h"
#include "moebench/ops/gemm.h"

namespace moebench::model {

Linear::Linear(const std::string& prefix, int64_t in_features, int64_t out_features, float std,
               uint64_t seed, bool with_bias, bool is_expert)
    : weight(normal_parameter(prefix + ".weight", {out_features, in_features}, std, seed,
                              is_expert)) {
  if (with_bias) bias = constant_parameter(prefix + ".bias", {out_features}, 0.0f);
}

Tensor Linear::forward(const Tensor& inp) const {
  const int64_t n = inp.size(0);
  Tensor out = Tensor::empty({n, out_features()}, DType::F32);
  ops::cpu::linear_forward(out.data<float>(), inp.data<float>(), weight.value.data<float>(),
                           has_bias() ? bias.value.data<float>() : nullptr, n, in_features(),
                           out_features());
  return out;
}

Tensor Linear::backward(const Tensor& dout, const Tensor& inp) {
  const int64_t n = inp.size(0);
  Tensor dinp = Tensor::empty({n, in_features()}, DType::F32);
  ops::cpu::linear_backward(dinp.data<float>(), weight.grad.data<float>(),
                            has_bias() ? bias.grad.data<float>() : nullptr, dout.data<float>(),
                            inp.data<float>(), weight.value.data<float>(), n, in_features(),
                            out_features());
  return dinp;
}

void Linear::collect(std::vector<Parameter*>& parameters) {
  parameters.push_back(&weight);
  if (has_bias()) parameters.push_back(&bias);
}

}  // namespace moebench::model
