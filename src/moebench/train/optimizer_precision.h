#pragma once
// Megatron-Core's precision-aware optimizer: the dtypes Adam's state is
// stored in, from the flags
//   --use-precision-aware-optimizer   allows the dtypes below other than fp32
//   --exp-avg-dtype fp32|bf16         m, Adam's first moment (default fp32)
//   --exp-avg-sq-dtype fp32|bf16      v, Adam's second moment (default fp32)
//   --main-grads-dtype fp32           Megatron's bf16 is not supported yet
//   --main-params-dtype fp32          Megatron's fp16 is not supported yet
// Megatron's fp16 and fp8 moments are rejected too. The update computes in
// fp32 whatever the storage: a bf16 moment is widened, updated and rounded
// back to the nearest bf16 (ties to even).
//
// As in Megatron, a dtype other than fp32 needs --use-precision-aware-optimizer.
// Unlike Megatron, which also requires --use-distributed-optimizer, moebench
// honours the dtypes in both of its optimizers (a single GPU runs plain Adam).
#include <string>

#include "moebench/config/flag_map.h"
#include "moebench/core/dtype.h"

namespace moebench::train {

struct OptimizerPrecision {
  DType exp_avg = DType::F32;     // F32 or BF16
  DType exp_avg_sq = DType::F32;  // F32 or BF16

  // Bytes of optimizer state per parameter: the fp32 main weights and both
  // moments (12 with fp32 moments, 8 with both in bf16).
  double state_bytes_per_parameter() const;
  // "fp32 main, bf16 m, fp32 v", for `moebench plan`.
  std::string describe() const;
};

// Reads and checks the flags above; throws an Error naming the flag, its
// value and the values allowed.
OptimizerPrecision optimizer_precision_from_flags(const config::FlagMap& flags);

}  // namespace moebench::train
