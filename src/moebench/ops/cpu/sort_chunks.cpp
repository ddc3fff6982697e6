// Reference chunk reordering: a prefix sum gives each input chunk's first
// row, then chunks are copied in the requested order.
#include "moebench/ops/sort_chunks.h"

#include <algorithm>
#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::ops::cpu {

template <typename T>
void sort_chunks_by_index(T* output, const T* input, const std::int64_t* chunk_rows,
                          const std::int64_t* order, std::int64_t chunks, std::int64_t hidden) {
  if (chunks < 0 || hidden < 0)
    throw Error("sort_chunks_by_index: chunks " + std::to_string(chunks) + " and hidden " +
                std::to_string(hidden) + " must be >= 0");
  std::vector<std::int64_t> first_row(chunks + 1, 0);
  for (std::int64_t c = 0; c < chunks; ++c) {
    if (chunk_rows[c] < 0)
      throw Error("sort_chunks_by_index: chunk " + std::to_string(c) + " has " +
                  std::to_string(chunk_rows[c]) + " rows; chunk sizes must be >= 0");
    first_row[c + 1] = first_row[c] + chunk_rows[c];
  }
  std::vector<bool> seen(chunks, false);
  T* target = output;
  for (std::int64_t i = 0; i < chunks; ++i) {
    const std::int64_t c = order[i];
    if (c < 0 || c >= chunks || seen[c])
      throw Error("sort_chunks_by_index: order[" + std::to_string(i) + "] = " + std::to_string(c) +
                  " is outside [0, " + std::to_string(chunks) +
                  ") or repeated; order must be a permutation of the chunk indices");
    seen[c] = true;
    target = std::copy(input + first_row[c] * hidden, input + first_row[c + 1] * hidden, target);
  }
}

template void sort_chunks_by_index<float>(float*, const float*, const std::int64_t*,
                                          const std::int64_t*, std::int64_t, std::int64_t);
template void sort_chunks_by_index<double>(double*, const double*, const std::int64_t*,
                                           const std::int64_t*, std::int64_t, std::int64_t);

}  // namespace moebench::ops::cpu
