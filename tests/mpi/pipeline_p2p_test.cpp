// PipelineP2P on 2 and 4 ranks forming a ring of stages: each named helper
// delivers what the neighbour sent, in the right direction. Then a toy
// model run through the real schedules over MPI (1F1B and interleaved)
// gives the losses and gradients one process computes alone.
#include "moebench/dist/pipeline_p2p.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <utility>

#include "moebench/core/error.h"
#include "moebench/train/pipeline_runner.h"
#include "mpi_test_world.h"

namespace moebench::dist {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<float> values(const Tensor& tensor) {
  const float* data = tensor.data<float>();
  return std::vector<float>(data, data + tensor.numel());
}

// What stage s puts on the wire: distinct per stage and per direction.
Tensor activation_of(int stage) {
  return Tensor::from_vector(std::vector<float>{float(stage), 10.f + stage});
}
Tensor gradient_of(int stage) {
  return Tensor::from_vector(std::vector<float>{-float(stage), -10.f - stage});
}

PipelineP2P make_p2p() { return PipelineP2P(test_world(), {2}, DType::F32); }

TEST(PipelineP2P, NeighboursFormARing) {
  const PipelineP2P p2p = make_p2p();
  const int n = test_world().size();
  EXPECT_EQ(p2p.next_stage(), (p2p.stage() + 1) % n);
  EXPECT_EQ(p2p.previous_stage(), (p2p.stage() + n - 1) % n);
}

TEST(PipelineP2P, SingleTransfersPassATokenRoundTheRingBothWays) {
  PipelineP2P p2p = make_p2p();
  const int stage = p2p.stage(), n = p2p.stages();
  // Forward: stage 0 starts, each later stage adds its stage number and
  // passes on, and stage 0 gets back 0 + 1 + ... + (n - 1).
  Tensor token = Tensor::from_vector(std::vector<float>{0.f, 1.f});
  if (stage != 0) {
    token = p2p.recv_forward();
    token.data<float>()[0] += float(stage);
  }
  p2p.send_forward(token);
  if (stage == 0) {
    EXPECT_THAT(values(p2p.recv_forward()), ElementsAre(float(n * (n - 1) / 2), 1.f));
  }
  // Backward: stage 0 starts, the token goes n-1, n-2, ..., 1 and each
  // stage multiplies by 2, so stage 0 gets 2^(n-1).
  token = Tensor::from_vector(std::vector<float>{1.f, 1.f});
  if (stage != 0) {
    token = p2p.recv_backward();
    token.data<float>()[0] *= 2.f;
  }
  p2p.send_backward(token);
  if (stage == 0) {
    EXPECT_THAT(values(p2p.recv_backward()), ElementsAre(float(1 << (n - 1)), 1.f));
  }
}

TEST(PipelineP2P, WholeRingShiftsAtOnceWithoutDeadlock) {
  // Every stage sends and receives in the same call: the ring would hang on
  // blocking sends, not on posted-together ones.
  PipelineP2P p2p = make_p2p();
  EXPECT_THAT(values(p2p.send_forward_recv_forward(activation_of(p2p.stage()))),
              ElementsAreArray(values(activation_of(p2p.previous_stage()))));
  EXPECT_THAT(values(p2p.send_backward_recv_backward(gradient_of(p2p.stage()))),
              ElementsAreArray(values(gradient_of(p2p.next_stage()))));
}

TEST(PipelineP2P, OneForwardOneBackwardPairsExchangeWithEachOther) {
  // Even stage s and odd stage s + 1 trade an activation for a gradient, as
  // 1F1B's steady state does.
  PipelineP2P p2p = make_p2p();
  const int stage = p2p.stage();
  if (stage % 2 == 0) {
    EXPECT_THAT(values(p2p.send_forward_recv_backward(activation_of(stage))),
                ElementsAreArray(values(gradient_of(stage + 1))));
  } else {
    EXPECT_THAT(values(p2p.send_backward_recv_forward(gradient_of(stage))),
                ElementsAreArray(values(activation_of(stage - 1))));
  }
}

TEST(PipelineP2P, FourWayExchangeKeepsActivationsAndGradientsApart) {
  // On 2 ranks the next and previous stage are the same rank: the activation
  // and the gradient must still land in their own buffers.
  PipelineP2P p2p = make_p2p();
  const PipelineP2P::Received got =
      p2p.send_forward_backward_recv_forward_backward(activation_of(p2p.stage()), gradient_of(p2p.stage()));
  EXPECT_THAT(values(got.forward), ElementsAreArray(values(activation_of(p2p.previous_stage()))));
  EXPECT_THAT(values(got.backward), ElementsAreArray(values(gradient_of(p2p.next_stage()))));
}

TEST(PipelineP2P, RejectsATensorOfAnotherShapeBeforeSending) {
  PipelineP2P p2p = make_p2p();
  try {
    p2p.send_forward(Tensor::from_vector(std::vector<float>{1, 2, 3}));
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_THAT(error.what(), HasSubstr("f32[2]"));
  }
}

// ---- A toy model through the real schedules ---------------------------------

// Virtual stage v = chunk * PP + stage computes y = a_v * x + (stage + 1),
// with one parameter a_v = 1 + v / 4; the last virtual stage's loss is
// sum(w * y) with w = [1, 2, 3]. Backward: dx = a_v * dy and
// da_v += sum(dy * x), so each pass needs its own saved input.
constexpr float kLossWeights[] = {1.f, 2.f, 3.f};

float scale_of(int virtual_stage) { return 1.f + float(virtual_stage) / 4.f; }

std::vector<float> microbatch_input(int microbatch) {
  return {float(microbatch + 1), -float(microbatch + 1), 0.5f * float(microbatch)};
}

struct ToyResults {
  std::map<int, float> losses;                    // by microbatch
  std::map<int, std::vector<float>> input_grads;  // by microbatch, from the first virtual stage
  std::map<int, float> scale_grads;               // by virtual stage
};

// One process running every virtual stage in order: the reference.
ToyResults run_alone(int virtual_stages, int stages, int microbatches) {
  ToyResults results;
  for (int m = 0; m < microbatches; ++m) {
    std::vector<std::vector<float>> inputs;
    std::vector<float> x = microbatch_input(m);
    for (int v = 0; v < virtual_stages; ++v) {
      inputs.push_back(x);
      for (float& e : x) e = scale_of(v) * e + float(v % stages + 1);
    }
    results.losses[m] = 0;
    for (int i = 0; i < 3; ++i) results.losses[m] += kLossWeights[i] * x[i];
    std::vector<float> dy(std::begin(kLossWeights), std::end(kLossWeights));
    for (int v = virtual_stages - 1; v >= 0; --v) {
      for (int i = 0; i < 3; ++i) results.scale_grads[v] += dy[i] * inputs[v][i];
      for (float& e : dy) e *= scale_of(v);
    }
    results.input_grads[m] = dy;
  }
  return results;
}

// The same model cut into this rank's chunks, as the schedule sees it.
class ToyStageModel final : public train::PipelineStageModel {
 public:
  ToyStageModel(int stage, int stages, int model_chunks)
      : stage_(stage), stages_(stages), virtual_stages_(stages * model_chunks) {}

