#pragma once
// A named model parameter with its gradient: what optimizers, checkpoints and
// converters see of a module. Names are Megatron-Core's state-dict names
// (decoder.layers.3.self_attention.linear_qkv.weight, ...).
#include <string>

#include "moebench/core/tensor.h"
#include "moebench/model/tensor_parallel_split.h"

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
  // This rank's slice of the one-rank parameter (whole unless tensor-parallel).
  TensorParallelSplit tensor_parallel = {};
  // Replicated over tp ranks that each saw only part of the tokens (sequence
  // parallel) or of the heads (q/k layernorm): its gradient is a partial sum,
  // completed by an all-reduce over tp before the data-parallel reduction
  // (Megatron's sequence_parallel parameters).
  bool grad_partial_over_tp = false;
  // The sum of the squares of this gradient's values, f64 [1] on its device,
  // together with every parameter holding the same tensor: left by a
  // producer that summed them as it wrote the gradient's final values (the
  // routed experts' weight-gradient flush), so the gradient norm need not
  // read the gradient again. Whatever changes the gradient afterwards (the
  // data-parallel reduction) resets it. Undefined: not known.
  Tensor grad_squares = Tensor();
};

// Whether the copy of `parameter` on tp rank `tensor_parallel_rank` repeats
// tp rank 0's (it is not split over tp): the gradient norm counts it on tp
// rank 0 only (Megatron's param_is_not_tensor_parallel_duplicate, negated).
inline bool is_tensor_parallel_duplicate(const Parameter& parameter, int tensor_parallel_rank) {
  return !parameter.tensor_parallel.is_split() && tensor_parallel_rank != 0;
}

// A named tensor of model state that is not trained by the optimizer but
// belongs in checkpoints (e.g. decoder.layers.N.mlp.router.expert_bias).
struct Buffer {
  std::string name;
  Tensor value;  // shared with the module: writing it changes the model
};

}  // namespace moebench::model
