#include "moebench/train/distributed_optimizer.h"

#include <cmath>
#include <utility>

#include "moebench/ckpt/tensor_parallel_pieces.h"
#include "moebench/core/error.h"

namespace moebench::train {
namespace {

double squared_sum(const Tensor& values) {
  const float* data = values.data<float>();
  double sum = 0;
  for (int64_t i = 0, n = values.numel(); i < n; ++i) sum += double(data[i]) * double(data[i]);
  return sum;
}

}  // namespace

DistributedOptimizer::DistributedOptimizer(const GradientReduction& gradients, const dist::ParallelState& state,
                                           const AdamOptions& options)
    : gradients_(gradients), state_(state), options_(options) {
  if (gradients.sync() != GradientSync::kReduceScatter)
    throw Error("DistributedOptimizer needs gradients that are reduce-scattered into shards, "
                "not all-reduced (GradientSync::kReduceScatter)");
  for (const ParamAndGradBuffer* buffer : {&gradients.dense(), &gradients.expert()})
    for (const ShardSegment& segment : buffer->owned_segments()) {
      const std::vector<int64_t> shape = {segment.values.numel()};
      shards_.push_back({segment, Tensor::zeros(shape, options.precision.exp_avg),
                         Tensor::zeros(shape, options.precision.exp_avg_sq)});
    }
}

double DistributedOptimizer::gradient_norm() const {
  // Every element is owned by one rank of the world: tp_dp_cp and pp
  // together span it, except the dense parameters replicated over tp, which
  // count on tp rank 0 only, as Megatron does. (Routed experts are owned once
  // over expt_dp, which holds the tp ranks.)
  const int tp_rank = state_.group(GroupKind::kTensor).rank();
  double squares = 0;
  for (const ShardState& shard : shards_) {
    const model::Parameter& p = *shard.segment.parameter;
    if (p.is_expert || !model::is_tensor_parallel_duplicate(p, tp_rank)) squares += squared_sum(shard.segment.grads);
  }
  Tensor total = Tensor::from_vector(std::vector<double>{squares});
  state_.group(GroupKind::kTensorAndDataWithContext).all_reduce(total, dist::ReduceOp::kSum);
  state_.group(GroupKind::kPipeline).all_reduce(total, dist::ReduceOp::kSum);
  return std::sqrt(total.data<double>()[0]);
}

std::vector<ckpt::ShardedTensor> DistributedOptimizer::state_pieces() {
  std::vector<ckpt::ShardedTensor> pieces;
  for (ShardState& shard : shards_) {
    const model::Parameter& p = *shard.segment.parameter;
    // The segment and the parameter view the same buffer: their distance is the run's place in the parameter.
    const int64_t begin = shard.segment.values.storage_offset() - p.value.storage_offset();
    for (const auto& [name, state] :
         {std::pair{exp_avg_name(p.name), shard.exp_avg}, {exp_avg_sq_name(p.name), shard.exp_avg_sq}})
      for (ckpt::ShardedTensor& piece :
           ckpt::tensor_parallel_flat_run_pieces(name, p.value.shape(), begin, state, p.tensor_parallel))
        pieces.push_back(std::move(piece));
  }
  return pieces;
}

OptimizerStep DistributedOptimizer::step(double lr) {
  OptimizerStep result;
  result.grad_norm = gradient_norm();
  // Every rank sees the same norm, so all skip together and stay in step.
  if (!std::isfinite(result.grad_norm)) return result;

  const double clip = clip_factor(result.grad_norm, options_.clip_grad);
  ++steps_taken_;
  for (ShardState& shard : shards_) {
    ops::adamw_step(shard.segment.values, shard.exp_avg, shard.exp_avg_sq, shard.segment.grads, steps_taken_,
                    adam_hyperparams(options_, lr, shard.segment.parameter->weight_decay, clip));
  }
  gather_parameters(gradients_.dense(), gradients_.dense_group());
  gather_parameters(gradients_.expert(), gradients_.expert_group());
  result.applied = true;
  return result;
}

void DistributedOptimizer::gather_parameters(const ParamAndGradBuffer& buffer, dist::Communicator& group) const {
  if (group.size() == 1) return;  // the one shard is the whole buffer, already updated
  for (const BufferBucket& bucket : buffer.buckets())
    // The communicator's input may not overlap its output: send a copy of the shard.
    group.all_gather(buffer.shard_values(bucket).clone(), buffer.bucket_values(bucket));
}

}  // namespace moebench::train
