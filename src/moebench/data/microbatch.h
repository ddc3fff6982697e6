#pragma once
// One microbatch of language-model training data, and what produces them.
#include <cstdint>

#include "moebench/core/tensor.h"

namespace moebench::data {

struct Microbatch {
  Tensor tokens;     // int64 [B, S]: model input
  Tensor labels;     // int64 [B, S]: tokens shifted left by one (the next token)
  Tensor loss_mask;  // float32 [B, S]: 1 where the label counts in the loss
};

// A stream of samples addressed by their global index, so data-parallel ranks
// and a resumed run read exactly the samples they are owed.
class MicrobatchSource {
 public:
  virtual ~MicrobatchSource() = default;
  // Samples first_sample .. first_sample + batch_size - 1, stacked.
  virtual Microbatch microbatch(int64_t first_sample, int64_t batch_size) const = 0;
};

}  // namespace moebench::data
