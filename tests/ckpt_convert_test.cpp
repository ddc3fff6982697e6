// Conversion between Hugging Face checkpoints and the native format: every
// fixture converts and `moebench logits` on the result reproduces the
// reference logits and loss; a TP/PP/EP layout holds the same tensors as the
// one-rank layout; native -> HF -> native is bit-exact; FP8 block-scaled
// weights dequantise within fp8 rounding; DeepSeek-V3's correction bias
// reaches the router and comes back; a checkpoint trained by `moebench run`
// exports to a hub directory that computes the same logits bit for bit; an
// interrupted conversion resumes; a cut-off shard or a config that does not
// fit the weights is a clear error that leaves nothing behind, both ways.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "moebench/ckpt/checkpoint_directory.h"
#include "moebench/ckpt/hf_import.h"
#include "moebench/ckpt/hf_to_native.h"
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/ckpt/native_to_hf.h"
#include "moebench/ckpt/safetensors.h"
#include "moebench/ckpt/safetensors_tensor.h"
#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(MOEBENCH_SOURCE_DIR) / "tests/fixtures/hf";

fs::path fresh_directory(const std::string& name) {
  const fs::path path = fs::temp_directory_path() / ("moebench_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(path);
  return path;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

double max_relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    norm = std::max(norm, std::abs(double(b[i])));
  }
  return diff / norm;
}

class FixtureConversion : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureConversion, LogitsOfTheConvertedCheckpointMatchTheReference) {
  const fs::path fixture = kFixtures / GetParam();
  const fs::path out = fresh_directory("convert_" + GetParam());
  const fs::path logits = out / "logits.safetensors";
  const std::string binary = MOEBENCH_BINARY;
  ASSERT_EQ(std::system((binary + " convert hf-to-native --load " + fixture.string() + " --save " + out.string() +
                         " > /dev/null").c_str()), 0);
  ASSERT_EQ(std::system((binary + " logits --load " + out.string() + " --input " +
                         (fixture / "reference.safetensors").string() + " --output " + logits.string() + " > /dev/null")
                            .c_str()),
            0);
  const SafetensorsFile ours(logits), reference(fixture / "reference.safetensors");
  EXPECT_LT(max_relative_error(to_float_vector(ours.tensor("logits")), to_float_vector(reference.tensor("logits"))), 1e-4);
  const double loss = to_float_vector(reference.tensor("loss"))[0];
  EXPECT_NEAR(to_float_vector(ours.tensor("loss"))[0], loss, 1e-4 * std::abs(loss));
  fs::remove_all(out);
}

// TP=2 PP=2 EP=2 (8 rank files) holds exactly the tensors of the one-rank layout.
TEST_P(FixtureConversion, ShardedLayoutHoldsTheSameTensors) {
  const fs::path fixture = kFixtures / GetParam();
  const fs::path single = fresh_directory("convert_single_" + GetParam());
  const fs::path sharded = fresh_directory("convert_sharded_" + GetParam());
  convert_hf_to_native({fixture, single, {}, {}});
  const ConversionProgress progress = convert_hf_to_native({fixture, sharded, {.tp = 2, .pp = 1, .ep = 2}, {}});
  EXPECT_EQ(progress.pieces_done, progress.pieces_total);
  const NativeCheckpoint a(single), b(sharded);
  EXPECT_EQ(b.metadata().rank_files.size(), 4u);
  ASSERT_EQ(a.metadata().tensors.size(), b.metadata().tensors.size());
  for (const auto& [name, tensor] : a.metadata().tensors)
    EXPECT_TRUE(bitwise_equal(a.read_whole(name), b.read_whole(name))) << name;
  EXPECT_GT(b.metadata().tensors.at("decoder.layers.0.self_attention.linear_proj.weight").shards.size(), 1u);
  fs::remove_all(single);
  fs::remove_all(sharded);
}

