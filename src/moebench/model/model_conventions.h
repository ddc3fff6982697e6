#pragma once
// Where Hugging Face's models compute differently from Megatron-Core.
// GPTModel follows Megatron unless told otherwise; the HF importer
// (ckpt/hf_import.h) sets these to reproduce the hub model exactly.
#include <optional>

#include "moebench/ops/topk.h"

namespace moebench::model {

struct ModelConventions {
  // How group-limited routing ranks a group. Unset: Megatron's rule, the sum
  // of the group's top topk/group_topk scores (1: kMax, 2: kTop2Sum). HF
  // DeepSeek-V2's group_limited_greedy always takes the group's largest
  // (kMax); DeepSeek-V3's noaux_tc always sums the top two (kTop2Sum).
  std::optional<ops::GroupScore> group_score;
};

}  // namespace moebench::model
