// config::resolve: the layers of a benchmark setup, lowest first: common.yaml,
// the runtime row, the cluster file, the environment (guide names), extra
// flags. Each test writes its own configs/ tree into a fresh temporary
// directory; the last one resolves every model of the repository's configs/.
#include "moebench/config/resolve.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/config/validation.h"
#include "moebench/core/error.h"

#ifndef MOEBENCH_SOURCE_DIR
#error "compile with -DMOEBENCH_SOURCE_DIR=\"<repository root>\""
#endif

namespace moebench::config {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Strings = std::vector<std::string>;
using Map = std::map<std::string, std::string>;

// A model file that exercises every kind of value: placeholders for the
// runtime knobs, bool flags literal and from a placeholder, optional flags
// that vanish when their variable is empty, a list flag, and ENV_VARS.
constexpr const char* kModelM = R"(# test model
ENV_VARS:
  CUDA_DEVICE_MAX_CONNECTIONS: 1
  RUN_COMMENT: ${COMMENT}
MODEL_ARGS:
  --tensor-model-parallel-size: ${TP}
  --pipeline-model-parallel-size: ${PP}
  --num-virtual-stages-per-pipeline-rank: ${VPP}
  --decoder-first-pipeline-num-layers: ${PP_FIRST}
  --decoder-last-pipeline-num-layers: ${PP_LAST}
  --expert-model-parallel-size: ${EP}
  --sequence-parallel: true
  --overlap-grad-reduce: false
  --micro-batch-size: ${MBS}
  --global-batch-size: ${GBS}
  --num-layers: ${NUM_LAYERS}
  --hidden-size: 64
  --seq-length: ${SEQ_LEN}
  --moe-token-dispatcher-type: ${MOE_TOKEN_DISPATCHER}
  --moe-grouped-gemm: ${MOE_GROUPED_GEMM}
  --data-path: ${DATA_PATH}
  --tokenizer-model: ${TOKENIZER_MODEL}
  --wandb-project: ${WANDB_PROJECT}
  --wandb-exp-name: M-TP${TP}-${COMMENT}
  --output-dir: ${OUTPUT_PATH}
  --load: ${LOAD_PATH}
)";

constexpr const char* kModelN = R"(MODEL_ARGS:
  --num-layers: ${NUM_LAYERS}
)";

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

void write_map(std::ofstream& out, const Map& map, const std::string& indent) {
  for (const auto& [key, value] : map) out << indent << quoted(key) << ": " << quoted(value) << "\n";
}

class ResolveTest : public ::testing::Test {
 protected:
  // Layers, edited by each test before resolve().
  Map common = {{"PR", "bf16"}, {"PROFILE", "0"}, {"DRY_RUN", "0"}, {"COMMENT", "common"},
                {"GPUS_PER_NODE", "8"}, {"CLUSTER", "x"}, {"MBS", "5"}};
  Map row_m = {{"TP", "1"},         {"PP", "2"},          {"EP", "4"},        {"CP", "1"},
               {"VPP", "1"},        {"MBS", "1"},         {"GBS", "8"},       {"NUM_LAYERS", "8"},
               {"MOE_TOKEN_DISPATCHER", "alltoall"},      {"MOE_GROUPED_GEMM", "true"},
               {"NNODES", "1"},     {"RUN_TIME", "00:10:00"}, {"PRETRAIN", "0"}, {"SEQ_LEN", "128"},
               {"DATASET", "Ds"},   {"PP_FIRST", ""},     {"PP_LAST", ""}};
  Map row_n = {{"TP", "1"}, {"PP", "1"}, {"VPP", "1"}, {"NUM_LAYERS", "2"}, {"PRETRAIN", "1"}};
  Map cluster = {{"ACCOUNT", "acct"}, {"PARTITION", "batch"}, {"OUTPUT_PATH", "${ROOT}/out"}};
  std::map<std::string, Map> cluster_maps = {
      {"DATA_PATH", {{"Ds:M", "/data/ds_m"}, {"Ds:N", "/data/ds_n"}, {"Other:M", "/data/other_m"}}},
      {"TOKENIZER_MODEL", {{"M", "/tok/m"}, {"N", "/tok/n"}}},
      {"LOAD_PATH", {{"M", "/ckpt/m"}, {"N", "/ckpt/n"}}}};
  Variables environment = {{"MODEL", "M"}, {"ROOT", "/r"}};
  Strings extra_args;

