#include "moebench/train/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "moebench/core/error.h"
#include "moebench/data/mock_dataset.h"
#include "moebench/dist/single_rank_communicator.h"

namespace moebench::train {
namespace {

// A stand-in for GPTModel with the same training interface: a table
// regression that predicts label / vocab from the input token,
//   prediction(t) = weight[t] + bias,  loss = mean over tokens of (prediction - label / vocab)^2 / 2.
// The mock data's labels are a function of the token, so the loss can reach 0.
class TableRegression {
 public:
  explicit TableRegression(int64_t vocab) : vocab_(vocab) {
    weight_.name = "weight";
    weight_.value = Tensor::zeros({vocab}, DType::F32);
    weight_.grad = Tensor::zeros({vocab}, DType::F32);
    bias_.name = "bias";
    bias_.value = Tensor::zeros({1}, DType::F32);
    bias_.grad = Tensor::zeros({1}, DType::F32);
    bias_.weight_decay = false;
  }

  model::ForwardOutput forward(const Tensor& tokens, const Tensor& labels, const Tensor& loss_mask) {
    ++forward_calls;
    saved_tokens_ = tokens;
    saved_errors_.assign(size_t(tokens.numel()), 0.0);
    double loss = 0;
    const float* mask = loss_mask.data<float>();
    for (int64_t i = 0; i < tokens.numel(); ++i) {
      const int64_t t = tokens.data<int64_t>()[i];
      const double error = weight_.value.data<float>()[t] + bias_.value.data<float>()[0] -
                           double(labels.data<int64_t>()[i]) / double(vocab_);
      saved_errors_[size_t(i)] = error * mask[i];
      loss += 0.5 * error * error * mask[i];
    }
    model::ForwardOutput out;
    out.lm_loss = loss_to_return.value_or(loss / double(tokens.numel()));
    out.aux_loss = 0.25;
    return out;
  }

  void backward(double loss_scale) {
    backward_scales.push_back(loss_scale);
    const double n = double(saved_tokens_.numel());
    for (int64_t i = 0; i < saved_tokens_.numel(); ++i) {
      const double d = loss_scale * saved_errors_[size_t(i)] / n;
      weight_.grad.data<float>()[saved_tokens_.data<int64_t>()[i]] += float(d);
      bias_.grad.data<float>()[0] += float(d);
    }
    if (poison_gradient) bias_.grad.data<float>()[0] = INFINITY;
  }

  std::vector<model::Parameter*> parameters() { return {&weight_, &bias_}; }
  void zero_grad() {
    weight_.grad.fill_(0);
    bias_.grad.fill_(0);
  }
  void update_expert_bias(dist::Communicator&) { ++expert_bias_updates; }

  std::vector<float> weights() const {
    const float* w = weight_.value.data<float>();
    return std::vector<float>(w, w + weight_.value.numel());
  }

  int forward_calls = 0;
  int expert_bias_updates = 0;
  std::vector<double> backward_scales;
  std::optional<double> loss_to_return;  // overrides the computed loss (NaN tests)
  bool poison_gradient = false;

 private:
  int64_t vocab_;
  model::Parameter weight_;
  model::Parameter bias_;
  Tensor saved_tokens_;
  std::vector<double> saved_errors_;
};

// Mock data that also records which samples were asked for.
class RecordingSource final : public data::MicrobatchSource {
 public:
  explicit RecordingSource(data::Split split) : data_(kSeqLength, kVocab, 7, split) {}
  data::Microbatch microbatch(int64_t first_sample, int64_t batch_size) const override {
    requests.push_back({first_sample, batch_size});
    return data_.microbatch(first_sample, batch_size);
  }
  static constexpr int64_t kSeqLength = 8;
  static constexpr int64_t kVocab = 16;
  mutable std::vector<std::pair<int64_t, int64_t>> requests;

