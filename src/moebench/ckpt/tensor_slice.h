#pragma once
// A rectangular region of a global tensor: per dimension an offset and a
// size, as Megatron's ShardedTensor describes what one rank holds. Shards
// of a checkpoint and the pieces a rank asks for are both slices, so reading
// under another parallel mapping is intersecting the two.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moebench/core/tensor.h"

namespace moebench::ckpt {

struct TensorSlice {
  std::vector<int64_t> offsets;
  std::vector<int64_t> sizes;

  static TensorSlice whole(const std::vector<int64_t>& shape);
  int64_t numel() const;
  // True when the slice lies inside a tensor of `shape` (same rank, in bounds).
  bool fits(const std::vector<int64_t>& shape) const;
  // "[0:4, 8:16]", for messages.
  std::string describe() const;
  friend bool operator==(const TensorSlice&, const TensorSlice&) = default;
};

// The common region of two slices of one tensor; none when they do not overlap.
std::optional<TensorSlice> intersect(const TensorSlice& a, const TensorSlice& b);

// The view of `tensor` (which holds `held` of the global tensor) that covers
// `region`, a slice of the global tensor inside `held`.
Tensor view_of_region(const Tensor& tensor, const TensorSlice& held, const TensorSlice& region);

// Elements [begin, end) of a row-major tensor of `shape`, as the fewest
// rectangular slices (at most 2 x rank - 1): the distributed optimizer owns
// such flat ranges, and a checkpoint stores only rectangles.
std::vector<TensorSlice> flat_range_slices(const std::vector<int64_t>& shape, int64_t begin, int64_t end);

}  // namespace moebench::ckpt
