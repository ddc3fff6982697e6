#pragma once
// Megatron's ParamAndGradBuffer: the parameters that one data-parallel group
// reduces (dense ones over dp_cp, routed experts over expt_dp) laid out back
// to back in one flat value buffer and one flat gradient buffer, cut into
// buckets that are communicated one collective each. Every parameter's value
// and grad are re-bound to views of the buffers, so backward accumulates
// straight into the memory that is reduced and nothing is copied.
//
// Layout: parameters in reverse order of the list given, which is the order
// backward finishes them, so the first bucket is complete first and its
// reduction can later overlap the rest of the backward. A bucket closes at
// the first parameter boundary at or past bucket_elements and is padded with
// zeros to a multiple of the group size, so it splits into equal shards:
// rank r of the group owns the r-th shard of every bucket (the distributed
// optimizer's partition). With one bucket this is one contiguous 1/DP range
// of the whole buffer per rank.
#include <cstdint>
#include <vector>

#include "moebench/core/tensor.h"
#include "moebench/model/parameter.h"

namespace moebench::train {

struct BufferBucket {
  int64_t begin = 0;  // first element in the buffers
  int64_t end = 0;    // one past the last; padding included
  int64_t numel() const { return end - begin; }
};

// One parameter's elements inside this rank's shard of a bucket.
struct ShardSegment {
  const model::Parameter* parameter = nullptr;  // whose elements these are
  Tensor values;                                // f32 [n]: a view of the value buffer
  Tensor grads;                                 // f32 [n]: a view of the gradient buffer
};

class ParamAndGradBuffer {
 public:
  // Copies each parameter's value and gradient into the buffers and re-binds
  // them; the parameters must outlive the buffer and stay bound to it.
  // Parameters need contiguous float32 CPU value and grad of one shape.
  ParamAndGradBuffer(const std::vector<model::Parameter*>& parameters, int group_size, int group_rank,
                     int64_t bucket_elements);
  ParamAndGradBuffer(const ParamAndGradBuffer&) = delete;
  ParamAndGradBuffer& operator=(const ParamAndGradBuffer&) = delete;

  bool empty() const { return buckets_.empty(); }
  int group_size() const { return group_size_; }
  const std::vector<BufferBucket>& buckets() const { return buckets_; }

  // Views of one bucket, and of this rank's shard of it.
  Tensor bucket_values(const BufferBucket& bucket) const;
  Tensor bucket_grads(const BufferBucket& bucket) const;
  Tensor shard_values(const BufferBucket& bucket) const;
  Tensor shard_grads(const BufferBucket& bucket) const;

  // The parameter runs inside this rank's shards, in buffer order: what the
  // distributed optimizer updates (padding belongs to no segment).
  const std::vector<ShardSegment>& owned_segments() const { return owned_segments_; }

 private:
  int64_t shard_begin(const BufferBucket& bucket) const;

  int group_size_;
  int group_rank_;
  Tensor values_;  // f32 [padded total]
  Tensor grads_;   // f32 [padded total]
  std::vector<BufferBucket> buckets_;
  std::vector<ShardSegment> owned_segments_;
};

}  // namespace moebench::train