 private:
  data::MockDataset data_;
};

TrainingSetup small_setup(int micro_batch, int global_batch, int64_t iterations) {
  TrainingSetup setup;
  setup.parallel.micro_batch = micro_batch;
  setup.parallel.global_batch = global_batch;
  setup.seq_length = RecordingSource::kSeqLength;
  setup.flops_per_iteration = 1e9;
  TrainConfig& t = setup.train;
  t.train_iters = iterations;
  t.lr = 0.05;
  t.min_lr = 0.005;
  t.lr_decay_style = LrDecayStyle::Cosine;
  t.lr_warmup_iters = 2;
  t.weight_decay = 0.01;
  t.eval_iters = 0;
  return setup;
}

struct RunResult {
  TrainingSummary summary;
  std::vector<IterationRecord> records;
  std::vector<ValidationRecord> validations;
};

RunResult run(TableRegression& model, const TrainingSetup& setup, RecordingSource& train_data,
        RecordingSource& validation_data) {
  RunResult result;
  TrainableModelRef<TableRegression> trainable(model);
  dist::SingleRankCommunicator world;
  const dist::ParallelState parallel_state(world, {});
  Trainer trainer(trainable, setup, parallel_state, train_data, validation_data,
                  {[&](const IterationRecord& r) { result.records.push_back(r); },
                   [&](const ValidationRecord& r) { result.validations.push_back(r); }});
  result.summary = trainer.train();
  return result;
}

TEST(TrainTrainer, AccumulatesMicrobatchesAndFollowsTheSchedule) {
  TableRegression model(RecordingSource::kVocab);
  RecordingSource train_data(data::Split::Train), validation_data(data::Split::Validation);
  const TrainingSetup setup = small_setup(2, 8, 50);
  const RunResult r = run(model, setup, train_data, validation_data);

  ASSERT_EQ(r.records.size(), 50u);
  EXPECT_EQ(r.summary.iterations, 50);
  EXPECT_EQ(r.summary.consumed_samples, 400);
  // 4 microbatches per iteration reading consecutive samples, each backward scaled by 1/4.
  ASSERT_EQ(train_data.requests.size(), 200u);
  for (size_t k = 0; k < train_data.requests.size(); ++k)
    EXPECT_EQ(train_data.requests[k], std::make_pair(int64_t(2 * k), int64_t(2)));
  EXPECT_THAT(model.backward_scales, ::testing::Each(0.25));
  EXPECT_EQ(model.expert_bias_updates, 50);

  const LearningRateSchedule schedule = LearningRateSchedule::from_config(setup.train, 8);
  for (const IterationRecord& record : r.records) {
    EXPECT_EQ(record.consumed_samples, record.iteration * 8);
    // Logged after the scheduler's step, as Megatron logs it.
    EXPECT_DOUBLE_EQ(record.learning_rate, schedule.lr_at(double(record.iteration * 8)));
    EXPECT_DOUBLE_EQ(record.load_balancing_loss, 0.25);
    EXPECT_GT(record.elapsed_ms, 0);
    EXPECT_NEAR(record.tflops_per_gpu, 1e9 / (record.elapsed_ms / 1e3) / 1e12, 1e-9 * record.tflops_per_gpu);
    EXPECT_NEAR(record.tokens_per_second, 8 * 8 / (record.elapsed_ms / 1e3), 1e-9 * record.tokens_per_second);
    EXPECT_GT(record.peak_rss_bytes, 0);
    ASSERT_EQ(record.timers_ms.size(), 4u);
    EXPECT_EQ(record.timers_ms[0].first, "forward-backward");
    EXPECT_EQ(record.timers_ms[2].first, "all-grads-sync");
  }
  // The data is learnable: the loss falls by far more than noise.
  EXPECT_LT(r.records.back().lm_loss, 0.1 * r.records.front().lm_loss);
}

TEST(TrainTrainer, AccumulatedMicrobatchesEqualOneLargeBatch) {
  TableRegression accumulated(RecordingSource::kVocab), whole(RecordingSource::kVocab);
  RecordingSource a_train(data::Split::Train), a_valid(data::Split::Validation);
  RecordingSource w_train(data::Split::Train), w_valid(data::Split::Validation);
  run(accumulated, small_setup(2, 8, 5), a_train, a_valid);
  run(whole, small_setup(8, 8, 5), w_train, w_valid);
  const std::vector<float> a = accumulated.weights(), w = whole.weights();
  ASSERT_EQ(a.size(), w.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], w[i], 1e-6) << "weight " << i;
}

TEST(TrainTrainer, NonFiniteLossStopsTheRunByDefault) {
  TableRegression model(RecordingSource::kVocab);
  model.loss_to_return = NAN;
  RecordingSource train_data(data::Split::Train), validation_data(data::Split::Validation);
  try {
    run(model, small_setup(2, 8, 5), train_data, validation_data);
    FAIL() << "expected a moebench::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("iteration 1: the loss is not finite (lm loss nan"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("--no-check-for-nan-in-loss-and-grad"));
  }
}

TEST(TrainTrainer, SkipsAndCountsNanIterationsWhenToldTo) {
  TableRegression model(RecordingSource::kVocab);
  model.loss_to_return = NAN;
  RecordingSource train_data(data::Split::Train), validation_data(data::Split::Validation);
  TrainingSetup setup = small_setup(2, 8, 3);
  setup.train.check_for_nan = false;
  const RunResult r = run(model, setup, train_data, validation_data);
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.summary.skipped_iterations, 3);
  EXPECT_EQ(r.summary.nan_iterations, 3);
  EXPECT_TRUE(r.records[1].skipped && r.records[1].nan_loss);
  EXPECT_EQ(r.records[2].nan_iterations, 3);
  EXPECT_TRUE(std::isnan(r.records[0].grad_norm));
  // No update happened: the weights are untouched and the scheduler did not move.
  EXPECT_THAT(model.weights(), ::testing::Each(0.0f));
  EXPECT_EQ(r.records[2].learning_rate, 0.0);
  EXPECT_EQ(model.expert_bias_updates, 0);
}

TEST(TrainTrainer, NonFiniteGradientIsSkippedButNotCountedAsNanLoss) {
  TableRegression model(RecordingSource::kVocab);
  model.poison_gradient = true;
  RecordingSource train_data(data::Split::Train), validation_data(data::Split::Validation);
  TrainingSetup setup = small_setup(2, 8, 3);
  try {
    run(model, setup, train_data, validation_data);
    FAIL() << "expected a moebench::Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("iteration 1: the gradient norm is inf"));
  }

  TableRegression skipping(RecordingSource::kVocab);
  skipping.poison_gradient = true;
  setup.train.check_for_nan = false;
  const RunResult r = run(skipping, setup, train_data, validation_data);
  EXPECT_EQ(r.summary.skipped_iterations, 3);
  EXPECT_EQ(r.summary.nan_iterations, 0);
  EXPECT_TRUE(std::isinf(r.records[0].grad_norm));
}

TEST(TrainTrainer, EvaluatesEveryIntervalAndAtTheEnd) {
  TableRegression model(RecordingSource::kVocab);
  RecordingSource train_data(data::Split::Train), validation_data(data::Split::Validation);
  TrainingSetup setup = small_setup(2, 4, 12);
  setup.train.eval_interval = 5;
  setup.train.eval_iters = 3;
  const RunResult r = run(model, setup, train_data, validation_data);
  ASSERT_EQ(r.validations.size(), 3u);
  EXPECT_EQ(r.validations[0].iteration, 5);
  EXPECT_EQ(r.validations[1].iteration, 10);
  EXPECT_EQ(r.validations[2].iteration, 12);
  EXPECT_LT(r.validations[2].lm_loss, r.validations[0].lm_loss);
  // 3 evaluations x 3 eval-iters x 2 microbatches, walking on through the validation stream.
  ASSERT_EQ(validation_data.requests.size(), 18u);
  EXPECT_EQ(validation_data.requests.back().first, 34);
  // Forward only: backward ran for training microbatches alone.
  EXPECT_EQ(model.backward_scales.size(), 24u);
}

TEST(TrainTrainer, StopsAfterExitDuration) {
  TableRegression model(RecordingSource::kVocab);
  RecordingSource train_data(data::Split::Train), validation_data(data::Split::Validation);
  TrainingSetup setup = small_setup(2, 4, 100);
  setup.train.exit_duration_in_mins = 1e-12;
  const RunResult r = run(model, setup, train_data, validation_data);
  EXPECT_EQ(r.summary.iterations, 1);
  EXPECT_TRUE(r.summary.stopped_by_time_limit);
}

TEST(TrainTrainer, RejectsAGlobalBatchThatMicrobatchesDoNotDivide) {
  TableRegression model(RecordingSource::kVocab);
  RecordingSource train_data(data::Split::Train), validation_data(data::Split::Validation);
  EXPECT_THROW(run(model, small_setup(3, 8, 1), train_data, validation_data), Error);
}

}  // namespace
}  // namespace moebench::train