TEST_P(FixtureConversion, NativeToHfToNativeIsBitExact) {
  const fs::path fixture = kFixtures / GetParam();
  const fs::path first = fresh_directory("roundtrip_first_" + GetParam());
  const fs::path hub = fresh_directory("roundtrip_hub_" + GetParam());
  const fs::path second = fresh_directory("roundtrip_second_" + GetParam());
  convert_hf_to_native({fixture, first, {.tp = 2, .pp = 1, .ep = 1}, {}});
  // Shards of 64 KiB: several files and the index, as transformers writes large models.
  convert_native_to_hf({first, hub, 64 << 10});
  EXPECT_TRUE(fs::exists(hub / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(hub / "model.safetensors"));
  convert_hf_to_native({hub, second, {}, {}});
  const NativeCheckpoint a(first), b(second);
  ASSERT_EQ(a.metadata().tensors.size(), b.metadata().tensors.size());
  for (const auto& [name, tensor] : a.metadata().tensors)
    EXPECT_TRUE(bitwise_equal(a.read_whole(name), b.read_whole(name))) << name;
  // The hub tensors themselves come back unchanged.
  const SafetensorsCheckpoint original(fixture), exported(hub);
  ASSERT_EQ(original.tensors().size(), exported.tensors().size());
  for (const auto& [name, tensor] : original.tensors())
    EXPECT_TRUE(bitwise_equal(tensor_view(tensor).contiguous(), tensor_view(exported.tensor(name)).contiguous())) << name;
  for (const fs::path& p : {first, hub, second}) fs::remove_all(p);
}

INSTANTIATE_TEST_SUITE_P(HubFixtures, FixtureConversion,
                         ::testing::Values("tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-deepseek-v2",
                                           "tiny-deepseek-v2-lite"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

// A DeepSeek-V3-style hub directory made from tiny-deepseek-v2: V3's routing
// in config.json (noaux_tc, sigmoid), an e_score_correction_bias per MoE
// layer and, when `fp8`, every 2-D layer weight but the router stored as
// F8_E4M3 with float32 inverse scales per 128x128 block.
void write_deepseek_v3_fixture(const fs::path& dir, bool fp8) {
  fs::create_directories(dir);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(kFixtures / "tiny-deepseek-v2/config.json"));
  config["model_type"] = "deepseek_v3";
  config["topk_method"] = "noaux_tc";
  config["scoring_func"] = "sigmoid";
  config["norm_topk_prob"] = true;
  config["routed_scaling_factor"] = 2.5;
  config["rope_parameters"] = config["rope_scaling"];
  config["rope_parameters"]["rope_type"] = "yarn";
  config["rope_parameters"]["rope_theta"] = config["rope_theta"];
  config.erase("rope_scaling");
  config.erase("rope_theta");
  std::ofstream(dir / "config.json") << config.dump(2);

  const SafetensorsCheckpoint source(kFixtures / "tiny-deepseek-v2");
  std::vector<Tensor> keep;  // the bytes the entries point at
  std::vector<SafetensorsTensor> entries;
  auto add = [&](const std::string& name, const Tensor& tensor) {
    keep.push_back(tensor);
    entries.push_back(safetensors_entry(name, keep.back()));
  };
  for (const auto& [name, entry] : source.tensors()) {
    const Tensor weight = tensor_view(entry).contiguous().clone();
    const bool quantised = fp8 && entry.shape.size() == 2 && name.rfind("model.layers.", 0) == 0 &&
                           name.find("mlp.gate.") == std::string::npos;
    if (!quantised) {
      add(name, weight);
      continue;
    }
    // A 128x128 block scale so that the block's largest value maps to 448; the
    // blocks of these small weights are partial.
    const int64_t rows = entry.shape[0], columns = entry.shape[1];
    const int64_t block_rows = (rows + 127) / 128, block_columns = (columns + 127) / 128;
    Tensor scale = Tensor::zeros({block_rows, block_columns}, DType::F32);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < columns; ++c) {
        float& s = scale.data<float>()[r / 128 * block_columns + c / 128];
        s = std::max(s, std::abs(weight.data<float>()[r * columns + c]) / 448.0f);
      }
    Tensor quantised_weight = Tensor::empty(entry.shape, DType::FP8E4M3);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < columns; ++c)
        quantised_weight.data<float8_e4m3>()[r * columns + c] =
            float8_e4m3(weight.data<float>()[r * columns + c] / scale.data<float>()[r / 128 * block_columns + c / 128]);
    add(name, quantised_weight);
    add(name + "_scale_inv", scale);
  }
  for (int layer = 1; layer < config["num_hidden_layers"].get<int>(); ++layer)
    add("model.layers." + std::to_string(layer) + ".mlp.gate.e_score_correction_bias",
        Tensor::from_vector<float>(std::vector<float>(8, 0.01f * float(layer))));
  write_safetensors(dir / "model.safetensors", entries);
}