  fs::path dir;

  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir = fs::temp_directory_path() / ("moebench_resolve_test_" + std::to_string(::getpid()) + "_" +
                                       std::to_string(counter++) + "_" + info->name());
    fs::remove_all(dir);
    fs::create_directories(dir / "models");
    fs::create_directories(dir / "clusters");
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }

  void write_files() {
    {
      std::ofstream out(dir / "common.yaml");
      write_map(out, common, "");
    }
    {
      std::ofstream out(dir / "runtime.yaml");
      out << "M:\n";
      write_map(out, row_m, "  ");
      out << "N:\n";
      write_map(out, row_n, "  ");
    }
    {
      std::ofstream out(dir / "clusters" / "x.yaml");
      write_map(out, cluster, "");
      for (const auto& [name, map] : cluster_maps) {
        out << name << ":" << (map.empty() ? " {}" : "") << "\n";
        write_map(out, map, "  ");
      }
    }
    std::ofstream(dir / "models" / "M.yaml") << kModelM;
    std::ofstream(dir / "models" / "N.yaml") << kModelN;
  }

  ResolvedConfig resolve_now() {
    write_files();
    return resolve({dir, environment, extra_args});
  }

  std::string resolve_error() {
    try {
      resolve_now();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

Strings names_of(const FlagMap& flags) {
  Strings names;
  for (const auto& entry : flags.entries()) names.push_back(entry.name);
  return names;
}

TEST_F(ResolveTest, FlagsInFileOrderThenDerivedFlags) {
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.model, "M");
  // Dropped: VPP=1, empty PP_FIRST/PP_LAST, false bool, unset WANDB_PROJECT.
  EXPECT_THAT(names_of(r.flags),
              ElementsAre("--tensor-model-parallel-size", "--pipeline-model-parallel-size",
                          "--expert-model-parallel-size", "--sequence-parallel", "--micro-batch-size",
                          "--global-batch-size", "--num-layers", "--hidden-size", "--seq-length",
                          "--moe-token-dispatcher-type", "--moe-grouped-gemm", "--data-path", "--tokenizer-model",
                          "--wandb-exp-name", "--output-dir", "--load", "--bf16"));
  EXPECT_EQ(r.flags.get_int("--pipeline-model-parallel-size", 0), 2);
  EXPECT_EQ(r.flags.get_int("--seq-length", 0), 128);
  EXPECT_EQ(r.flags.get_string("--moe-token-dispatcher-type", ""), "alltoall");
  EXPECT_EQ(r.env_vars, (OrderedPairs{{"CUDA_DEVICE_MAX_CONNECTIONS", "1"}, {"RUN_COMMENT", "common"}}));
}

TEST_F(ResolveTest, CommonIsTheLowestLayer) {
  common["RUN_TIME"] = "01:00:00";  // only here, with the row's value removed
  row_m.erase("RUN_TIME");
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.variables.at("RUN_TIME"), "01:00:00");
  EXPECT_EQ(r.variables.at("COMMENT"), "common");
  // The runtime row beats common.yaml (common says MBS 5, the row 1).
  EXPECT_EQ(r.flags.get_int("--micro-batch-size", 0), 1);
  EXPECT_EQ(r.variables.at("MBS"), "1");
}

TEST_F(ResolveTest, RuntimeRowBeatsCommon) {
  row_m["COMMENT"] = "row";
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.flags.get_string("--wandb-exp-name", ""), "M-TP1-row");
}

TEST_F(ResolveTest, ClusterBeatsRuntimeRow) {
  row_m["COMMENT"] = "row";
  cluster["COMMENT"] = "cluster";
  cluster["GBS"] = "16";
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.flags.get_string("--wandb-exp-name", ""), "M-TP1-cluster");
  EXPECT_EQ(r.flags.get_int("--global-batch-size", 0), 16);
}

