#include "moebench/config/config_files.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "moebench/core/error.h"

namespace moebench::config {
namespace fs = std::filesystem;
namespace {

YAML::Node load_yaml(const fs::path& path) {
  if (!fs::exists(path)) throw Error("config file " + path.string() + " does not exist");
  try {
    return YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    throw Error("cannot parse " + path.string() + ": " + e.what());
  }
}

std::string scalar_text(const YAML::Node& node, const std::string& where) {
  if (node.IsNull()) return "";
  if (!node.IsScalar()) throw Error(where + " must be a single value");
  return node.Scalar();
}

// A YAML sequence becomes its items joined by spaces (Megatron's nargs='+').
std::string value_text(const YAML::Node& node, const std::string& where) {
  if (!node.IsSequence()) return scalar_text(node, where);
  std::string joined;
  for (const auto& item : node) joined += (joined.empty() ? "" : " ") + scalar_text(item, where);
  return joined;
}

OrderedPairs ordered_pairs(const YAML::Node& map, const std::string& where) {
  OrderedPairs pairs;
  if (!map || map.IsNull()) return pairs;
  if (!map.IsMap()) throw Error(where + " must be a map");
  for (const auto& item : map) {
    std::string key = item.first.Scalar();
    pairs.emplace_back(key, value_text(item.second, where + "." + key));
  }
  return pairs;
}

Variables scalar_map(const YAML::Node& map, const std::string& where) {
  Variables vars;
  for (auto& [key, value] : ordered_pairs(map, where)) vars[key] = value;
  return vars;
}

}  // namespace

std::vector<std::string> available_models(const fs::path& config_dir) {
  std::vector<std::string> names;
  const fs::path dir = config_dir / "models";
  if (!fs::is_directory(dir)) throw Error("model config directory " + dir.string() + " does not exist");
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".yaml") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

Variables read_common(const fs::path& config_dir) {
  const fs::path path = config_dir / "common.yaml";
  return scalar_map(load_yaml(path), path.string());
}

Variables read_runtime_row(const fs::path& config_dir, const std::string& model) {
  const fs::path path = config_dir / "runtime.yaml";
  YAML::Node table = load_yaml(path);
  YAML::Node row = table[model];
  if (!row) throw Error("model '" + model + "' has no row in " + path.string() + "; add one");
  return scalar_map(row, path.string() + ":" + model);
}

ModelFile read_model_file(const fs::path& config_dir, const std::string& model) {
  const fs::path path = config_dir / "models" / (model + ".yaml");
  if (!fs::exists(path)) {
    std::string names;
    for (const auto& name : available_models(config_dir)) names += (names.empty() ? "" : ", ") + name;
    throw Error("unknown MODEL '" + model + "'; available: " + names);
  }
  YAML::Node root = load_yaml(path);
  if (!root["MODEL_ARGS"]) throw Error(path.string() + " has no MODEL_ARGS map");
  return {ordered_pairs(root["ENV_VARS"], path.string() + ":ENV_VARS"),
          ordered_pairs(root["MODEL_ARGS"], path.string() + ":MODEL_ARGS")};
}

ClusterFile read_cluster_file(const fs::path& config_dir, const std::string& cluster) {
  fs::path path = cluster;
  if (path.extension() != ".yaml") path = config_dir / "clusters" / (cluster + ".yaml");
  if (!fs::exists(path))
    throw Error("CLUSTER '" + cluster + "' has no file " + path.string() +
                "; copy configs/clusters/template.yaml to it");
  YAML::Node root = load_yaml(path);
  ClusterFile file;
  if (!root.IsMap()) throw Error(path.string() + " must be a map");
  for (const auto& item : root) {
    std::string key = item.first.Scalar();
    if (item.second.IsMap())
      file.maps[key] = scalar_map(item.second, path.string() + ":" + key);
    else
      file.scalars[key] = value_text(item.second, path.string() + ":" + key);
  }
  return file;
}

}  // namespace moebench::config
