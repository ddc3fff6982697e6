#pragma once
// A linear layer out = inp @ weight^T (+ bias), Megatron's ColumnParallel /
// RowParallelLinear on one rank. Stateless between calls: the caller keeps
// the input its backward needs.
#include <string>

#include "moebench/model/parameter.h"

namespace moebench::model {

struct Linear {
  Parameter weight;  // [out_features, in_features], named <prefix>.weight
  Parameter bias;    // [out_features], named <prefix>.bias; undefined value when absent

  // weight ~ normal(0, std); bias zeros when `with_bias`.
  Linear(const std::string& prefix, int64_t in_features, int64_t out_features, float std,
         uint64_t seed, bool with_bias = false, bool is_expert = false);
  // From parameters built elsewhere (a tensor-parallel rank's slices); `bias`
  // may have an undefined value (no bias).
  Linear(Parameter weight, Parameter bias);

  bool has_bias() const { return bias.value.defined(); }
  int64_t in_features() const { return weight.value.size(1); }
  int64_t out_features() const { return weight.value.size(0); }

  // inp [N, in] -> out [N, out] (+ residual [N, out], added in the GEMM's
  // epilogue on CUDA; undefined for none).
  Tensor forward(const Tensor& inp, const Tensor& residual = Tensor()) const;
  // Returns dinp [N, in]; accumulates weight.grad (and bias.grad).
  Tensor backward(const Tensor& dout, const Tensor& inp);
  // As backward, but adds the input gradient to dinp [N, in] (one GEMM with
  // beta = 1 on CUDA) instead of returning it.
  void backward_accumulate(Tensor& dinp, const Tensor& dout, const Tensor& inp);

  void collect(std::vector<Parameter*>& parameters);
};

}  // namespace moebench::model
