#include "moebench/ckpt/megatron_sharding.h"

#include <optional>

#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The layer number of decoder.layers.<L>.*, if the name is a layer's.
std::optional<int> layer_of(const std::string& name) {
  const std::string prefix = "decoder.layers.";
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  return std::stoi(name.substr(prefix.size()));
}

// The expert number of ...mlp.experts.linear_fc<k>.weight<E>.
std::optional<int> expert_of(const std::string& name) {
  if (name.find(".mlp.experts.") == std::string::npos) return std::nullopt;
  const size_t digits = name.find_last_not_of("0123456789") + 1;
  return std::stoi(name.substr(digits));
}

int stage_of(const config::ModelConfig& config, const std::string& name, int pp) {
  if (const auto layer = layer_of(name)) return *layer / (config.num_layers / pp);
  return name.rfind("embedding.", 0) == 0 ? 0 : pp - 1;
}

enum class TensorParallelKind { kReplicated, kColumn, kSwigluColumn, kRow };

TensorParallelKind kind_of(const std::string& name) {
  for (const char* column : {"linear_qkv.weight", "linear_qkv.bias", "linear_q_proj.weight", "linear_q_up_proj.weight",
                             "linear_kv_up_proj.weight", "word_embeddings.weight", "output_layer.weight"})
    if (ends_with(name, column)) return TensorParallelKind::kColumn;
  if (ends_with(name, "linear_fc1.weight")) return TensorParallelKind::kSwigluColumn;
  if (ends_with(name, "linear_proj.weight") || ends_with(name, "linear_fc2.weight")) return TensorParallelKind::kRow;
  return TensorParallelKind::kReplicated;
}

void require_divides(int parts, int64_t size, const std::string& what, const char* flag) {
  if (size % parts != 0)
    throw Error(std::string(flag) + "=" + std::to_string(parts) + " does not divide the " + what + " (" +
                std::to_string(size) + "); choose a " + flag + " that divides it (the layout only shapes the rank "
                "files: the checkpoint loads under any mapping, so TP=PP=EP=1 always converts)");
}

TensorSlice rows(const std::vector<int64_t>& shape, int64_t begin, int64_t count) {
  TensorSlice slice = TensorSlice::whole(shape);
  slice.offsets[0] = begin;
  slice.sizes[0] = count;
  return slice;
}

}  // namespace

RankCoordinates coordinates_of(const ParallelMapping& mapping, int rank) {
  return {rank % mapping.tp, rank / (mapping.tp * mapping.ep), (rank / mapping.tp) % mapping.ep};
}

void check_mapping_fits(const config::ModelConfig& config, const ParallelMapping& mapping) {
  require_divides(mapping.pp, config.num_layers, "number of layers", "PP");
  if (config.is_moe()) require_divides(mapping.ep, config.moe.num_experts, "number of experts", "EP");
  else require_divides(mapping.ep, 1, "dense model (no experts)", "EP");
  require_divides(mapping.tp, config.padded_vocab_size, "vocabulary", "TP");
  require_divides(mapping.tp, config.num_attention_heads, "attention heads", "TP");
  if (!config.multi_latent_attention) require_divides(mapping.tp, config.num_query_groups, "query groups", "TP");
  require_divides(mapping.tp, config.ffn_hidden_size, "FFN hidden size", "TP");
  if (config.moe.shared_expert_size > 0)
    require_divides(mapping.tp, config.moe.shared_expert_size, "shared-expert hidden size", "TP");
}

std::vector<TensorSlice> saved_slices(const config::ModelConfig& config, const std::string& name,
                                      const std::vector<int64_t>& shape, const ParallelMapping& mapping,
                                      const RankCoordinates& at) {
  if (stage_of(config, name, mapping.pp) != at.pp) return {};
  if (const auto expert = expert_of(name)) {
    const int per_rank = config.moe.num_experts / mapping.ep;
    return *expert / per_rank == at.ep && at.tp == 0 ? std::vector{TensorSlice::whole(shape)} : std::vector<TensorSlice>{};
  }
  if (at.ep != 0) return {};
  const int tp = mapping.tp;
  switch (kind_of(name)) {
    case TensorParallelKind::kReplicated:
      return at.tp == 0 ? std::vector{TensorSlice::whole(shape)} : std::vector<TensorSlice>{};
    case TensorParallelKind::kColumn: {
      const int64_t part = shape[0] / tp;
      return {rows(shape, at.tp * part, part)};
    }
    case TensorParallelKind::kSwigluColumn: {
      const int64_t half = shape[0] / 2, part = half / tp;
      return {rows(shape, at.tp * part, part), rows(shape, half + at.tp * part, part)};
    }
    case TensorParallelKind::kRow: {
      TensorSlice slice = TensorSlice::whole(shape);
      slice.sizes[1] = shape[1] / tp;
      slice.offsets[1] = at.tp * slice.sizes[1];
      return {slice};
    }
  }
  return {};
}

}  // namespace moebench::ckpt
