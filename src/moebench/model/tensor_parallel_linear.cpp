#include "moebench/model/tensor_parallel_linear.h"

#include "moebench/core/error.h"
#include "moebench/model/elementwise.h"
#include "moebench/model/parameter_init.h"

namespace moebench::model {
namespace {

Parameter no_parameter() { return Parameter{}; }

void require_cpu(const Tensor& tensor, const std::string& what) {
  if (!tensor.device().is_cpu())
    throw Error(what + " runs on CPU tensors only, got " + tensor.describe() + "; train with --device cpu");
}

}  // namespace

TensorParallelSplit tensor_parallel_split(const dist::TensorParallelRegions& tp, int partition_dim,
                                          int partition_stride) {
  return {partition_dim, partition_stride, tp.rank(), tp.size()};
}

ColumnParallelLinear::ColumnParallelLinear(const std::string& prefix, int64_t in_features, int64_t out_features,
                                           float std, uint64_t seed, const dist::TensorParallelRegions& tp,
                                           bool with_bias, int partition_stride)
    : linear_(normal_parameter(prefix + ".weight", {out_features, in_features}, std, seed,
                               tensor_parallel_split(tp, 0, partition_stride)),
              no_parameter()),
      tp_(tp) {
  if (!with_bias) return;
  const TensorParallelSplit split = tensor_parallel_split(tp, 0, partition_stride);
  linear_.bias = constant_parameter(prefix + ".bias", {out_features / tp.size()}, 0.0f);
  linear_.bias.tensor_parallel = split;
}

Tensor ColumnParallelLinear::forward(const Tensor& inp) const { return linear_.forward(tp_.enter(inp)); }

Tensor ColumnParallelLinear::backward(const Tensor& dout, const Tensor& inp) {
  return tp_.enter_backward(linear_.backward(dout, tp_.enter(inp)));
}

void ColumnParallelLinear::backward_accumulate(Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  if (!tp_.is_parallel()) return linear_.backward_accumulate(dinp, dout, inp);
  add_into(dinp, backward(dout, inp));
}

void ColumnParallelLinear::collect(std::vector<Parameter*>& parameters) { linear_.collect(parameters); }

RowParallelLinear::RowParallelLinear(const std::string& prefix, int64_t in_features, int64_t out_features,
                                     float std, uint64_t seed, const dist::TensorParallelRegions& tp,
                                     bool with_bias)
    : linear_(normal_parameter(prefix + ".weight", {out_features, in_features}, std, seed,
                               tensor_parallel_split(tp, 1)),
              no_parameter()),
      tp_(tp) {
  if (!with_bias) return;
  bias_ = constant_parameter(prefix + ".bias", {out_features}, 0.0f);
  // Under SP each rank adds it to its own tokens only.
  bias_.grad_partial_over_tp = tp.sequence_parallel();
}

Tensor RowParallelLinear::forward(const Tensor& inp, const Tensor& residual) const {
  // Nothing between the GEMM and the residual add with one rank and no bias:
  // the GEMM's epilogue adds it.
  if (!tp_.is_parallel() && !bias_.value.defined()) return linear_.forward(inp, residual);
  Tensor out = tp_.exit(linear_.forward(inp));
  if (bias_.value.defined()) {
    require_cpu(out, "RowParallelLinear's bias");
    const int64_t rows = out.size(0), width = out.size(1);
    float* values = out.data<float>();
    const float* bias = bias_.value.data<float>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < width; ++c) values[r * width + c] += bias[c];
  }
  if (residual.defined()) add_into(out, residual);
  return out;
}

Tensor RowParallelLinear::backward(const Tensor& dout, const Tensor& inp) {
  if (bias_.value.defined()) {
    require_cpu(dout, "RowParallelLinear's bias");
    const Tensor d = dout.contiguous();
    const int64_t rows = d.size(0), width = d.size(1);
    float* dbias = bias_.grad.data<float>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < width; ++c) dbias[c] += d.data<float>()[r * width + c];
  }
  return linear_.backward(tp_.exit_backward(dout), inp);
}

void RowParallelLinear::collect(std::vector<Parameter*>& parameters) {
  linear_.collect(parameters);
  if (bias_.value.defined()) parameters.push_back(&bias_);
}

}  // namespace moebench::model
