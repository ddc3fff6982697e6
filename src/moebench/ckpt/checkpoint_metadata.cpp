#include "moebench/ckpt/checkpoint_metadata.h"

#include <nlohmann/json.hpp>

#include "moebench/core/error.h"
#include "moebench/core/tensor.h"

namespace moebench::ckpt {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "moebench-native";
constexpr int kVersion = 1;

std::optional<ops::GroupScore> parse_group_score(const json& conventions) {
  const auto found = conventions.find("group_score");
  if (found == conventions.end() || found->is_null()) return std::nullopt;
  const std::string text = found->get<std::string>();
  if (text == "max") return ops::GroupScore::kMax;
  if (text == "top2_sum") return ops::GroupScore::kTop2Sum;
  throw Error("model_conventions.group_score '" + text + "' is not max or top2_sum");
}

json group_score_json(const std::optional<ops::GroupScore>& score) {
  if (!score) return nullptr;
  return *score == ops::GroupScore::kMax ? "max" : "top2_sum";
}

template <typename T>
std::optional<T> optional_field(const json& object, const char* section, const char* key) {
  const auto found = object.find(section);
  if (found == object.end() || found->is_null()) return std::nullopt;
  return found->at(key).get<T>();
}

}  // namespace

std::string metadata_to_json(const CheckpointMetadata& m) {
  json tensors = json::object();
  for (const auto& [name, tensor] : m.tensors) {
    json shards = json::array();
    for (const ShardLocation& shard : tensor.shards)
      shards.push_back({{"file", shard.file}, {"key", shard.key}, {"offsets", shard.slice.offsets},
                        {"sizes", shard.slice.sizes}});
    tensors[name] = {{"dtype", tensor.dtype}, {"shape", tensor.shape}, {"shards", shards}};
  }
  json out = {{"format", kFormat},
              {"version", kVersion},
              {"iteration", m.iteration ? json(*m.iteration) : json(nullptr)},
              {"progress",
               {{"iteration", m.progress.iteration},
                {"consumed_samples", m.progress.consumed_samples},
                {"consumed_validation_samples", m.progress.consumed_validation_samples},
                {"scheduler_samples", m.progress.scheduler_samples}}},
              {"model_args", m.model_args},
              {"model_conventions", {{"group_score", group_score_json(m.conventions.group_score)}}},
              {"rank_files", m.rank_files},
              {"tensors", tensors}};
  if (m.optimizer_steps) out["optimizer"] = {{"steps", *m.optimizer_steps}};
  if (m.rng_seed) out["rng"] = {{"seed", *m.rng_seed}};
  if (!m.hf_config.empty()) out["hf_config"] = json::parse(m.hf_config);
  return out.dump(1) + "\n";
}

CheckpointMetadata metadata_from_json(const std::string& text, const std::filesystem::path& source) {
  CheckpointMetadata m;
  try {
    const json in = json::parse(text);
    if (in.value("format", "") != kFormat || in.value("version", 0) != kVersion)
      throw Error("not a " + std::string(kFormat) + " version " + std::to_string(kVersion) + " checkpoint");
    if (!in.at("iteration").is_null()) m.iteration = in.at("iteration").get<int64_t>();
    const json& progress = in.at("progress");
    m.progress = {progress.at("iteration").get<int64_t>(), progress.at("consumed_samples").get<int64_t>(),
                  progress.at("consumed_validation_samples").get<int64_t>(),
                  progress.at("scheduler_samples").get<int64_t>()};
    m.optimizer_steps = optional_field<int64_t>(in, "optimizer", "steps");
    m.rng_seed = optional_field<int64_t>(in, "rng", "seed");
    m.model_args = in.at("model_args").get<std::vector<std::string>>();
    m.conventions.group_score = parse_group_score(in.at("model_conventions"));
    if (in.contains("hf_config")) m.hf_config = in.at("hf_config").dump(2);
    m.rank_files = in.at("rank_files").get<std::vector<std::string>>();
    for (const auto& [name, entry] : in.at("tensors").items()) {
      CheckpointTensor& tensor = m.tensors[name];
      tensor.dtype = entry.at("dtype").get<std::string>();
      tensor.shape = entry.at("shape").get<std::vector<int64_t>>();
      for (const json& shard : entry.at("shards"))
        tensor.shards.push_back({shard.at("file").get<std::string>(), shard.at("key").get<std::string>(),
                                 {shard.at("offsets").get<std::vector<int64_t>>(),
                                  shard.at("sizes").get<std::vector<int64_t>>()}});
    }
  } catch (const json::exception& e) {
    throw Error("checkpoint metadata " + source.string() + " is malformed (" + e.what() +
                "); the checkpoint is damaged: save or convert it again");
  } catch (const Error& e) {
    throw Error("checkpoint metadata " + source.string() + ": " + e.what() +
                "; the checkpoint is damaged: save or convert it again");
  }
  for (const auto& [name, tensor] : m.tensors) check_shards_tile(name, tensor, source);
  return m;
}

void check_shards_tile(const std::string& name, const CheckpointTensor& tensor, const std::filesystem::path& source) {
  int64_t covered = 0;
  for (size_t i = 0; i < tensor.shards.size(); ++i) {
    const ShardLocation& shard = tensor.shards[i];
    if (!shard.slice.fits(tensor.shape))
      throw Error("checkpoint " + source.string() + ": shard " + shard.slice.describe() + " of '" + name + "' in " +
                  shard.file + " lies outside its shape " + format_dims(tensor.shape) +
                  "; the checkpoint is inconsistent: save or convert it again");
    for (size_t j = 0; j < i; ++j)
      if (intersect(shard.slice, tensor.shards[j].slice))
        throw Error("checkpoint " + source.string() + ": shards " + shard.slice.describe() + " (" + shard.file +
                    ") and " + tensor.shards[j].slice.describe() + " (" + tensor.shards[j].file + ") of '" + name +
                    "' overlap; the checkpoint is inconsistent: save or convert it again");
    covered += shard.slice.numel();
  }
  if (covered != TensorSlice::whole(tensor.shape).numel())
    throw Error("checkpoint " + source.string() + ": the shards of '" + name + "' hold " + std::to_string(covered) +
                " of its " + std::to_string(TensorSlice::whole(tensor.shape).numel()) +
                " elements; a rank file is missing from the checkpoint: save or convert it again");
}

}  // namespace moebench::ckpt