TEST_F(ResolveTest, EnvironmentBeatsCluster) {
  cluster["COMMENT"] = "cluster";
  cluster["GBS"] = "16";
  environment["COMMENT"] = "env";
  environment["GBS"] = "32";
  environment["TP"] = "2";
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.flags.get_string("--wandb-exp-name", ""), "M-TP2-env");
  EXPECT_EQ(r.flags.get_int("--global-batch-size", 0), 32);
  EXPECT_EQ(r.flags.get_int("--tensor-model-parallel-size", 0), 2);
  EXPECT_EQ(r.variables.at("TP"), "2");
  EXPECT_EQ(r.env_vars.back(), (std::pair<std::string, std::string>{"RUN_COMMENT", "env"}));
}

TEST_F(ResolveTest, EnvironmentOnlyOverridesGuideNames) {
  // A layer's variable that is not one of the guide's names ignores the environment.
  row_m["MY_KNOB"] = "row";
  environment["MY_KNOB"] = "env";
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.variables.at("MY_KNOB"), "row");
  // ... while a placeholder that no layer sets falls back to the environment.
  environment["WANDB_PROJECT"] = "proj";
  r = resolve_now();
  EXPECT_EQ(r.flags.get_string("--wandb-project", ""), "proj");
  EXPECT_FALSE(r.variables.contains("WANDB_PROJECT"));
}

TEST_F(ResolveTest, ExtraArgsBeatEverythingInPlaceOrAppended) {
  environment["GBS"] = "32";
  extra_args = {"--global-batch-size", "64", "--hidden-size", "128", "--seed", "7", "--moe-permute-fusion"};
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.flags.get_int("--global-batch-size", 0), 64);
  EXPECT_EQ(r.flags.get_int("--hidden-size", 0), 128);
  Strings names = names_of(r.flags);
  // Replaced flags keep their file position; new ones come after the derived --bf16.
  EXPECT_EQ(names[5], "--global-batch-size");
  EXPECT_EQ(names[7], "--hidden-size");
  EXPECT_EQ(Strings(names.end() - 3, names.end()), (Strings{"--bf16", "--seed", "--moe-permute-fusion"}));
  // The variable itself is what the environment said.
  EXPECT_EQ(r.variables.at("GBS"), "32");
}

TEST_F(ResolveTest, ValuesAreSubstitutedOnce) {
  environment["COMMENT"] = "${TP}";
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.flags.get_string("--wandb-exp-name", ""), "M-TP1-${TP}");
}

TEST_F(ResolveTest, BoolFlagFromPlaceholder) {
  EXPECT_TRUE(resolve_now().flags.has("--moe-grouped-gemm"));
  row_m["MOE_GROUPED_GEMM"] = "false";
  ResolvedConfig r = resolve_now();
  EXPECT_FALSE(r.flags.has("--moe-grouped-gemm"));
  // Literal bools: true present, false absent.
  EXPECT_TRUE(r.flags.has("--sequence-parallel"));
  EXPECT_FALSE(r.flags.has("--overlap-grad-reduce"));
  row_m["MOE_GROUPED_GEMM"] = "maybe";
  EXPECT_THAT(resolve_error(), HasSubstr("flag --moe-grouped-gemm is a switch"));
}

TEST_F(ResolveTest, EmptySubstitutionDropsTheFlag) {
  row_m["PP_FIRST"] = "3";
  row_m["PP_LAST"] = "";
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.flags.get_int("--decoder-first-pipeline-num-layers", 0), 3);
  EXPECT_FALSE(r.flags.has("--decoder-last-pipeline-num-layers"));
  EXPECT_FALSE(r.flags.has("--wandb-project"));
  cluster_maps["TOKENIZER_MODEL"].erase("M");
  EXPECT_FALSE(resolve_now().flags.has("--tokenizer-model"));
}

TEST_F(ResolveTest, ClusterScalarsSubstituteTheEnvironment) {
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.variables.at("OUTPUT_PATH"), "/r/out");
  EXPECT_EQ(r.flags.get_string("--output-dir", ""), "/r/out");
  EXPECT_EQ(r.variables.at("ACCOUNT"), "acct");
  environment.erase("ROOT");
  EXPECT_EQ(resolve_now().variables.at("OUTPUT_PATH"), "/out");
}

