#pragma once
// Reordering of row chunks, Megatron-Core's sort_chunks_by_idxs: the input
// rows are split, in order, into `chunks` runs of chunk_rows[i] rows of
// `hidden` values; the output is input chunk order[0], then chunk order[1],
// and so on. The all-to-all dispatcher uses it to turn received rows grouped
// [source rank][local expert] into [local expert][source rank] and back. A
// chunk reordering is a permutation, so its backward is the inverse order
// applied to the gradient: no separate backward op.
#include <cstdint>

namespace moebench::ops::cpu {

// output[sum(chunk_rows), hidden]; `order` must list every chunk index
// once. Instantiated for float and double.
template <typename T>
void sort_chunks_by_index(T* output, const T* input, const std::int64_t* chunk_rows,
                          const std::int64_t* order, std::int64_t chunks, std::int64_t hidden);

}  // namespace moebench::ops::cpu
