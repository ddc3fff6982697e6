#pragma once
// The few places where Hugging Face's models compute differently from
// Megatron-Core. GPTModel follows Megatron unless told otherwise; the HF
// importer (ckpt/hf_import.h) sets these to reproduce the hub model exactly.
#include "moebench/ops/topk.h"

namespace moebench::model {

struct ModelConventions {
  // MLA softmax scale: Megatron (and HF DeepSeek-V3) multiply 1/sqrt(qk_head_dim)
  // by yarn_mscale(factor, mscale_all_dim)^2; HF DeepSeek-V2 uses 1/sqrt(qk_head_dim) alone.
  bool mla_softmax_yarn_mscale = true;
  // How group-limited routing ranks a group. Megatron sums each group's top
  // topk/group_topk scores (2 for DeepSeek-V2 and V3, so kTop2Sum); HF
  // DeepSeek-V2's group_limited_greedy takes the group's largest (kMax).
  ops::GroupScore group_score = ops::GroupScore::kTop2Sum;
};

}  // namespace moebench::model
