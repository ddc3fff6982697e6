#pragma once
// A named model parameter with its gradient: what optimizers, checkpoints and
// converters see of a module. Names are Megatron-Core's state-dict names
// (decoder.layers.3.self_attention.linear_qkv.weight, ...).
#include <string>

#include "moebench/core/tensor.h"

namespace moebench::model {

struct Parameter {
  std::string name;
  Tensor value;   // the compute copy: float32 on the CPU, bf16 on a GPU (ModelPlacement)
  Tensor grad;    // same shape, float32 (Megatron's main grads); accumulated by backward, cleared by zero_grad
  // fp32 main weights when `value` is a narrower compute copy (a GPU model):
  // what the optimizer updates (it then rewrites `value`) and checkpoints
  // should save. Undefined when `value` is itself float32 (the CPU engine).
  Tensor main = Tensor();
  bool weight_decay = true;  // false for norms and biases, as Megatron
  bool is_expert = false;    // routed expert weight: reduced over expert-DP
};

// A named tensor of model state that is not trained by the optimizer but
// belongs in checkpoints (e.g. decoder.layers.N.mlp.router.expert_bias).
struct Buffer {
  std::string name;
  Tensor value;  // shared with the module: writing it changes the model
};

}  // namespace moebench::model
