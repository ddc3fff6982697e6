#pragma once
// The routed experts, each a SwiGLU MLP, over the expert-sorted rows the
// dispatcher produces (expert 0's rows first, then expert 1's, ...).
//
// Two execution paths with identical results, chosen by --moe-grouped-gemm:
//   grouped      one m-grouped GEMM per projection over all rows (weights
//                picked per contiguous segment), one SwiGLU over all rows;
//                the weight gradient is a k-grouped GEMM (TEGroupedMLP).
//   sequential   a loop over experts, each running its own MLP on its rows
//                (Megatron's SequentialMLP).
// Both keep TEGroupedMLP's parameter names, so checkpoints are the same.
//
// The weight gradient (--moe-wgrad-microbatches N, grouped path only): with
// N = 1, as Megatron, each backward adds its micro-batch's fp32 weight
// gradient at once. With N > 1 a backward returns the data gradient and keeps
// the weight gradient's operands (fc2: dout and act; fc1: dfc1 and inp; the
// counts); the backward that keeps the N-th adds the N micro-batches'
// gradients together, so on Hopper the fp32 gradients are read and written
// once per N micro-batches instead of once per micro-batch. What is kept
// costs the memory of those operands until then; flush_weight_gradients()
// adds a remainder of fewer than N before anyone reads the gradients. With
// N > 1, zero_grad() also leaves the zeroing to the first flush, which writes
// the sums over the old values instead of adding to zeros: no pass to zero
// the fp32 gradients and no read of them in that flush.
//
// Parameters under `prefix` (decoder.layers.N.mlp.experts), for each expert e
// this rank holds (all E on one rank; with expert parallelism its ep rank's
// L = E / EP experts from first_expert on, named by their global index as in
// Megatron's checkpoints, so each starts from the one-rank values):
//   linear_fc1.weight<e> [2*ffn, h] ([gate | up])    linear_fc2.weight<e> [h, ffn]
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/model/parameter.h"

namespace moebench::model {

class GroupedExperts {
 public:
  struct Context {
    std::vector<int64_t> tokens_per_expert;  // [L]
    Tensor group_counts;                     // int32 [L] on the device (the GPU path's counts)
    Tensor inp;                              // [rows, h]
    Tensor fc1;                              // [rows, 2*ffn]
    Tensor act;                              // [rows, ffn]
  };

  // All num_experts experts.
  GroupedExperts(const std::string& prefix, const config::ModelConfig& config, uint64_t seed);
  // Experts [first_expert, first_expert + num_local_experts) only.
  GroupedExperts(const std::string& prefix, const config::ModelConfig& config, uint64_t seed,
                 int64_t first_expert, int64_t num_local_experts);

  // inp [rows, h] with tokens_per_expert[e] rows per local expert -> out [rows, h].
  // On the CPU the host counts drive the loops; on a GPU group_counts (int32
  // [E] on the device) drives the grouped GEMMs (ops/grouped_gemm.h) and
  // tokens_per_expert is unused (the grouped path always runs there).
  Tensor forward(const Tensor& inp, const std::vector<int64_t>& tokens_per_expert, const Tensor& group_counts,
                 Context& context) const;
  // The CPU form: host counts only.
  Tensor forward(const Tensor& inp, const std::vector<int64_t>& tokens_per_expert, Context& context) const {
    return forward(inp, tokens_per_expert, Tensor(), context);
  }
  // Returns the data gradient; adds the weight gradients now, or keeps them
  // for later with --moe-wgrad-microbatches > 1 (see above).
  Tensor backward(const Tensor& dout, const Context& context);
  // Adds the weight gradients of the micro-batches kept so far and releases
  // their operands (nothing to do when none are kept). On a GPU the grouped
  // kernel also sums the squares of the gradients it leaves, shared by the
  // weights as Parameter::grad_squares.
  void flush_weight_gradients();
  // Drops the kept operands and zeroes the experts' gradients: at once with
  // N = 1, by the next flush (overwriting) with N > 1, so the gradients read
  // zero or stale until flush_weight_gradients().
  void zero_grad();

  // true: grouped GEMMs; false: the per-expert loop. Both give the same numbers.
  bool grouped_gemm = false;

  void collect(std::vector<Parameter*>& parameters);
  // {fc1 of every expert}, {fc2 of every expert}: the parameters a device
  // placement must lay out back to back as [E, N, K] (the grouped GEMMs' layout).
  std::vector<std::vector<Parameter*>> stacked_parameter_groups();

 private:
  // One micro-batch's operands of the weight gradients, kept until they are added.
  struct WeightGradientOperands {
    std::vector<int64_t> tokens_per_expert;  // the CPU's counts
    Tensor group_counts;                     // the GPU's
    Tensor dout, act;                        // fc2: dout^T @ act per expert
    Tensor dfc1, inp;                        // fc1: dfc1^T @ inp per expert
  };

  void zero_weight_gradients();
  // Every weight's Parameter::grad_squares: `squares` (or none, undefined).
  void set_grad_squares(const Tensor& squares);

  int64_t hidden_, ffn_;
  int wgrad_microbatches_;
  std::vector<Parameter> linear_fc1_;  // L x [2*ffn, h]
  std::vector<Parameter> linear_fc2_;  // L x [h, ffn]
  std::vector<WeightGradientOperands> kept_;  // fewer than wgrad_microbatches_ between backwards
  bool overwrite_on_flush_ = false;           // zero_grad() left the zeroing to the next flush
  Tensor grad_squares_;                       // f64 [1] on the GPU, made by the first flush there
};

}  // namespace moebench::model
