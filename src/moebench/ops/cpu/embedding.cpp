#include "moebench/ops/embedding.h"

#include <algorithm>
#include <string>

#include "moebench/core/error.h"

namespace moebench::ops::cpu {
namespace {

// Both directions index the table with the ids, so both check them first.
void check_ids(const std::int64_t* ids, std::int64_t n, std::int64_t vocab) {
  for (std::int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      throw Error("embedding: token id " + std::to_string(ids[i]) + " at position " +
                  std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(vocab) +
                  "); tokenize the data with the model's tokenizer or raise the model's "
                  "vocabulary size to cover it");
    }
  }
}

}  // namespace

template <typename T>
void embedding_forward(T* out, const std::int64_t* ids, const T* table, std::int64_t n,
                       std::int64_t vocab, std::int64_t c) {
  check_ids(ids, n, vocab);
  for (std::int64_t i = 0; i < n; ++i) {
    const T* row = table + ids[i] * c;
    std::copy(row, row + c, out + i * c);
  }
}

template <typename T>
void embedding_backward(T* dtable, const T* dout, const std::int64_t* ids, std::int64_t n,
                        std::int64_t vocab, std::int64_t c) {
  check_ids(ids, n, vocab);
  for (std::int64_t i = 0; i < n; ++i) {
    T* drow = dtable + ids[i] * c;
    const T* dy = dout + i * c;
    for (std::int64_t j = 0; j < c; ++j) drow[j] += dy[j];
  }
}

#define MOEBENCH_INSTANTIATE_EMBEDDING(T)                                              \
  template void embedding_forward<T>(T*, const std::int64_t*, const T*, std::int64_t,  \
                                     std::int64_t, std::int64_t);                      \
  template void embedding_backward<T>(T*, const T*, const std::int64_t*, std::int64_t, \
                                      std::int64_t, std::int64_t);
MOEBENCH_INSTANTIATE_EMBEDDING(float)
MOEBENCH_INSTANTIATE_EMBEDDING(double)
#undef MOEBENCH_INSTANTIATE_EMBEDDING

}  // namespace moebench::ops::cpu
