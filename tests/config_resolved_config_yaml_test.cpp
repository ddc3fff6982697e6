#include "moebench/config/resolved_config_yaml.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "moebench/core/atomic_file.h"

namespace moebench::config {
namespace {

namespace fs = std::filesystem;

TEST(ConfigResolvedConfigYaml, WritesEveryPartAsYaml) {
  ResolvedConfig resolved;
  resolved.model = "tiny-mixtral";
  resolved.variables = {{"TP", "1"}, {"MBS", "2"}};
  resolved.env_vars = {{"CUDA_DEVICE_MAX_CONNECTIONS", "1"}};
  resolved.flags = FlagMap::parse_arguments(
      {"--num-layers", "2", "--mock-data", "--data-path", "0.3", "a", "0.7", "b", "--lr", "1e-3"});

  const YAML::Node node = YAML::Load(resolved_config_yaml(resolved, 1));
  EXPECT_EQ(node["MODEL"].as<std::string>(), "tiny-mixtral");
  EXPECT_EQ(node["WORLD_SIZE"].as<int>(), 1);
  EXPECT_EQ(node["VARIABLES"]["MBS"].as<std::string>(), "2");
  EXPECT_EQ(node["ENV_VARS"]["CUDA_DEVICE_MAX_CONNECTIONS"].as<std::string>(), "1");
  const YAML::Node args = node["MODEL_ARGS"];
  EXPECT_EQ(args["--num-layers"].as<int>(), 2);
  EXPECT_TRUE(args["--mock-data"].as<bool>());
  EXPECT_EQ(args["--data-path"].as<std::vector<std::string>>(), (std::vector<std::string>{"0.3", "a", "0.7", "b"}));
  EXPECT_EQ(args["--lr"].as<std::string>(), "1e-3");
  // Flags keep their order, so the file reads like the command.
  EXPECT_EQ(args.begin()->first.as<std::string>(), "--num-layers");
}

TEST(ConfigResolvedConfigYaml, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  const fs::path dir = fs::temp_directory_path() / ("moebench_atomic_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  write_file_atomically(dir / "run" / "config.yaml", "first\n");
  write_file_atomically(dir / "run" / "config.yaml", "second\n");
  std::ifstream in(dir / "run" / "config.yaml");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "second\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "run"), fs::directory_iterator{}), 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moebench::config
