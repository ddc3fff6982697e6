#pragma once
// The argument checks the expert-parallel token dispatchers share: each
// failure is a moebench::Error naming the phase, the tensor, the expected
// shape and what came instead.
#include <cstdint>

#include "moebench/core/tensor.h"
#include "moebench/model/moe/router.h"

namespace moebench::model {

// hidden: contiguous f32 CPU [N, h]; routing: int64 map and f32 probs, both [N, k].
void check_dispatch_inputs(const char* phase, const Tensor& hidden, const Routing& routing);
// rows: contiguous f32 CPU [expected_rows, hidden].
void check_rows(const char* phase, const char* name, const Tensor& rows, int64_t expected_rows,
                int64_t hidden);

}  // namespace moebench::model
