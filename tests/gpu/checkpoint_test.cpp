// Checkpoints of a model trained on the GPU: after two Adam steps, a save
// and a load into a fresh GPU model and optimizer restore the fp32 main
// weights, their bf16 compute copies and Adam's moments (fp32, or bf16 with
// the precision-aware optimizer) bit for bit, and a third step then gives
// the same weights on both; the checkpoint holds float32 weights, as a CPU
// run's does.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/config/model_config.h"
#include "moebench/config/resolve.h"
#include "moebench/core/cuda_allocator.h"
#include "moebench/core/device_transfer.h"
#include "moebench/dist/parallel_state.h"
#include "moebench/dist/single_rank_communicator.h"
#include "moebench/model/gpt_model.h"
#include "moebench/train/adam_optimizer.h"
#include "moebench/train/trainable_model.h"
#include "moebench/train/training_checkpoint.h"

namespace moebench::train {
namespace {

namespace fs = std::filesystem;

config::ModelConfig tiny_mixtral() {
  const config::ResolvedConfig resolved = config::resolve(
      {fs::path(MOEBENCH_SOURCE_DIR) / "configs", {{"MODEL", "tiny-mixtral"}, {"CLUSTER", "local"}}, {}});
  return config::model_config_from_flags(resolved.flags, 1);
}

// Seeded gradients on the device, the same for every model built alike.
void set_gradients(model::GPTModel& model, uint32_t seed) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (model::Parameter* p : model.parameters()) {
    Tensor host = Tensor::empty(p->grad.shape(), DType::F32);
    for (int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = normal(generator);
    copy_into(p->grad, host);
  }
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor x = to_host(a), y = to_host(b);
  return x.dtype() == y.dtype() && x.shape() == y.shape() && std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

class GpuCheckpoint : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) GTEST_SKIP() << "no CUDA device";
    enable_cuda_tensors();
  }
};

TEST_P(GpuCheckpoint, SaveAndLoadRestoreMainWeightsCopiesAndMoments) {
  const config::ModelConfig config = tiny_mixtral();
  AdamOptions options;
  options.weight_decay = 0.1;
  options.precision.exp_avg = options.precision.exp_avg_sq = GetParam();
  dist::SingleRankCommunicator world;
  const dist::ParallelState state(world, {.world_size = 1});
  const fs::path root = fs::temp_directory_path() / ("moebench_gpu_checkpoint_" + std::to_string(::getpid()));
  fs::remove_all(root);

  model::GPTModel trained(config, 7, model::ModelConventions{}, model::ModelPlacement::cuda());
  AdamOptimizer trained_optimizer(trained.parameters(), options);
  for (uint32_t step = 1; step <= 2; ++step) {
    set_gradients(trained, step);
    ASSERT_TRUE(trained_optimizer.step(1e-3).applied);
  }
  TrainableModelRef<model::GPTModel> trained_ref(trained);
  save_training_checkpoint(root, trained_ref, trained_optimizer, state,
                           {.progress = {.iteration = 2}, .seed = 7, .model_args = {}});
  model::Parameter& first = *trained.parameters().front();
  const Tensor saved_main = to_host(first.main);

  // Another seed: every value must come from the checkpoint.
  model::GPTModel resumed(config, 8, model::ModelConventions{}, model::ModelPlacement::cuda());
  AdamOptimizer resumed_optimizer(resumed.parameters(), options);
  TrainableModelRef<model::GPTModel> resumed_ref(resumed);
  TrainConfig train_config;
  train_config.seed = 7;
  load_training_checkpoint(root, resumed_ref, resumed_optimizer, train_config);
  EXPECT_EQ(resumed_optimizer.steps_taken(), 2);

  for (model::Parameter* p : trained.parameters()) {
    const model::Parameter& q = resumed.parameter(p->name);
    EXPECT_TRUE(same_bits(p->main, q.main)) << p->name;
    EXPECT_TRUE(same_bits(p->value, q.value)) << p->name;
  }
  const std::vector<ckpt::ShardedTensor> saved_state = trained_optimizer.state_pieces();
  const std::vector<ckpt::ShardedTensor> loaded_state = resumed_optimizer.state_pieces();
  ASSERT_EQ(saved_state.size(), loaded_state.size());
  for (size_t i = 0; i < saved_state.size(); ++i) {
    EXPECT_EQ(saved_state[i].local.dtype(), GetParam()) << saved_state[i].name;
    EXPECT_TRUE(same_bits(saved_state[i].local, loaded_state[i].local)) << saved_state[i].name;
  }

  set_gradients(trained, 3);
  set_gradients(resumed, 3);
  ASSERT_TRUE(trained_optimizer.step(1e-3).applied);
  ASSERT_TRUE(resumed_optimizer.step(1e-3).applied);
  for (model::Parameter* p : trained.parameters())
    EXPECT_TRUE(same_bits(p->main, resumed.parameter(p->name).main)) << p->name << " after the third step";

  // The checkpoint holds the fp32 main weights, as a CPU run saves float32 weights.
  const ckpt::NativeCheckpoint checkpoint(root);
  Tensor read_back = Tensor::empty(first.main.shape(), DType::F32);
  checkpoint.read(ckpt::whole_tensor(first.name, read_back));
  EXPECT_TRUE(same_bits(read_back, saved_main)) << first.name;
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Moments, GpuCheckpoint, ::testing::Values(DType::F32, DType::BF16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return info.param == DType::F32 ? std::string("fp32") : std::string("bf16");
                         });

}  // namespace
}  // namespace moebench::train