TEST_F(ResolveTest, ClusterMapsPickedByDatasetAndModel) {
  ResolvedConfig r = resolve_now();
  EXPECT_THAT(r.flags.get_strings("--data-path"), ElementsAre("/data/ds_m"));
  EXPECT_EQ(r.flags.get_string("--tokenizer-model", ""), "/tok/m");
  EXPECT_EQ(r.flags.get_string("--load", ""), "/ckpt/m");
  EXPECT_EQ(r.variables.at("DATA_PATH"), "/data/ds_m");
  EXPECT_FALSE(r.flags.has("--mock-data"));
  // DATASET from the environment chooses the key.
  environment["DATASET"] = "Other";
  EXPECT_THAT(resolve_now().flags.get_strings("--data-path"), ElementsAre("/data/other_m"));
  // A plain path in the environment replaces the looked-up one.
  environment["DATA_PATH"] = "0.5 /a 0.5 /b";
  EXPECT_THAT(resolve_now().flags.get_strings("--data-path"), ElementsAre("0.5", "/a", "0.5", "/b"));
}

TEST_F(ResolveTest, NoDataPathMeansMockData) {
  environment["DATASET"] = "Unknown";
  ResolvedConfig r = resolve_now();
  EXPECT_FALSE(r.flags.has("--data-path"));
  EXPECT_TRUE(r.flags.has("--mock-data"));
  EXPECT_EQ(names_of(r.flags).back(), "--mock-data");
  // ... unless the command line gives one.
  extra_args = {"--data-path", "/cli"};
  r = resolve_now();
  EXPECT_FALSE(r.flags.has("--mock-data"));
  EXPECT_THAT(r.flags.get_strings("--data-path"), ElementsAre("/cli"));
}

TEST_F(ResolveTest, LoadPathClearedWhenPretraining) {
  environment["PRETRAIN"] = "1";
  ResolvedConfig r = resolve_now();
  EXPECT_FALSE(r.flags.has("--load"));
  EXPECT_EQ(r.variables.at("LOAD_PATH"), "");
  // Even an explicit LOAD_PATH from the environment.
  environment["LOAD_PATH"] = "/explicit";
  EXPECT_FALSE(resolve_now().flags.has("--load"));
  environment["PRETRAIN"] = "0";
  EXPECT_EQ(resolve_now().flags.get_string("--load", ""), "/explicit");
}

TEST_F(ResolveTest, LayersPerVirtualStage) {
  EXPECT_EQ(resolve_now().variables.at("LAYERS_PER_VP"), "");
  row_m["VPP"] = "2";  // 8 layers / PP 2 / VPP 2
  ResolvedConfig r = resolve_now();
  EXPECT_EQ(r.variables.at("LAYERS_PER_VP"), "2");
  EXPECT_EQ(r.flags.get_int("--num-virtual-stages-per-pipeline-rank", 0), 2);
  EXPECT_EQ(r.variables.at("VPP"), "2");
  environment["NUM_LAYERS"] = "24";
  environment["PP"] = "4";
  environment["VPP"] = "3";
  EXPECT_EQ(resolve_now().variables.at("LAYERS_PER_VP"), "2");
}

TEST_F(ResolveTest, VppOneDropsTheVirtualStageFlagButKeepsTheVariable) {
  ResolvedConfig r = resolve_now();
  EXPECT_FALSE(r.flags.has("--num-virtual-stages-per-pipeline-rank"));
  EXPECT_EQ(r.variables.at("VPP"), "1");
}

TEST_F(ResolveTest, Fp8AddsItsFlags) {
  EXPECT_FALSE(resolve_now().flags.has("--fp8-format"));
  environment["PR"] = "fp8";
  ResolvedConfig r = resolve_now();
  EXPECT_TRUE(r.flags.has("--bf16"));
  EXPECT_EQ(r.flags.get_string("--fp8-format", ""), "hybrid");
  EXPECT_EQ(r.flags.get_string("--fp8-recipe", ""), "delayed");
  environment["PR"] = "mxfp8";
  r = resolve_now();
  EXPECT_EQ(r.flags.get_string("--fp8-format", ""), "e4m3");
  EXPECT_EQ(r.flags.get_string("--fp8-recipe", ""), "mxfp8");
}