TEST(Fp8Conversion, DequantisesBlockScaledWeightsWithinFp8Rounding) {
  const fs::path exact_hub = fresh_directory("v3_exact_hub"), fp8_hub = fresh_directory("v3_fp8_hub");
  const fs::path exact = fresh_directory("v3_exact"), quantised = fresh_directory("v3_fp8");
  write_deepseek_v3_fixture(exact_hub, false);
  write_deepseek_v3_fixture(fp8_hub, true);
  convert_hf_to_native({exact_hub, exact, {}, {}});
  convert_hf_to_native({fp8_hub, quantised, {}, {}});
  const NativeCheckpoint a(exact), b(quantised);
  EXPECT_EQ(b.metadata().tensors.at("decoder.layers.1.mlp.experts.linear_fc1.weight0").dtype, "BF16");
  EXPECT_EQ(b.metadata().tensors.at("embedding.word_embeddings.weight").dtype, "F32");
  EXPECT_TRUE(b.contains("decoder.layers.2.mlp.router.expert_bias"));
  for (const auto& [name, tensor] : a.metadata().tensors) {
    const Tensor want = a.read_whole(name).to(DType::F32), got = b.read_whole(name).to(DType::F32);
    double worst = 0;
    for (int64_t i = 0; i < want.numel(); ++i)
      worst = std::max(worst, std::abs(double(got.data<float>()[i]) - want.data<float>()[i]) /
                                  std::max(std::abs(double(want.data<float>()[i])), 1e-3));
    // e4m3 keeps 3 mantissa bits (relative step 2^-3, rounding half of it), bf16 adds 2^-9.
    EXPECT_LT(worst, 0.0625 + 0.004) << name;
  }
  for (const fs::path& p : {exact_hub, fp8_hub, exact, quantised}) fs::remove_all(p);
}

TEST(ExpertBiasConversion, DeepSeekV3CorrectionBiasReachesTheRouterAndComesBack) {
  const fs::path hub = fresh_directory("v3_bias_hub"), native = fresh_directory("v3_bias_native"),
                 exported = fresh_directory("v3_bias_exported");
  write_deepseek_v3_fixture(hub, false);
  const std::string bias = "model.layers.2.mlp.gate.e_score_correction_bias";
  const Tensor want = tensor_view(SafetensorsCheckpoint(hub).tensor(bias)).clone();

  const HfModelSpec spec = read_hf_config(hub / "config.json");
  model::GPTModel model(spec.config, 0, spec.conventions);
  load_hf_weights(model, SafetensorsCheckpoint(hub));
  const std::vector<model::Buffer> buffers = model.buffers();
  const auto loaded = std::ranges::find(buffers, "decoder.layers.2.mlp.router.expert_bias", &model::Buffer::name);
  ASSERT_NE(loaded, buffers.end());
  EXPECT_TRUE(bitwise_equal(loaded->value, want));

  convert_hf_to_native({hub, native, {.tp = 1, .pp = 1, .ep = 2}, {}});
  EXPECT_TRUE(bitwise_equal(NativeCheckpoint(native).read_whole("decoder.layers.2.mlp.router.expert_bias"), want));
  convert_native_to_hf({native, exported});
  EXPECT_TRUE(bitwise_equal(tensor_view(SafetensorsCheckpoint(exported).tensor(bias)).contiguous(), want));
  for (const fs::path& p : {hub, native, exported}) fs::remove_all(p);
}

