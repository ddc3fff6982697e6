#pragma once
// run_pipeline_schedule: one rank's part of one iteration's forward and
// backward passes, as Megatron-Core's forward_backward_func: it walks the
// rank's PipelineSchedule steps, runs each pass on the rank's model chunks
// and moves activations and gradients between stages through PipelineP2P.
// The model side is PipelineStageModel: what to do for one (microbatch,
// model chunk) pass; the schedule decides when, and what goes where.
#include "moebench/core/tensor.h"
#include "moebench/dist/pipeline_p2p.h"
#include "moebench/train/pipeline_schedule.h"

namespace moebench::train {

// One rank's model chunks, seen by the schedule. A forward keeps what its
// backward needs per (microbatch, chunk): up to PP * VPP passes are in flight.
class PipelineStageModel {
 public:
  virtual ~PipelineStageModel() = default;

  // Runs chunk `model_chunk` forward on `microbatch`. `input` is the
  // previous virtual stage's output, undefined on the first virtual stage
  // (which reads the microbatch's tokens itself). Returns the output for the
  // next virtual stage; the last virtual stage computes and keeps its loss,
  // and what it returns is not used.
  virtual Tensor forward(int microbatch, int model_chunk, const Tensor& input) = 0;

  // Runs the backward of that pass and releases what its forward kept.
  // `output_grad` is the gradient of the forward's output, undefined on the
  // last virtual stage (which starts from its loss). Returns the gradient of
  // the forward's input for the previous virtual stage; on the first virtual
  // stage what it returns is not used.
  virtual Tensor backward(int microbatch, int model_chunk, const Tensor& output_grad) = 0;
};

// Runs `schedule` (this rank's) on `model`, communicating through `p2p`,
// whose pp group must have schedule.stages ranks with this rank at
// schedule.stage. Every rank of the pp group calls it with its own schedule
// for the same PP, VPP and M.
void run_pipeline_schedule(const PipelineSchedule& schedule, PipelineStageModel& model,
                           dist::PipelineP2P& p2p);

// Forward passes only (evaluation, Megatron's forward_only): microbatch after
// microbatch, each through the virtual stages in order; a rank receives each
// chunk's input from the previous virtual stage and sends its output to the
// next, one blocking transfer at a time. Every transfer's receiver is the
// next pass in that order, so none waits on a later one: no deadlock.
// Collective over the pp group, every rank with the same VPP and M.
void run_pipeline_forward_only(int model_chunks, int microbatches, PipelineStageModel& model,
                               dist::PipelineP2P& p2p);

}  // namespace moebench::train
