#include "moebench/train/gradient_reduction.h"

#include <algorithm>
#include <string>

#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"
#include "moebench/train/device_gradient_buckets.h"

namespace moebench::train {
namespace {

std::vector<model::Parameter*> select(const std::vector<model::Parameter*>& parameters, bool expert) {
  std::vector<model::Parameter*> selected;
  for (model::Parameter* p : parameters)
    if (p->is_expert == expert) selected.push_back(p);
  return selected;
}

bool on_gpu(const std::vector<model::Parameter*>& parameters) {
  return !parameters.empty() && parameters.front()->grad.defined() && parameters.front()->grad.device().is_cuda();
}

// A GPU model keeps its own device layout (see device_gradient_buckets.h):
// its buffer is empty and its gradients are reduced where they lie.
ParamAndGradBuffer make_buffer(const std::vector<model::Parameter*>& parameters, bool expert,
                               const dist::Communicator& group, int64_t bucket_elements) {
  const std::vector<model::Parameter*> selected = select(parameters, expert);
  return ParamAndGradBuffer(on_gpu(selected) ? std::vector<model::Parameter*>{} : selected, group.size(),
                            group.rank(), bucket_elements);
}

std::vector<Tensor> make_device_buckets(const std::vector<model::Parameter*>& parameters, bool expert,
                                        const dist::Communicator& group, GradientSync sync,
                                        int64_t bucket_elements) {
  const std::vector<model::Parameter*> selected = select(parameters, expert);
  if (!on_gpu(selected)) return {};
  if (sync == GradientSync::kReduceScatter && group.size() > 1)
    throw Error("the distributed optimizer (--use-distributed-optimizer) over a " +
                std::string(expert ? "expert-" : "") + "data-parallel group of " + std::to_string(group.size()) +
                " GPU ranks is not supported yet: the GPU engine trains data-parallel with plain Adam over "
                "all-reduced gradients; drop --use-distributed-optimizer or use --device cpu");
  return device_gradient_buckets(selected, bucket_elements);
}

}  // namespace

int64_t default_bucket_elements(int data_parallel_size) {
  return std::max<int64_t>(40'000'000, int64_t(1'000'000) * data_parallel_size);
}

GradientReduction::GradientReduction(const std::vector<model::Parameter*>& parameters,
                                     const dist::ParallelState& state, GradientSync sync, int64_t bucket_elements)
    : state_(state),
      sync_(sync),
      parameters_(parameters),
      dense_(make_buffer(parameters, false, state.group(GroupKind::kDataWithContext), bucket_elements)),
      expert_(make_buffer(parameters, true, state.group(GroupKind::kExpertData), bucket_elements)),
      dense_device_(make_device_buckets(parameters, false, state.group(GroupKind::kDataWithContext), sync,
                                        bucket_elements)),
      expert_device_(make_device_buckets(parameters, true, state.group(GroupKind::kExpertData), sync,
                                         bucket_elements)) {
  for (model::Parameter* p : parameters)
    if (p->grad_partial_over_tp) partial_over_tensor_parallel_.push_back(p);
}

dist::Communicator& GradientReduction::dense_group() const { return state_.group(GroupKind::kDataWithContext); }

dist::Communicator& GradientReduction::expert_group() const { return state_.group(GroupKind::kExpertData); }

void GradientReduction::reduce() {
  // Both kinds are averaged over the data-parallel ranks, as Megatron's
  // gradient_scaling_factor: an expert's gradient already sums the rows of
  // every rank of its ep group, so its replicas over expt_dp together hold
  // the sum over all DP ranks.
  const bool partial_changed = complete_partial_over_tensor_parallel();
  const double average = 1.0 / dense_group().size();
  const bool dense_changed = reduce(dense_, dense_device_, dense_group(), average);
  const bool expert_changed = reduce(expert_, expert_device_, expert_group(), average);
  for (model::Parameter* p : parameters_)
    if (p->is_expert ? expert_changed : dense_changed || (partial_changed && p->grad_partial_over_tp))
      p->grad_squares = Tensor();
}

bool GradientReduction::complete_partial_over_tensor_parallel() const {
  dist::Communicator& tp = state_.group(GroupKind::kTensor);
  if (tp.size() == 1 || partial_over_tensor_parallel_.empty()) return false;
  int64_t total = 0;
  for (const model::Parameter* p : partial_over_tensor_parallel_) total += p->grad.numel();
  Tensor packed = Tensor::empty({total}, DType::F32);
  int64_t offset = 0;
  for (const model::Parameter* p : partial_over_tensor_parallel_) {
    packed.slice(0, offset, offset + p->grad.numel()).view(p->grad.shape()).copy_from(p->grad);
    offset += p->grad.numel();
  }
  tp.all_reduce(packed, dist::ReduceOp::kSum);
  offset = 0;
  for (model::Parameter* p : partial_over_tensor_parallel_) {
    p->grad.copy_from(packed.slice(0, offset, offset + p->grad.numel()).view(p->grad.shape()));
    offset += p->grad.numel();
  }
  return true;
}

bool GradientReduction::reduce(const ParamAndGradBuffer& buffer, const std::vector<Tensor>& device_buckets,
                               dist::Communicator& group, double factor) const {
  if (factor == 1.0 && group.size() == 1) return false;  // one replica: its gradients are the average
  // Scaling before the sum, as Megatron does, keeps low-precision sums in range.
  for (Tensor grads : device_buckets) {
    ops::scale_(grads, factor);
    if (group.size() > 1) group.all_reduce(grads, dist::ReduceOp::kSum);
  }
  for (const BufferBucket& bucket : buffer.buckets()) {
    Tensor grads = buffer.bucket_grads(bucket);
    ops::scale_(grads, factor);
    if (group.size() == 1) continue;
    if (sync_ == GradientSync::kAllReduce) {
      group.all_reduce(grads, dist::ReduceOp::kSum);
    } else {
      // The communicator's output may not overlap its input: reduce into a
      // scratch shard, then put it in place.
      Tensor shard = buffer.shard_grads(bucket);
      const Tensor reduced = Tensor::empty(shard.shape(), DType::F32);
      group.reduce_scatter(grads, reduced, dist::ReduceOp::kSum);
      shard.copy_from(reduced);
    }
  }
  return true;
}

}  // namespace moebench::train