TEST_F(ResolveTest, Fp16Rejected) {
  environment["PR"] = "fp16";
  EXPECT_THAT(resolve_error(), AllOf(HasSubstr("PR=fp16"), HasSubstr("bf16"), HasSubstr("fp8"), HasSubstr("mxfp8")));
}

TEST_F(ResolveTest, ProfileAddsProfileFlagsAndSteps) {
  EXPECT_FALSE(resolve_now().flags.has("--profile"));
  environment["PROFILE"] = "1";
  ResolvedConfig r = resolve_now();
  EXPECT_TRUE(r.flags.has("--profile"));
  EXPECT_EQ(r.flags.get_int("--profile-step-start", 0), 10);
  EXPECT_EQ(r.flags.get_int("--profile-step-end", 0), 12);
  extra_args = {"--profile-step-start", "20", "--profile-step-end", "21"};
  r = resolve_now();
  EXPECT_EQ(r.flags.get_int("--profile-step-start", 0), 20);
  EXPECT_EQ(r.flags.get_int("--profile-step-end", 0), 21);
}

TEST_F(ResolveTest, UnknownModelListsAvailableModels) {
  environment["MODEL"] = "Nope";
  EXPECT_THAT(resolve_error(), AllOf(HasSubstr("unknown MODEL 'Nope'"), HasSubstr("available: M, N")));
}

TEST_F(ResolveTest, MissingModel) {
  environment.erase("MODEL");
  EXPECT_THAT(resolve_error(), HasSubstr("MODEL is not set"));
  environment["MODEL"] = "";
  EXPECT_THAT(resolve_error(), HasSubstr("MODEL is not set"));
  // common.yaml may name one.
  common["MODEL"] = "N";
  environment.erase("MODEL");
  EXPECT_EQ(resolve_now().model, "N");
}

TEST_F(ResolveTest, ModelWithoutRuntimeRow) {
  std::ofstream(dir / "models" / "Z.yaml") << kModelN;
  environment["MODEL"] = "Z";
  EXPECT_THAT(resolve_error(), HasSubstr("model 'Z' has no row"));
}

TEST_F(ResolveTest, MissingClusterFile) {
  environment["CLUSTER"] = "nowhere";
  EXPECT_THAT(resolve_error(), HasSubstr("CLUSTER 'nowhere'"));
}

TEST_F(ResolveTest, UnknownFlagInModelFileOrCommandLine) {
  extra_args = {"--num-layer", "4"};
  EXPECT_THAT(resolve_error(), HasSubstr("did you mean '--num-layers'"));
}

// Every model of the repository resolves on the local cluster, and its
// runtime row passes the mapping rules with the world of its row.
TEST(ResolveRepositoryConfigs, EveryModelResolvesAndValidates) {
  const fs::path config_dir = fs::path(MOEBENCH_SOURCE_DIR) / "configs";
  const Strings models = available_models(config_dir);
  ASSERT_GE(models.size(), 7u);
  for (const auto& model : models) {
    SCOPED_TRACE(model);
    try {
      ResolvedConfig r = resolve({config_dir, {{"MODEL", model}, {"CLUSTER", "local"}}, {}});
      EXPECT_EQ(r.model, model);
      EXPECT_TRUE(r.flags.has("--mock-data"));  // the local cluster has no data sets
      EXPECT_FALSE(r.flags.has("--data-path"));
      const int world = std::stoi(r.variables.at("NNODES")) * std::stoi(r.variables.at("GPUS_PER_NODE"));
      const int tp = static_cast<int>(r.flags.get_int("--tensor-model-parallel-size", 1));
      ModelConfig m = model_config_from_flags(r.flags, tp);
      ParallelConfig p = parallel_config_from_flags(r.flags, world);
      EXPECT_EQ(m.num_layers, std::stoi(r.variables.at("NUM_LAYERS")));
      EXPECT_EQ(m.seq_length, std::stoi(r.variables.at("SEQ_LEN")));
      EXPECT_EQ(p.pipeline, std::stoi(r.variables.at("PP")));
      EXPECT_EQ(p.virtual_stages, std::stoi(r.variables.at("VPP")));
      validate(m, p);
    } catch (const Error& e) {
      ADD_FAILURE() << model << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace moebench::config
