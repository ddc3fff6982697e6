#pragma once
// RMSNorm as a module: a named weight over the last dimension. Used for the
// layer norms, the final norm, Qwen3's per-head q/k norms (rows = tokens x
// heads) and MLA's latent norms.
#include <string>

#include "moebench/model/parameter.h"

namespace moebench::model {

struct RMSNorm {
  struct Context {
    Tensor inp;   // [N, C]
    Tensor rstd;  // [N]
  };

  Parameter weight;  // [C], initialised to 1
  double eps;

  RMSNorm(const std::string& weight_name, int64_t channels, double eps);

  // inp [N, C] (any leading shape flattened to rows of C) -> out, same shape.
  Tensor forward(const Tensor& inp, Context& context) const;
  // Returns dinp, plus residual_grad when it is defined (the gradient of a
  // residual branch that meets inp, added in the same kernel); accumulates weight.grad.
  Tensor backward(const Tensor& dout, const Context& context, const Tensor& residual_grad = Tensor());
};

}  // namespace moebench::model