// `moebench run` trains a zoo model for 2 iterations and saves it; its
// Hugging Face export, read back by `moebench logits`, gives the trained
// model's logits and loss bit for bit.
class TrainedCheckpointExport : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

int run_moebench(const std::string& arguments) {
  return std::system(("CLUSTER=local " + std::string(MOEBENCH_BINARY) + " " + arguments + " > /dev/null 2>&1").c_str());
}

// Trains `model` for 2 iterations with --save into <directory>/checkpoints.
void train_and_save(const std::string& model, const fs::path& directory) {
  ASSERT_EQ(run_moebench("run --model " + model + " --train-iters 2 --lr-warmup-iters 1 --eval-iters 0 --output-dir " +
                         directory.string() + " --save " + (directory / "checkpoints").string()),
            0);
}

TEST_P(TrainedCheckpointExport, HubExportComputesTheTrainedModelBitForBit) {
  const auto& [model, architecture] = GetParam();
  const fs::path run = fresh_directory("trained_" + model), hub = run / "hub";
  train_and_save(model, run);
  convert_native_to_hf({run / "checkpoints", hub});
  const nlohmann::json config = nlohmann::json::parse(std::ifstream(hub / "config.json"));
  EXPECT_EQ(config["architectures"][0], architecture);

  const std::string input = (kFixtures / "tiny-mixtral/reference.safetensors").string();
  for (const fs::path& source : {run / "checkpoints", hub})
    ASSERT_EQ(run_moebench("logits --load " + source.string() + " --input " + input + " --output " +
                           (source.string() + ".logits.safetensors")),
              0);
  const SafetensorsFile trained(run / "checkpoints.logits.safetensors"), exported(run / "hub.logits.safetensors");
  for (const char* name : {"logits", "loss"})
    EXPECT_TRUE(bitwise_equal(tensor_view(trained.tensor(name)).contiguous(), tensor_view(exported.tensor(name)).contiguous()))
        << name;
  fs::remove_all(run);
}

