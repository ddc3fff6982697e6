// The CPU reference model against Hugging Face transformers 5.17: logits,
// loss and every weight gradient of the tiny hub fixtures (tests/fixtures/hf),
// loaded through ckpt/hf_import.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "moebench/ckpt/hf_import.h"
#include "moebench/ckpt/safetensors.h"
#include "moebench/model/gpt_model.h"

namespace moebench {
namespace {

std::filesystem::path fixture_dir(const std::string& name) {
  return std::filesystem::path(MOEBENCH_SOURCE_DIR) / "tests/fixtures/hf" / name;
}

Tensor to_tensor(const SafetensorsTensor& tensor) {
  if (tensor.dtype == "I64") return Tensor::from_vector(to_int64_vector(tensor), tensor.shape);
  return Tensor::from_vector(to_float_vector(tensor), tensor.shape);
}

// |a - b| / |b| over all elements.
double relative_error(const float* actual, const std::vector<float>& expected) {
  double difference = 0, norm = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    difference += std::pow(double(actual[i]) - expected[i], 2);
    norm += std::pow(double(expected[i]), 2);
  }
  return std::sqrt(difference / std::max(norm, 1e-300));
}

class HfFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(HfFixture, LogitsLossAndGradientsMatchTransformers) {
  const std::filesystem::path dir = fixture_dir(GetParam());
  ckpt::HfModelSpec spec = ckpt::read_hf_config(dir / "config.json");
  spec.config.moe.aux_loss_coeff = 0;  // the reference loss has no auxiliary term
  spec.config.moe.z_loss_coeff = 0;
  model::GPTModel model(spec.config, 1234, spec.conventions);
  ckpt::load_hf_weights(model, SafetensorsCheckpoint(dir / "model.safetensors"));
  const SafetensorsFile reference(dir / "reference.safetensors");

  model.zero_grad();
  const model::ForwardOutput output =
      model.forward(to_tensor(reference.tensor("input_ids")), to_tensor(reference.tensor("labels")),
                    Tensor(), /*keep_logits=*/true);
  const double logits_error = relative_error(output.logits.data<float>(),
                                             to_float_vector(reference.tensor("logits")));
  const double loss = to_float_vector(reference.tensor("loss"))[0];
  EXPECT_LT(logits_error, 1e-4);
  EXPECT_NEAR(output.lm_loss, loss, 1e-4 * std::abs(loss));
  EXPECT_EQ(output.aux_loss, 0.0);

  model.backward(1.0);
  const auto gradients = ckpt::export_hf_tensors(model, /*gradients=*/true);
  size_t checked = 0;
  double worst = 0;
  std::string worst_name;
  for (const SafetensorsTensor& tensor : reference.tensors()) {
    if (tensor.name.rfind("grad.", 0) != 0) continue;
    const std::string hub_name = tensor.name.substr(5);
    auto it = gradients.find(hub_name);
    ASSERT_NE(it, gradients.end()) << "no gradient for " << hub_name;
    ASSERT_EQ(it->second.shape(), tensor.shape) << hub_name;
    const double error = relative_error(it->second.data<float>(), to_float_vector(tensor));
    EXPECT_LT(error, 1e-3) << hub_name;
    if (error > worst) {
      worst = error;
      worst_name = hub_name;
    }
    ++checked;
  }
  EXPECT_EQ(checked, gradients.size());
  std::printf("[%s] logits rel err %.2e, loss %.6f vs %.6f, %zu grads, worst %.2e (%s)\n",
              GetParam().c_str(), logits_error, output.lm_loss, loss, checked, worst,
              worst_name.c_str());
}

INSTANTIATE_TEST_SUITE_P(Models, HfFixture,
                         ::testing::Values("tiny-mixtral", "tiny-qwen3-moe", "tiny-qwen2-moe",
                                           "tiny-deepseek-v2-lite", "tiny-deepseek-v2"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

TEST(HfConfig, ReadsTheNewerRopeParametersSpelling) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("moebench_hf_config_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({
    "model_type": "deepseek_v2", "num_hidden_layers": 2, "hidden_size": 32,
    "intermediate_size": 64, "num_attention_heads": 2, "vocab_size": 100,
    "n_routed_experts": 4, "moe_intermediate_size": 8, "n_shared_experts": 1,
    "num_experts_per_tok": 2, "first_k_dense_replace": 1, "q_lora_rank": null,
    "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8,
    "rope_parameters": {"rope_type": "yarn", "rope_theta": 5000.0, "factor": 4.0,
                        "original_max_position_embeddings": 32, "mscale": 1.0,
                        "mscale_all_dim": 0.5}})";
  const ckpt::HfModelSpec spec = ckpt::read_hf_config(dir / "config.json");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(spec.config.rope.base, 5000.0);
  EXPECT_TRUE(spec.config.rope.yarn);
  EXPECT_EQ(spec.config.rope.scaling_factor, 4.0);
  EXPECT_EQ(spec.config.rope.original_max_positions, 32);
  EXPECT_EQ(spec.config.rope.mscale_all_dim, 0.5);
  EXPECT_EQ(spec.config.moe.is_moe_layer, (std::vector<bool>{false, true}));
  EXPECT_EQ(spec.config.moe.shared_expert_size, 8);
  EXPECT_TRUE(spec.config.moe.pre_softmax);
  EXPECT_EQ(spec.config.mla.q_lora_rank, 0);
}

}  // namespace
}  // namespace moebench
