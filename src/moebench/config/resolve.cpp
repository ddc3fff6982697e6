#include "moebench/config/resolve.h"

#include <unistd.h>

#include "moebench/config/envsubst.h"
#include "moebench/core/error.h"

extern char** environ;

namespace moebench::config {
namespace fs = std::filesystem;
namespace {

void overlay(Variables& base, const Variables& top) {
  for (const auto& [key, value] : top) base[key] = value;
}

Variables guide_overrides(const Variables& environment) {
  Variables overrides;
  for (const auto& name : guide_variable_names())
    if (auto it = environment.find(name); it != environment.end()) overrides[name] = it->second;
  return overrides;
}

const std::string& required(const Variables& vars, const std::string& name, const std::string& why) {
  auto it = vars.find(name);
  if (it == vars.end() || it->second.empty()) throw Error(name + " is not set: " + why);
  return it->second;
}

long long integer_variable(const Variables& vars, const std::string& name) {
  const std::string& text = required(vars, name, "the runtime row or the environment must give it");
  try {
    size_t used = 0;
    long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw Error(name + "=" + text + " is not an integer");
}

// The cluster file's per-model and per-dataset paths, chosen by MODEL and DATASET.
Variables cluster_variables(const ClusterFile& cluster, const std::string& model, const std::string& dataset) {
  Variables vars = cluster.scalars;
  auto pick = [&](const std::string& name, const std::string& key) {
    auto map = cluster.maps.find(name);
    if (map == cluster.maps.end()) return;
    auto it = map->second.find(key);
    if (it != map->second.end()) vars[name] = it->second;
  };
  pick("DATA_PATH", dataset + ":" + model);
  pick("TOKENIZER_MODEL", model);
  pick("LOAD_PATH", model);
  return vars;
}

void check_precision(const std::string& precision) {
  if (precision != "bf16" && precision != "fp8" && precision != "mxfp8")
    throw Error("PR=" + precision + " is not a precision moebench runs; use bf16, fp8 or mxfp8");
}

void add_precision_flags(FlagMap& flags, const std::string& precision) {
  flags.set_bool("--bf16", true);
  if (precision == "fp8") {
    flags.set("--fp8-format", {"hybrid"});
    flags.set("--fp8-recipe", {"delayed"});
  } else if (precision == "mxfp8") {
    flags.set("--fp8-format", {"e4m3"});
    flags.set("--fp8-recipe", {"mxfp8"});
  }
}

// The guide profiles a short window a few steps in, once warm.
void add_profile_flags(FlagMap& flags) {
  flags.set_bool("--profile", true);
  if (!flags.has("--profile-step-start")) flags.set("--profile-step-start", {"10"});
  if (!flags.has("--profile-step-end")) flags.set("--profile-step-end", {"12"});
}

}  // namespace

const std::vector<std::string>& guide_variable_names() {
  static const std::vector<std::string> names = {
      "MODEL", "CLUSTER", "TP", "PP", "EP", "CP", "VPP", "MBS", "GBS", "NUM_LAYERS",
      "MOE_TOKEN_DISPATCHER", "MOE_GROUPED_GEMM", "NNODES", "RUN_TIME", "PRETRAIN", "SEQ_LEN",
      "DATASET", "PP_FIRST", "PP_LAST", "LAYERS_PER_VP", "PR", "PROFILE", "COMMENT", "DRY_RUN",
      "GPUS_PER_NODE", "OUTPUT_PATH", "DATA_PATH", "TOKENIZER_MODEL", "LOAD_PATH", "ACCOUNT",
      "PARTITION", "RUN_NAME", "CONTAINER_IMAGE", "CONTAINER_MOUNTS"};
  return names;
}

ResolvedConfig resolve(const ResolveInputs& inputs) {
  const Variables overrides = guide_overrides(inputs.environment);
  ResolvedConfig resolved;

  Variables vars = read_common(inputs.config_dir);
  Variables peek = vars;
  overlay(peek, overrides);
  resolved.model = required(peek, "MODEL",
                            "choose a model, e.g. MODEL=DeepSeek-V2-Lite (see configs/models/)");
  const ModelFile model_file = read_model_file(inputs.config_dir, resolved.model);

  overlay(vars, read_runtime_row(inputs.config_dir, resolved.model));
  peek = vars;
  overlay(peek, overrides);
  const std::string cluster_name = required(peek, "CLUSTER", "name a file of configs/clusters/");
  const std::string dataset = peek.count("DATASET") ? peek.at("DATASET") : "";

  // Cluster values may refer to the environment (e.g. ${PWD}).
  ClusterFile cluster = read_cluster_file(inputs.config_dir, cluster_name);
  auto environment_lookup = [&](std::string_view name) -> std::optional<std::string> {
    auto it = inputs.environment.find(std::string(name));
    if (it == inputs.environment.end()) return std::nullopt;
    return it->second;
  };
  for (auto& [key, value] : cluster.scalars) value = envsubst(value, environment_lookup);
  for (auto& [name, map] : cluster.maps)
    for (auto& [key, value] : map) value = envsubst(value, environment_lookup);
  overlay(vars, cluster_variables(cluster, resolved.model, dataset));
  overlay(vars, overrides);
  vars["MODEL"] = resolved.model;

  check_precision(required(vars, "PR", "set PR to bf16, fp8 or mxfp8"));
  // A checkpoint is loaded only for runs that continue training (PRETRAIN=0).
  if (vars["PRETRAIN"] == "1") vars["LOAD_PATH"] = "";
  // The guide's derivation: layers per virtual stage when interleaving.
  if (!overrides.count("LAYERS_PER_VP")) {
    long long vpp = integer_variable(vars, "VPP");
    vars["LAYERS_PER_VP"] =
        vpp > 1 ? std::to_string(integer_variable(vars, "NUM_LAYERS") / integer_variable(vars, "PP") / vpp) : "";
  }
  auto lookup = [&](std::string_view name) -> std::optional<std::string> {
    if (auto it = vars.find(std::string(name)); it != vars.end()) return it->second;
    return environment_lookup(name);
  };
  for (const auto& [flag, raw] : model_file.model_args) resolved.flags.set_from_text(flag, envsubst(raw, lookup));
  for (const auto& [name, raw] : model_file.env_vars) resolved.env_vars.emplace_back(name, envsubst(raw, lookup));
  // VPP=1 means no interleaving: the flag is left out as Megatron expects.
  if (resolved.flags.get_int("--num-virtual-stages-per-pipeline-rank", 1) == 1)
    resolved.flags.erase("--num-virtual-stages-per-pipeline-rank");

  add_precision_flags(resolved.flags, vars["PR"]);
  if (vars["PROFILE"] == "1") add_profile_flags(resolved.flags);
  resolved.flags.merge(FlagMap::parse_arguments(inputs.extra_args));
  if (!resolved.flags.has("--data-path")) resolved.flags.set_bool("--mock-data", true);
  resolved.variables = std::move(vars);
  return resolved;
}

Variables process_environment() {
  Variables vars;
  for (char** entry = environ; *entry; ++entry) {
    std::string_view text(*entry);
    size_t eq = text.find('=');
    if (eq != std::string_view::npos) vars[std::string(text.substr(0, eq))] = std::string(text.substr(eq + 1));
  }
  return vars;
}

fs::path default_config_dir() {
  if (const char* dir = std::getenv("MOEBENCH_CONFIG_DIR")) return dir;
  // The binary lives in <repo>/build*/; configs/ sits at the repository root.
  std::error_code error;
  fs::path exe = fs::read_symlink("/proc/self/exe", error);
  for (fs::path dir = exe.parent_path(); !error && !dir.empty() && dir != dir.root_path(); dir = dir.parent_path())
    if (fs::is_directory(dir / "configs" / "models")) return dir / "configs";
  if (fs::is_directory("configs/models")) return fs::absolute("configs");
  throw Error("cannot find the configs/ directory; set MOEBENCH_CONFIG_DIR to the repository's configs/");
}

}  // namespace moebench::config