  Tensor forward(int microbatch, int model_chunk, const Tensor& input) override {
    const int v = virtual_stage(model_chunk);
    const std::vector<float> x = v == 0 ? microbatch_input(microbatch) : values(input);
    EXPECT_EQ(input.defined(), v != 0);
    saved_[{microbatch, model_chunk}] = x;
    peak_in_flight_ = std::max(peak_in_flight_, int(saved_.size()));
    std::vector<float> y = x;
    for (float& e : y) e = scale_of(v) * e + float(stage_ + 1);
    if (v == virtual_stages_ - 1) {
      float& loss = results_.losses[microbatch];
      for (int i = 0; i < 3; ++i) loss += kLossWeights[i] * y[i];
      return {};
    }
    return Tensor::from_vector(y);
  }

  Tensor backward(int microbatch, int model_chunk, const Tensor& output_grad) override {
    const int v = virtual_stage(model_chunk);
    EXPECT_EQ(output_grad.defined(), v != virtual_stages_ - 1);
    std::vector<float> dy = v == virtual_stages_ - 1
                                ? std::vector<float>(std::begin(kLossWeights), std::end(kLossWeights))
                                : values(output_grad);
    const auto saved = saved_.find({microbatch, model_chunk});
    if (saved == saved_.end()) throw Error("backward before forward");
    for (int i = 0; i < 3; ++i) results_.scale_grads[v] += dy[i] * saved->second[i];
    saved_.erase(saved);
    for (float& e : dy) e *= scale_of(v);
    if (v == 0) {
      results_.input_grads[microbatch] = dy;
      return {};
    }
    return Tensor::from_vector(dy);
  }