INSTANTIATE_TEST_SUITE_P(ZooModels, TrainedCheckpointExport,
                         ::testing::Values(std::pair{"tiny-mixtral", "MixtralForCausalLM"},
                                           std::pair{"tiny-qwen2-moe", "Qwen2MoeForCausalLM"},
                                           std::pair{"tiny-qwen3-moe", "Qwen3MoeForCausalLM"},
                                           std::pair{"tiny-deepseek-v2", "DeepseekV2ForCausalLM"},
                                           std::pair{"tiny-deepseek-v2-lite", "DeepseekV2ForCausalLM"}),
                         [](const auto& info) {
                           std::string name = info.param.first;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

// The hub's DeepSeek-V3 ranks expert groups by their top two scores;
// tiny-deepseek-v3 (top-3 of 2 groups) by Megatron's rule, its top one.
TEST(TrainedCheckpointExportFailures, ARoutingNoHubModelComputesIsAClearError) {
  const fs::path run = fresh_directory("trained_v3"), hub = run / "hub";
  train_and_save("tiny-deepseek-v3", run);
  const std::string message = error_of([&] { convert_native_to_hf({run / "checkpoints", hub}); });
  EXPECT_NE(message.find("cannot write a Hugging Face deepseek_v3 config"), std::string::npos) << message;
  EXPECT_NE(message.find("--moe-router-group-topk = 3 / 2"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(hub));
  fs::remove_all(run);
}

TEST(ConversionFailures, NativeToHfOfACutOffOrMismatchedCheckpointLeavesNothing) {
  const fs::path native = fresh_directory("broken_native"), hub = fresh_directory("broken_native_hub");
  convert_hf_to_native({kFixtures / "tiny-mixtral", native, {.tp = 1, .pp = 2, .ep = 1}, {}});
  const fs::path rank_file = native / "release" / rank_file_name(1);
  const fs::path staging = hub.parent_path() / ("." + hub.filename().string() + ".staging");
  const auto intact = fs::file_size(rank_file);
  fs::resize_file(rank_file, intact / 2);
  std::string message = error_of([&] { convert_native_to_hf({native, hub}); });
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(hub));
  EXPECT_FALSE(fs::exists(staging));
  fs::remove_all(native);

  // A checkpoint whose recorded model has more experts than it stores.
  convert_hf_to_native({kFixtures / "tiny-mixtral", native, {}, {}});
  const fs::path metadata = native / "release" / kMetadataFileName;
  nlohmann::json recorded = nlohmann::json::parse(std::ifstream(metadata));
  auto& args = recorded["model_args"];
  const auto experts = std::ranges::find(args, "--num-experts");
  ASSERT_NE(experts, args.end());
  *(experts + 1) = "8";
  std::ofstream(metadata) << recorded.dump();
  message = error_of([&] { convert_native_to_hf({native, hub}); });
  EXPECT_NE(message.find("lacks 'decoder.layers.0.mlp.experts.linear_fc1.weight4'"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(hub));
  EXPECT_FALSE(fs::exists(staging));
  fs::remove_all(native);
}

TEST(ConversionFailures, CutOffShardOrWrongConfigLeavesNothing) {
  const fs::path hub = fresh_directory("broken_hub"), out = fresh_directory("broken_out");
  fs::create_directories(hub);
  fs::copy(kFixtures / "tiny-mixtral/config.json", hub / "config.json");
  fs::copy(kFixtures / "tiny-mixtral/model.safetensors", hub / "model.safetensors");
  fs::resize_file(hub / "model.safetensors", fs::file_size(hub / "model.safetensors") / 2);
  EXPECT_NE(error_of([&] { convert_hf_to_native({hub, out, {}, {}}); }).find("truncated"), std::string::npos);
  EXPECT_FALSE(fs::exists(out / "release"));
  EXPECT_FALSE(fs::exists(out / kTrackerFileName));

  fs::copy(kFixtures / "tiny-mixtral/model.safetensors", hub / "model.safetensors", fs::copy_options::overwrite_existing);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(kFixtures / "tiny-mixtral/config.json"));
  config["num_hidden_layers"] = 3;
  std::ofstream(hub / "config.json") << config.dump();
  const std::string message = error_of([&] { convert_hf_to_native({hub, out, {}, {}}); });
  EXPECT_NE(message.find("which its config.json implies"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(out / "release"));
  EXPECT_NE(error_of([&] { convert_hf_to_native({kFixtures / "tiny-mixtral", out, {.tp = 3}, {}}); }).find("TP=3"),
            std::string::npos);
  fs::remove_all(hub);
  fs::remove_all(out);
}

TEST(ConversionResume, InterruptedConversionKeepsFinishedRankFiles) {
  const fs::path out = fresh_directory("resume_convert"), reference = fresh_directory("resume_reference");
  const ParallelMapping mapping{.tp = 2, .pp = 2, .ep = 1};
  HfToNativeOptions options{kFixtures / "tiny-qwen3-moe", out, mapping, {}};
  // Stop in the middle of the third rank file.
  int64_t stop_at = 0;
  options.on_progress = [&stop_at](const ConversionProgress& p) {
    if (stop_at == 0) stop_at = p.pieces_total * 5 / 8;
    if (p.pieces_done == stop_at) throw Error("interrupted");
  };
  EXPECT_EQ(error_of([&] { convert_hf_to_native(options); }), "interrupted");
  EXPECT_FALSE(fs::exists(out / "release"));
  options.on_progress = {};
  const ConversionProgress resumed = convert_hf_to_native(options);
  EXPECT_GE(resumed.ranks_skipped, 1);
  convert_hf_to_native({kFixtures / "tiny-qwen3-moe", reference, {}, {}});
  const NativeCheckpoint a(reference), b(out);
  for (const auto& [name, tensor] : a.metadata().tensors)
    EXPECT_TRUE(bitwise_equal(a.read_whole(name), b.read_whole(name))) << name;
  fs::remove_all(out);
  fs::remove_all(reference);
}

}  // namespace
}  // namespace moebench::ckpt
