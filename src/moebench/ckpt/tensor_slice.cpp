#include "moebench/ckpt/tensor_slice.h"

#include <algorithm>

namespace moebench::ckpt {

TensorSlice TensorSlice::whole(const std::vector<int64_t>& shape) {
  return {std::vector<int64_t>(shape.size(), 0), shape};
}

int64_t TensorSlice::numel() const {
  int64_t count = 1;
  for (const int64_t size : sizes) count *= size;
  return count;
}

bool TensorSlice::fits(const std::vector<int64_t>& shape) const {
  if (offsets.size() != shape.size() || sizes.size() != shape.size()) return false;
  for (size_t d = 0; d < shape.size(); ++d)
    if (offsets[d] < 0 || sizes[d] < 0 || offsets[d] + sizes[d] > shape[d]) return false;
  return true;
}

std::string TensorSlice::describe() const {
  std::string text = "[";
  for (size_t d = 0; d < offsets.size(); ++d) {
    if (d > 0) text += ", ";
    text += std::to_string(offsets[d]) + ":" + std::to_string(offsets[d] + sizes[d]);
  }
  return text + "]";
}

std::optional<TensorSlice> intersect(const TensorSlice& a, const TensorSlice& b) {
  if (a.offsets.size() != b.offsets.size()) return std::nullopt;
  TensorSlice common;
  for (size_t d = 0; d < a.offsets.size(); ++d) {
    const int64_t begin = std::max(a.offsets[d], b.offsets[d]);
    const int64_t end = std::min(a.offsets[d] + a.sizes[d], b.offsets[d] + b.sizes[d]);
    if (end <= begin) return std::nullopt;
    common.offsets.push_back(begin);
    common.sizes.push_back(end - begin);
  }
  return common;
}

Tensor view_of_region(const Tensor& tensor, const TensorSlice& held, const TensorSlice& region) {
  Tensor view = tensor;
  for (size_t d = 0; d < region.offsets.size(); ++d) {
    const int64_t start = region.offsets[d] - held.offsets[d];
    view = view.slice(int64_t(d), start, start + region.sizes[d]);
  }
  return view;
}

std::vector<TensorSlice> flat_range_slices(const std::vector<int64_t>& shape, int64_t begin, int64_t end) {
  if (begin >= end) return {};
  if (shape.empty()) return {TensorSlice{}};
  // Elements per step of dimension 0, and the rows [first, last) the range touches.
  int64_t row = 1;
  for (size_t d = 1; d < shape.size(); ++d) row *= shape[d];
  const std::vector<int64_t> inner(shape.begin() + 1, shape.end());
  auto prefixed = [](int64_t index, int64_t count, const TensorSlice& rest) {
    TensorSlice slice{{index}, {count}};
    slice.offsets.insert(slice.offsets.end(), rest.offsets.begin(), rest.offsets.end());
    slice.sizes.insert(slice.sizes.end(), rest.sizes.begin(), rest.sizes.end());
    return slice;
  };
  std::vector<TensorSlice> slices;
  int64_t first_row = begin / row;
  const int64_t last_row = end / row;
  // A partial first row: recurse into it.
  if (begin % row != 0) {
    const int64_t row_end = std::min(end, (first_row + 1) * row);
    for (const TensorSlice& rest : flat_range_slices(inner, begin % row, row_end - first_row * row))
      slices.push_back(prefixed(first_row, 1, rest));
    if (row_end == end) return slices;
    ++first_row;
  }
  // Whole rows in the middle: one slice.
  if (last_row > first_row) slices.push_back(prefixed(first_row, last_row - first_row, TensorSlice::whole(inner)));
  // A partial last row.
  if (end % row != 0)
    for (const TensorSlice& rest : flat_range_slices(inner, 0, end % row)) slices.push_back(prefixed(last_row, 1, rest));
  return slices;
}

}  // namespace moebench::ckpt
