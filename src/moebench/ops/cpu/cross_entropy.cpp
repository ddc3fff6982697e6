#include "moebench/ops/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "moebench/core/error.h"

namespace moebench::ops::cpu {
namespace {

void check_vocab(std::int64_t vocab, std::int64_t padded_vocab) {
  if (vocab < 1 || vocab > padded_vocab) {
    throw Error("cross_entropy: vocabulary size " + std::to_string(vocab) +
                " must be in [1, padded vocabulary size " + std::to_string(padded_vocab) +
                "]; pass the tokenizer's vocabulary size and the logits' row width");
  }
}

void check_label(std::int64_t label, std::int64_t position, std::int64_t vocab) {
  if (label < 0 || label >= vocab) {
    throw Error("cross_entropy: label " + std::to_string(label) + " at position " +
                std::to_string(position) + " is outside the vocabulary [0, " +
                std::to_string(vocab) + "); labels must be token ids of the model's tokenizer");
  }
}

// log(sum(exp(x[0..v)))), shifted by the maximum so no exp overflows.
template <typename T>
T logsumexp(const T* x, std::int64_t v) {
  const T max = *std::max_element(x, x + v);
  T sum = 0;
  for (std::int64_t j = 0; j < v; ++j) sum += std::exp(x[j] - max);
  return max + std::log(sum);
}

template <typename T>
T mask_sum(const T* loss_mask, std::int64_t n) {
  if (loss_mask == nullptr) return T(n);
  T sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += loss_mask[i];
  if (!(sum > 0)) {
    throw Error(
        "cross_entropy: the loss mask sums to " + std::to_string(sum) + " over " +
        std::to_string(n) +
        " tokens, so their mean loss is undefined; the mask must select at least one token");
  }
  return sum;
}

}  // namespace

template <typename T>
void cross_entropy_forward(T* losses, const T* logits, const std::int64_t* labels, std::int64_t n,
                           std::int64_t vocab, std::int64_t padded_vocab) {
  check_vocab(vocab, padded_vocab);
  for (std::int64_t i = 0; i < n; ++i) {
    check_label(labels[i], i, vocab);
    const T* row = logits + i * padded_vocab;
    losses[i] = logsumexp(row, vocab) - row[labels[i]];
  }
}

template <typename T>
void cross_entropy_backward(T* dlogits, const T* dlosses, const T* logits,
                            const std::int64_t* labels, std::int64_t n, std::int64_t vocab,
                            std::int64_t padded_vocab) {
  check_vocab(vocab, padded_vocab);
  for (std::int64_t i = 0; i < n; ++i) {
    check_label(labels[i], i, vocab);
    const T* row = logits + i * padded_vocab;
    T* drow = dlogits + i * padded_vocab;
    const T lse = logsumexp(row, vocab);
    for (std::int64_t j = 0; j < vocab; ++j) drow[j] = dlosses[i] * std::exp(row[j] - lse);
    drow[labels[i]] -= dlosses[i];
    std::fill(drow + vocab, drow + padded_vocab, T(0));
  }
}

template <typename T>
T masked_mean_forward(const T* losses, const std::type_identity_t<T>* loss_mask, std::int64_t n) {
  const T count = mask_sum(loss_mask, n);
  T sum = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    sum += loss_mask == nullptr ? losses[i] : loss_mask[i] * losses[i];
  }
  return sum / count;
}

template <typename T>
void masked_mean_backward(T* dlosses, std::type_identity_t<T> dmean,
                          const std::type_identity_t<T>* loss_mask, std::int64_t n) {
  const T scale = dmean / mask_sum(loss_mask, n);
  for (std::int64_t i = 0; i < n; ++i) {
    dlosses[i] = loss_mask == nullptr ? scale : scale * loss_mask[i];
  }
}

#define MOEBENCH_INSTANTIATE_CROSS_ENTROPY(T)                                             \
  template void cross_entropy_forward<T>(T*, const T*, const std::int64_t*, std::int64_t, \
                                         std::int64_t, std::int64_t);                     \
  template void cross_entropy_backward<T>(T*, const T*, const T*, const std::int64_t*,    \
                                          std::int64_t, std::int64_t, std::int64_t);      \
  template T masked_mean_forward<T>(const T*, const T*, std::int64_t);                    \
  template void masked_mean_backward<T>(T*, T, const T*, std::int64_t);
MOEBENCH_INSTANTIATE_CROSS_ENTROPY(float)
MOEBENCH_INSTANTIATE_CROSS_ENTROPY(double)
#undef MOEBENCH_INSTANTIATE_CROSS_ENTROPY

}  // namespace moebench::ops::cpu
