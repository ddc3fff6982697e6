#pragma once
// Readers for the files under configs/: the common defaults, the runtime
// table, the cluster files and the model YAMLs. They return plain data; the
// precedence between them is resolve.h's business.
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace moebench::config {

using Variables = std::map<std::string, std::string>;
using OrderedPairs = std::vector<std::pair<std::string, std::string>>;

struct ModelFile {
  OrderedPairs env_vars;    // ENV_VARS, raw (before substitution)
  OrderedPairs model_args;  // MODEL_ARGS, raw, in file order
};

struct ClusterFile {
  Variables scalars;                       // ACCOUNT, PARTITION, OUTPUT_PATH, ...
  std::map<std::string, Variables> maps;   // DATA_PATH, TOKENIZER_MODEL, LOAD_PATH
};

// Model names that have a YAML under configs/models, sorted.
std::vector<std::string> available_models(const std::filesystem::path& config_dir);

Variables read_common(const std::filesystem::path& config_dir);
Variables read_runtime_row(const std::filesystem::path& config_dir, const std::string& model);
ModelFile read_model_file(const std::filesystem::path& config_dir, const std::string& model);
// `cluster` is a name under configs/clusters/ or a path to a YAML file.
ClusterFile read_cluster_file(const std::filesystem::path& config_dir, const std::string& cluster);

}  // namespace moebench::config
