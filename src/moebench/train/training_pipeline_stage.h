#pragma once
// TrainingPipelineStage: a TrainableModel's pipeline stage as the schedule
// sees it (PipelineStageModel) for one iteration, as the forward_step and
// backward_step of Megatron's schedules: the first virtual stage reads the
// microbatch's tokens, the last one its labels and loss mask and computes the
// loss; every backward is scaled by `loss_scale` (1 / number of
// microbatches, as Megatron divides each microbatch's loss), and the MoE
// layers' aux losses add their gradient on the stage that holds them. It
// sums the losses its passes produced: the lm loss on the last stage, each
// stage its own layers' aux losses.
#include <functional>

#include "moebench/data/microbatch.h"
#include "moebench/train/pipeline_runner.h"
#include "moebench/train/trainable_model.h"

namespace moebench::train {

class TrainingPipelineStage final : public PipelineStageModel {
 public:
  // Whether a forward keeps what a backward needs (training) or drops it at
  // once (evaluation).
  enum class Mode { kTrain, kForwardOnly };

  // `microbatch(m)` reads this data-parallel rank's microbatch m; it is
  // called only on the first and last virtual stages. This rank is stage
  // `stage` of PP = `stages` with `model_chunks` chunks.
  TrainingPipelineStage(TrainableModel& model, std::function<data::Microbatch(int)> microbatch, int stage,
                        int stages, int model_chunks, double loss_scale, Mode mode);

  Tensor forward(int microbatch, int model_chunk, const Tensor& input) override;
  Tensor backward(int microbatch, int model_chunk, const Tensor& output_grad) override;

  // Sums over the forwards run so far (not divided by the microbatches).
  double lm_loss_sum() const { return lm_loss_sum_; }
  double aux_loss_sum() const { return aux_loss_sum_; }

 private:
  bool is_first_virtual_stage(int model_chunk) const { return stage_ == 0 && model_chunk == 0; }
  bool is_last_virtual_stage(int model_chunk) const {
    return stage_ == stages_ - 1 && model_chunk == model_chunks_ - 1;
  }

  TrainableModel& model_;
  std::function<data::Microbatch(int)> microbatch_;
  int stage_, stages_, model_chunks_;
  double loss_scale_;
  Mode mode_;
  double lm_loss_sum_ = 0;
  double aux_loss_sum_ = 0;
};

}  // namespace moebench::train
