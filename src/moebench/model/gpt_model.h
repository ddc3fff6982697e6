#pragma once
// The GPT model of Megatron-Core: embedding, transformer layers (attention
// GQA or MLA; MLP dense or MoE), final RMSNorm, untied output layer and
// cross-entropy. Explicit forward and backward, no autograd graph.
//
// With pipeline parallelism a GPTModel is one pipeline rank's part of the
// model (PipelineStageLayout): the layers of its model chunks under their
// global names, the embedding on the first stage, the final norm, output
// layer and loss on the last. Its chunks run one (microbatch, chunk) pass at
// a time (forward_chunk / backward_chunk), several passes in flight. The
// hidden states between stages are [B, S, h]; under sequence parallelism
// each tp rank passes on its B x S / TP token rows, shaped [B, S / TP, h]
// (as Megatron's p2p shape [S / TP, B, h]).
#include <cstdint>
#include <memory>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/core/tensor.h"
#include "moebench/dist/communicator.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/model_conventions.h"
#include "moebench/model/parameter.h"
#include "moebench/model/pipeline_stage_layout.h"

namespace moebench::model {

struct ForwardOutput {
  double lm_loss = 0;         // mean token cross-entropy (loss-mask weighted)
  double aux_loss = 0;        // load-balancing + z-loss terms, already scaled by their coefficients
  Tensor logits;              // [B, S, padded vocab / TP] when requested, else undefined: float32 on the
                              // CPU, the compute dtype (bf16) on the model's GPU
  Tensor hidden;              // forward_chunk: the chunk's output [B, S, h] ([B, S / TP, h] under
                              // SP) for the next virtual stage; undefined on the last one
};

// What one model chunk's forward reads. The first virtual stage embeds
// input_ids, every other one continues from `hidden`; the last virtual stage
// computes the loss from labels and loss_mask (without labels: no loss).
struct ChunkInput {
  Tensor hidden;     // [B, S, h] ([B, S / TP, h] under SP): the previous virtual stage's output
  Tensor input_ids;  // int64 [B, S]
  Tensor labels;     // int64 [B, S]
  Tensor loss_mask;  // float32 [B, S]; undefined: all ones
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
  // CUDA placement throws Error. The whole model: the pp group must have one
  // rank (else build a stage with the constructor below).
  GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
           const ModelPlacement& placement, const dist::ParallelState& parallel_state);
  // The same as one pipeline rank: only `layout`'s layers (and the embedding
  // or output layer where it says), with the values the one-rank model gives
  // the same names. `layout` must be for the pp group's size and this rank's
  // stage in it. CPU float32 only: PP > 1 on a CUDA placement throws Error.
  GPTModel(const config::ModelConfig& config, uint64_t seed, const ModelConventions& conventions,
           const ModelPlacement& placement, const dist::ParallelState& parallel_state,
           const PipelineStageLayout& layout);
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
  // losses are read back once (the one wait per microbatch). The whole model
  // only: a pipeline stage runs forward_chunk.
  ForwardOutput forward(const Tensor& input_ids, const Tensor& labels, const Tensor& loss_mask,
                        bool keep_logits = false);
  // Backpropagates d(lm_loss + aux_loss) scaled by `loss_scale` (e.g. 1/num_microbatches),
  // accumulating into every parameter's grad (the routed experts' weights
  // possibly later: see flush_weight_gradients).
  void backward(double loss_scale);
  // With --moe-wgrad-microbatches N > 1 the routed experts add their weight
  // gradients once per N backwards (GroupedExperts); this adds those of the
  // backwards since, on every model chunk. Call it after the last backward,
  // before reading the gradients (the trainer does, each step). A no-op
  // otherwise.
  void flush_weight_gradients();

  // Pipeline parallelism: model chunk `chunk`'s forward on microbatch
  // `microbatch`, keeping what its backward needs until backward_chunk (or
  // discard_chunk) with the same two numbers. lm_loss is set on the last
  // virtual stage (and logits there with keep_logits); aux_loss holds the
  // chunk's MoE layers' losses.
  ForwardOutput forward_chunk(int microbatch, int chunk, const ChunkInput& input, bool keep_logits = false);
  // Backpropagates that pass: `output_grad` (shaped as the output) is the gradient of its
  // output (undefined on the last virtual stage, which starts from
  // d(lm_loss) x loss_scale); the chunk's aux losses add their gradient x
  // loss_scale. Returns the gradient of the chunk's input (shaped as it) for the
  // previous virtual stage, undefined on the first.
  Tensor backward_chunk(int microbatch, int chunk, const Tensor& output_grad, double loss_scale);
  // Drops what a forward kept when no backward follows (evaluation).
  void discard_chunk(int microbatch, int chunk);
  const PipelineStageLayout& pipeline_layout() const;

  std::vector<Parameter*> parameters();
  Parameter& parameter(const std::string& name);  // throws Error naming the unknown parameter
  // Non-trained state that checkpoints keep (router expert biases).
  std::vector<Buffer> buffers();
  // Also drops the routed experts' weight-gradient operands still kept: their
  // gradients would be zeroed too.
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
