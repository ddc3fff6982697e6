#pragma once
// One batch forward through a model built for one rank of a TP x PP x EP mapping
// (evaluation, no backward), for `moebench logits` and checkpoint checks: the
// stages run in order as Megatron's forward_only schedule, each passing its
// hidden states to the next; the last stage computes the logits and the loss.
#include "moebench/core/tensor.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/model/gpt_model.h"

namespace moebench::train {

// Collective over the tp, pp and ep groups of `parallel_state`, every rank
// with the same input_ids int64 [B, S] and labels int64 [B, S] (undefined: no
// loss; S divisible by TP under sequence parallelism). On the last pipeline
// stage returns the logits [B, S, padded vocab] (every tp rank the whole
// vocabulary, gathered over the vocabulary-parallel output layer) and
// lm_loss; elsewhere an empty ForwardOutput. `model` is this rank's stage
// (its pipeline_layout() for the pp group).
model::ForwardOutput pipeline_logits(model::GPTModel& model, const dist::ParallelState& parallel_state,
                                     const Tensor& input_ids, const Tensor& labels);

}  // namespace moebench::train
