#pragma once
// The SwiGLU MLP of Megatron-Core: linear_fc1 produces [gate | up] (first
// ffn rows the gate projection, next ffn rows the up projection), then
// silu(gate) * up, then linear_fc2. Used for dense layers and shared experts.
//
// Parameters under `prefix` (decoder.layers.N.mlp or ...mlp.shared_experts):
//   linear_fc1.weight [2*ffn, h]    linear_fc2.weight [h, ffn]
#include <string>
#include <vector>

#include "moebench/model/linear.h"

namespace moebench::model {

class MLP {
 public:
  struct Context {
    Tensor inp;  // [N, h]
    Tensor fc1;  // [N, 2*ffn]
    Tensor act;  // [N, ffn]
  };

  // fc2_std is Megatron's output-layer init (std / sqrt(2 * num_layers)).
  MLP(const std::string& prefix, int64_t hidden, int64_t ffn, float std, float fc2_std,
      uint64_t seed);

  Tensor forward(const Tensor& inp, Context& context) const;
  Tensor backward(const Tensor& dout, const Context& context);

  void collect(std::vector<Parameter*>& parameters);

 private:
  Linear linear_fc1_;
  Linear linear_fc2_;
};

}  // namespace moebench::model
