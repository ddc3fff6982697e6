#pragma once
// The data-parallel gradient reduction of Megatron's DistributedDataParallel:
// after the backward of the last microbatch, gradients are averaged over the
// ranks that hold replicas of them: dense parameters over dp_cp, routed
// experts over expt_dp (with EP = 1 both are the data-parallel group). Each
// kind lives in its own ParamAndGradBuffer and is reduced one bucket per
// collective, so the reduction can later start bucket by bucket while the
// backward still runs (--overlap-grad-reduce). A model on a GPU keeps its
// own layout instead: its fp32 gradients are all-reduced on the device where
// they lie, bucket by bucket (device_gradient_buckets.h); the distributed
// optimizer's reduce-scatter is not available there with DP > 1.
//
// First, the gradients of parameters replicated over tp whose ranks each saw
// part of the tokens or heads (Parameter::grad_partial_over_tp) are summed
// over tp, as Megatron's finalize_model_grads does for sequence-parallel
// parameters and q/k layernorms.
//
// Every rank's loss was scaled by 1 / (its microbatches), so averaging the
// gradients over DP gives the gradient of the mean loss over the global
// batch, as one rank running the whole global batch would get.
#include <cstdint>
#include <vector>

#include "moebench/dist/parallel_state.h"
#include "moebench/model/parameter.h"
#include "moebench/train/param_and_grad_buffer.h"

namespace moebench::train {

enum class GradientSync {
  kAllReduce,      // every rank gets the averaged gradients (plain Adam)
  kReduceScatter,  // each rank gets the average of the shard it owns (distributed optimizer)
};

// Megatron's --ddp-bucket-size default: max(40M, 1M x DP) elements.
int64_t default_bucket_elements(int data_parallel_size);

class GradientReduction {
 public:
  // Lays the parameters out in the two buffers, re-binding their values and
  // gradients (see ParamAndGradBuffer). Keeps a reference to `state`.
  GradientReduction(const std::vector<model::Parameter*>& parameters, const dist::ParallelState& state,
                    GradientSync sync, int64_t bucket_elements);

  // Collective over tp, dp_cp and expt_dp: completes the partial gradients,
  // then averages the gradients as `sync` says. The gradients it changes lose
  // their Parameter::grad_squares.
  // With reduce-scatter only this rank's shards hold averages afterwards;
  // the rest of its gradient buffer is stale until the next backward.
  void reduce();

  GradientSync sync() const { return sync_; }
  const ParamAndGradBuffer& dense() const { return dense_; }
  const ParamAndGradBuffer& expert() const { return expert_; }
  dist::Communicator& dense_group() const;
  dist::Communicator& expert_group() const;

 private:
  // Sums the partial gradients over tp, all in one collective; returns
  // whether there were any to sum.
  bool complete_partial_over_tensor_parallel() const;
  // Scales the gradients of the buffer and of the device buckets by
  // `factor`, then sums them over `group`; returns whether that changed them.
  bool reduce(const ParamAndGradBuffer& buffer, const std::vector<Tensor>& device_buckets,
              dist::Communicator& group, double factor) const;

  const dist::ParallelState& state_;
  GradientSync sync_;
  std::vector<model::Parameter*> parameters_;
  std::vector<model::Parameter*> partial_over_tensor_parallel_;
  ParamAndGradBuffer dense_;
  ParamAndGradBuffer expert_;
  // A GPU model's gradients, reduced in place (all-reduce only): see
  // device_gradient_buckets.h. Empty for a CPU model, whose buffers hold them.
  std::vector<Tensor> dense_device_;
  std::vector<Tensor> expert_device_;
};

}  // namespace moebench::train