  const ToyResults& results() const { return results_; }
  int peak_in_flight() const { return peak_in_flight_; }
  bool all_released() const { return saved_.empty(); }

 private:
  int virtual_stage(int model_chunk) const { return model_chunk * stages_ + stage_; }

  int stage_, stages_, virtual_stages_;
  std::map<std::pair<int, int>, std::vector<float>> saved_;  // by (microbatch, chunk)
  int peak_in_flight_ = 0;
  ToyResults results_;
};

void expect_matches_one_process(int model_chunks, int microbatches) {
  SCOPED_TRACE("VPP=" + std::to_string(model_chunks) + " M=" + std::to_string(microbatches));
  PipelineP2P p2p(test_world(), {3}, DType::F32);
  const int stage = p2p.stage(), stages = p2p.stages();
  const train::PipelineSchedule schedule =
      train::pipeline_schedule(stages, model_chunks, microbatches, stage);
  ToyStageModel model(stage, stages, model_chunks);
  train::run_pipeline_schedule(schedule, model, p2p);

  const ToyResults expected = run_alone(stages * model_chunks, stages, microbatches);
  const ToyResults& got = model.results();
  if (stage == stages - 1) {
    ASSERT_EQ(got.losses.size(), size_t(microbatches));
    for (int m = 0; m < microbatches; ++m) EXPECT_FLOAT_EQ(got.losses.at(m), expected.losses.at(m)) << m;
  }
  if (stage == 0) {
    ASSERT_EQ(got.input_grads.size(), size_t(microbatches));
    for (int m = 0; m < microbatches; ++m)
      EXPECT_THAT(got.input_grads.at(m), ElementsAreArray(expected.input_grads.at(m))) << m;
  }
  ASSERT_EQ(got.scale_grads.size(), size_t(model_chunks));
  for (const auto& [v, grad] : got.scale_grads)
    EXPECT_FLOAT_EQ(grad, expected.scale_grads.at(v)) << "v=" << v;
  EXPECT_TRUE(model.all_released());
  // Activations alive at once, as the schedule promises: the warm-up
  // forwards plus the one of the first steady pair.
  EXPECT_EQ(model.peak_in_flight(), std::min(schedule.warmup_passes + 1, microbatches * model_chunks));
}

TEST(PipelineRunner, OneForwardOneBackwardMatchesOneProcess) {
  const int n = test_world().size();
  expect_matches_one_process(1, 1);
  expect_matches_one_process(1, 3);
  expect_matches_one_process(1, 2 * n + 1);
}

TEST(PipelineRunner, InterleavedMatchesOneProcess) {
  const int n = test_world().size();
  expect_matches_one_process(2, n);  // M = PP: Megatron runs every forward first
  expect_matches_one_process(2, 2 * n);
  expect_matches_one_process(3, 3 * n);
}

}  // namespace
}  // namespace moebench::dist
