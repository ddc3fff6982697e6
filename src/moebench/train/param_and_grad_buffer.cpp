#include "moebench/train/param_and_grad_buffer.h"

#include <algorithm>

#include "moebench/core/error.h"
#include "moebench/train/parameter_check.h"

namespace moebench::train {
namespace {

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// A view of elements [begin, begin + numel) of a flat buffer with `shape`.
Tensor flat_view(const Tensor& buffer, int64_t begin, int64_t numel, const std::vector<int64_t>& shape) {
  return buffer.slice(0, begin, begin + numel).view(shape);
}

}  // namespace

ParamAndGradBuffer::ParamAndGradBuffer(const std::vector<model::Parameter*>& parameters, int group_size,
                                       int group_rank, int64_t bucket_elements)
    : group_size_(group_size), group_rank_(group_rank) {
  if (group_size < 1 || group_rank < 0 || group_rank >= group_size || bucket_elements < 1)
    throw Error("ParamAndGradBuffer: need 0 <= rank < group size and a positive bucket size, got rank " +
                std::to_string(group_rank) + " of " + std::to_string(group_size) + ", bucket " +
                std::to_string(bucket_elements));
  // Backward order: the last parameter's gradient is ready first.
  const std::vector<model::Parameter*> ordered(parameters.rbegin(), parameters.rend());
  std::vector<int64_t> offsets;
  int64_t next = 0;
  int64_t bucket_begin = 0;
  for (const model::Parameter* p : ordered) {
    require_cpu_float32(*p, "ParamAndGradBuffer");
    offsets.push_back(next);
    next += p->value.numel();
    if (next - bucket_begin >= bucket_elements) {
      next = bucket_begin + round_up(next - bucket_begin, group_size);
      buckets_.push_back({bucket_begin, next});
      bucket_begin = next;
    }
  }
  if (next > bucket_begin) {
    next = bucket_begin + round_up(next - bucket_begin, group_size);
    buckets_.push_back({bucket_begin, next});
  }

  values_ = Tensor::zeros({next}, DType::F32);
  grads_ = Tensor::zeros({next}, DType::F32);
  for (size_t i = 0; i < ordered.size(); ++i) {
    model::Parameter& p = *ordered[i];
    const int64_t numel = p.value.numel();
    Tensor value = flat_view(values_, offsets[i], numel, p.value.shape());
    Tensor grad = flat_view(grads_, offsets[i], numel, p.grad.shape());
    value.copy_from(p.value);
    grad.copy_from(p.grad);
    p.value = value;
    p.grad = grad;
  }

  // Each shard cut into the runs of the parameters it overlaps.
  for (const BufferBucket& bucket : buckets_) {
    const int64_t begin = shard_begin(bucket);
    const int64_t end = begin + bucket.numel() / group_size_;
    for (size_t i = 0; i < ordered.size(); ++i) {
      const int64_t first = std::max(begin, offsets[i]);
      const int64_t last = std::min(end, offsets[i] + ordered[i]->value.numel());
      if (first < last)
        owned_segments_.push_back({ordered[i], values_.slice(0, first, last), grads_.slice(0, first, last)});
    }
  }
}

int64_t ParamAndGradBuffer::shard_begin(const BufferBucket& bucket) const {
  return bucket.begin + group_rank_ * (bucket.numel() / group_size_);
}

Tensor ParamAndGradBuffer::bucket_values(const BufferBucket& bucket) const {
  return values_.slice(0, bucket.begin, bucket.end);
}

Tensor ParamAndGradBuffer::bucket_grads(const BufferBucket& bucket) const {
  return grads_.slice(0, bucket.begin, bucket.end);
}

Tensor ParamAndGradBuffer::shard_values(const BufferBucket& bucket) const {
  const int64_t begin = shard_begin(bucket);
  return values_.slice(0, begin, begin + bucket.numel() / group_size_);
}

Tensor ParamAndGradBuffer::shard_grads(const BufferBucket& bucket) const {
  const int64_t begin = shard_begin(bucket);
  return grads_.slice(0, begin, begin + bucket.numel() / group_size_);
}

}  // namespace moebench::train
