#pragma once
// The GPT model of Megatron-Core: embedding, transformer layers (attention
// GQA or MLA; MLP dense or MoE), final RMSNorm, untied output layer and
// cross-entropy. Explicit forward and backward, no autograd graph.
#include <cstdint>
#include <memory>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/core/tensor.h"
#include "moebench/dist/communicator.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/model_conventions.h"
#include "moebench/model/parameter.h"

namespace moebench::model {

struct ForwardOutput {
  double lm_loss = 0;         // mean token cross-entropy (loss-mask weighted)
  double aux_loss = 0;        // load-balancing + z-loss terms, already scaled by their coefficients
  Tensor logits;              // [B, S, padded vocab / TP] when requested, else undefined: float32 on the
                              // CPU, the compute dtype (bf16) on the model's GPU
};

// Where a model computes, as Megatron's mixed precision: on a CUDA device the
// compute weights and activations are bf16, the main weights (Parameter::main)
// and gradients fp32. The CPU engine computes in float32.
struct ModelPlacement {
  Device device = Device::cpu();
  DType compute_dtype = DType::F32;  // F32 on the CPU; BF16 on CUDA

  static ModelPlacement cpu() { return {}; }
  static ModelPlacement cuda(int index = 0) { return {Device::cuda(index), DType::BF16}; }
};

class GPTModel {
 public:
  // Parameters initialised as Megatron does (normal(0, init-method-std); output
  // projections scaled by 1/sqrt(2 x num_layers); norms 1), from `seed` and each
  // parameter's name, so the values do not depend on device or rank count.
  GPTModel(const config::ModelConfig& config, uint64_t seed);
  // The same, computing as `conventions` say where HF and Megatron differ.
  GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions);
  // The same weights (initialised on the CPU in float32 exactly as above, so
  // they do not depend on the device), then placed: on CUDA every parameter
  // gets an fp32 main copy, a bf16 compute copy and fp32 zero gradients on the
  // device; each MoE layer's expert weights sit back to back as [E, N, K].
  // Needs enable_cuda_tensors() (core/cuda_allocator.h) first for CUDA.
  GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
           const ModelPlacement& placement);
  // The same with expert parallelism: with an ep group of EP > 1 ranks in
  // `parallel_state` (kept by reference) each MoE layer holds only its ep
  // rank's E / EP experts, under their global names, and forward and backward
  // are collective over the ep group (see MoELayer). With a tp group of TP > 1
  // ranks each holds its slices of the tensor-parallel weights (under their
  // one-rank names, with the one-rank values; Parameter::tensor_parallel says
  // which), sequence-parallel when config.sequence_parallel, and forward and
  // backward are collective over tp. CPU float32 only: EP > 1 or TP > 1 on a
  // CUDA placement throws Error.
  GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
           const ModelPlacement& placement, const dist::ParallelState& parallel_state);
  // Moves a model built on the CPU (e.g. after ckpt::load_hf_weights wrote its
  // float32 values) to `placement`, as the constructor above would have placed
  // it; gradients restart at zero. Once only: the model must still be on the CPU.
  void place(const ModelPlacement& placement);
  ~GPTModel();
  GPTModel(GPTModel&&) noexcept;
  GPTModel& operator=(GPTModel&&) noexcept;

  // input_ids int64 [B, S]; labels int64 [B, S] (may be undefined: then no loss);
  // loss_mask float32 [B, S] (may be undefined: all ones). Keeps what backward needs.
  // Inputs on the host are copied to the model's device first. On a GPU the
  // losses are read back once (the one wait per microbatch).
  ForwardOutput forward(const Tensor& input_ids, const Tensor& labels, const Tensor& loss_mask,
                        bool keep_logits = false);
  // Backpropagates d(lm_loss + aux_loss) scaled by `loss_scale` (e.g. 1/num_microbatches),
  // accumulating into every parameter's grad.
  void backward(double loss_scale);

  std::vector<Parameter*> parameters();
  Parameter& parameter(const std::string& name);  // throws Error naming the unknown parameter
  // Non-trained state that checkpoints keep (router expert biases).
  std::vector<Buffer> buffers();
  void zero_grad();
  // Aux-loss-free routing: after the optimizer step, move each MoE layer's
  // expert bias by its update rate towards balanced load (no-op otherwise),
  // counting the tokens routed on every rank of `token_count_group` (tp_dp_cp).
  void update_expert_bias(dist::Communicator& token_count_group);

  const config::ModelConfig& config() const;
  const ModelPlacement& placement() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moebench::model
