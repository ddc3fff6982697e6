#pragma once
// The SwiGLU MLP of Megatron-Core: linear_fc1 produces [gate | up] (first
// ffn rows the gate projection, next ffn rows the up projection), then
// silu(gate) * up, then linear_fc2. Used for dense layers and shared experts.
//
// Parameters under `prefix` (decoder.layers.N.mlp or ...mlp.shared_experts):
//   linear_fc1.weight [2*ffn, h]    linear_fc2.weight [h, ffn]
// Tensor-parallel as Megatron: linear_fc1 column-parallel with matching gate
// and up rows on each rank ([gate_r; up_r], 2*ffn/TP rows), linear_fc2
// row-parallel (ffn/TP columns).
#include <string>
#include <vector>

#include "moebench/model/tensor_parallel_linear.h"

namespace moebench::model {

class MLP {
 public:
  struct Context {
    Tensor inp;  // [n, h] as given (this rank's tokens under SP)
    Tensor fc1;  // [N, 2*ffn/TP]
    Tensor act;  // [N, ffn/TP]
  };

  // fc2_std is Megatron's output-layer init (std / sqrt(2 * num_layers)).
  MLP(const std::string& prefix, int64_t hidden, int64_t ffn, float std, float fc2_std,
      uint64_t seed, const dist::TensorParallelRegions& tp = {});

  // inp [n, h] -> [n, h] (+ residual [n, h], undefined for none: added by
  // linear_fc2 after its tp reduction, see RowParallelLinear::forward).
  Tensor forward(const Tensor& inp, Context& context, const Tensor& residual = Tensor()) const;
  Tensor backward(const Tensor& dout, const Context& context);
  // As backward, but adds the input gradient to dinp [n, h] (in linear_fc1's
  // GEMM with one tp rank).
  void backward_accumulate(Tensor& dinp, const Tensor& dout, const Context& context);

  void collect(std::vector<Parameter*>& parameters);

 private:
  ColumnParallelLinear linear_fc1_;
  RowParallelLinear linear_fc2_;

  // The gradient of linear_fc1's output, from dout through linear_fc2 and SwiGLU.
  Tensor fc1_gradient(const Tensor& dout, const Context& context);
};

}  // namespace moebench::model
