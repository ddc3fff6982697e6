#include "moebench/dist/rank_grid.h"

#include <algorithm>

#include "moebench/core/error.h"

namespace moebench {
namespace {

constexpr std::array kAllDims = {ParallelDim::kTensor, ParallelDim::kContext, ParallelDim::kExpert,
                                 ParallelDim::kData, ParallelDim::kPipeline};

int at(ParallelDim dim) { return static_cast<int>(dim); }

std::array<ParallelDim, kParallelDimCount> parse_order(const std::string& order) {
  const std::string fix =
      "; name each of tp, cp, ep, dp, pp once, fastest first, "
      "e.g. tp-cp-ep-dp-pp (Megatron's default)";
  std::array<ParallelDim, kParallelDimCount> dims{};
  std::array<bool, kParallelDimCount> seen{};
  int count = 0;
  std::size_t begin = 0;
  while (begin <= order.size()) {
    const std::size_t end = std::min(order.find('-', begin), order.size());
    const std::string_view word = std::string_view(order).substr(begin, end - begin);
    const auto dim = std::find_if(kAllDims.begin(), kAllDims.end(),
                                  [&](ParallelDim d) { return token(d) == word; });
    if (dim == kAllDims.end()) {
      throw Error("parallel order '" + order + "' has the unknown token '" + std::string(word) +
                  "'" + fix);
    }
    if (seen[at(*dim)]) {
      throw Error("parallel order '" + order + "' names " + std::string(word) + " twice" + fix);
    }
    seen[at(*dim)] = true;
    dims[count++] = *dim;
    begin = end + 1;
  }
  if (count != kParallelDimCount) {
    throw Error("parallel order '" + order + "' names only " + std::to_string(count) +
                " of the 5 dimensions" + fix);
  }
  return dims;
}

void check_at_least_one(const std::string& what, int value) {
  if (value < 1) {
    throw Error(what + " is " + std::to_string(value) + "; it must be at least 1");
  }
}

// The data-parallel size that fills the world once the model-parallel dims
// take their share; `model_product` is e.g. "TP*CP*PP = 2*1*2".
int data_parallel_size(int world_size, int model_size, const std::string& model_product) {
  if (world_size % model_size != 0) {
    throw Error("world size " + std::to_string(world_size) + " is not divisible by " +
                model_product + " = " + std::to_string(model_size) +
                "; choose sizes whose product divides the number of ranks");
  }
  return world_size / model_size;
}

// Checks every size of the run, since the decoder grid is built first.
OrthogonalGrid decoder_grid_of(const ParallelSizes& s) {
  check_at_least_one("world size", s.world_size);
  check_at_least_one("TP (tensor parallel size)", s.tensor);
  check_at_least_one("CP (context parallel size)", s.context);
  check_at_least_one("EP (expert parallel size)", s.expert);
  check_at_least_one("ETP (expert tensor parallel size)", s.expert_tensor);
  check_at_least_one("PP (pipeline parallel size)", s.pipeline);
  const int dp =
      data_parallel_size(s.world_size, s.tensor * s.context * s.pipeline,
                         "TP*CP*PP = " + std::to_string(s.tensor) + "*" +
                             std::to_string(s.context) + "*" + std::to_string(s.pipeline));
  return OrthogonalGrid(parse_order(s.order), {s.tensor, s.context, 1, dp, s.pipeline});
}

OrthogonalGrid expert_grid_of(const ParallelSizes& s) {
  const int expert_dp =
      data_parallel_size(s.world_size, s.expert_tensor * s.expert * s.pipeline,
                         "ETP*EP*PP = " + std::to_string(s.expert_tensor) + "*" +
                             std::to_string(s.expert) + "*" + std::to_string(s.pipeline));
  return OrthogonalGrid(parse_order(s.order),
                        {s.expert_tensor, 1, s.expert, expert_dp, s.pipeline});
}

// How the groups of one kind are formed: along some dims of one grid, or,
// for the embedding kinds, from the ends of each pipeline group.
struct KindRule {
  bool expert_grid = false;
  std::vector<ParallelDim> varying;
  bool embedding = false;
  bool last_stage_too = false;  // embedding only: the output layer shares the embedding
};

KindRule rule(GroupKind kind) {
  using D = ParallelDim;
  switch (kind) {
    case GroupKind::kTensor: return {.varying = {D::kTensor}};
    case GroupKind::kContext: return {.varying = {D::kContext}};
    case GroupKind::kData: return {.varying = {D::kData}};
    case GroupKind::kDataWithContext: return {.varying = {D::kData, D::kContext}};
    case GroupKind::kPipeline: return {.varying = {D::kPipeline}};
    case GroupKind::kModel: return {.varying = {D::kTensor, D::kPipeline}};
    case GroupKind::kTensorAndContext: return {.varying = {D::kTensor, D::kContext}};
    case GroupKind::kTensorAndDataWithContext:
      return {.varying = {D::kTensor, D::kData, D::kContext}};
    case GroupKind::kEmbedding:
      return {.varying = {D::kPipeline}, .embedding = true, .last_stage_too = true};
    case GroupKind::kPositionEmbedding: return {.varying = {D::kPipeline}, .embedding = true};
    case GroupKind::kExpert: return {.expert_grid = true, .varying = {D::kExpert}};
    case GroupKind::kExpertTensor: return {.expert_grid = true, .varying = {D::kTensor}};
    case GroupKind::kExpertTensorAndExpert:
      return {.expert_grid = true, .varying = {D::kTensor, D::kExpert}};
    case GroupKind::kExpertTensorExpertPipeline:
      return {.expert_grid = true, .varying = {D::kTensor, D::kExpert, D::kPipeline}};
    case GroupKind::kExpertData: return {.expert_grid = true, .varying = {D::kData}};
  }
  throw Error("group kind " + std::to_string(static_cast<int>(kind)) +
              " is unknown; use a value of moebench::GroupKind");
}

// The embedding group drawn from one pipeline group: its first stage, and
// its last when the kind includes it and there is more than one stage.
RankGroup embedding_ranks(const RankGroup& pipeline, bool last_stage_too) {
  if (last_stage_too && pipeline.size() > 1) return {pipeline.front(), pipeline.back()};
  return {pipeline.front()};
}

}  // namespace

std::string_view token(ParallelDim dim) {
  switch (dim) {
    case ParallelDim::kTensor: return "tp";
    case ParallelDim::kContext: return "cp";
    case ParallelDim::kExpert: return "ep";
    case ParallelDim::kData: return "dp";
    case ParallelDim::kPipeline: return "pp";
  }
  return "?";
}

std::string_view name(GroupKind kind) {
  switch (kind) {
    case GroupKind::kTensor: return "tp";
    case GroupKind::kContext: return "cp";
    case GroupKind::kData: return "dp";
    case GroupKind::kDataWithContext: return "dp_cp";
    case GroupKind::kPipeline: return "pp";
    case GroupKind::kModel: return "mp";
    case GroupKind::kTensorAndContext: return "tp_cp";
    case GroupKind::kTensorAndDataWithContext: return "tp_dp_cp";
    case GroupKind::kEmbedding: return "embd";
    case GroupKind::kPositionEmbedding: return "pos_embd";
    case GroupKind::kExpert: return "ep";
    case GroupKind::kExpertTensor: return "expt_tp";
    case GroupKind::kExpertTensorAndExpert: return "tp_ep";
    case GroupKind::kExpertTensorExpertPipeline: return "tp_ep_pp";
    case GroupKind::kExpertData: return "expt_dp";
  }
  return "?";
}

OrthogonalGrid::OrthogonalGrid(const std::array<ParallelDim, kParallelDimCount>& order,
                               const std::array<int, kParallelDimCount>& sizes)
    : order_(order), sizes_(sizes) {
  std::array<bool, kParallelDimCount> seen{};
  for (ParallelDim dim : order_) {
    if (seen[at(dim)]) {
      throw Error("grid order names " + std::string(token(dim)) +
                  " twice; list each of tp, cp, ep, dp, pp once");
    }
    seen[at(dim)] = true;
    check_at_least_one("grid size of " + std::string(token(dim)), sizes_[at(dim)]);
    strides_[at(dim)] = world_size_;
    world_size_ *= sizes_[at(dim)];
  }
}

int OrthogonalGrid::size(ParallelDim dim) const { return sizes_[at(dim)]; }

int OrthogonalGrid::coordinate(int rank, ParallelDim dim) const {
  check_rank(rank);
  return rank / strides_[at(dim)] % sizes_[at(dim)];
}

OrthogonalGrid::Split OrthogonalGrid::split(const std::vector<ParallelDim>& varying) const {
  Split result;
  for (ParallelDim dim : order_) {
    const bool varies = std::find(varying.begin(), varying.end(), dim) != varying.end();
    (varies ? result.varying : result.fixed).push_back(dim);
  }
  return result;
}

int OrthogonalGrid::offset(int index, const std::vector<ParallelDim>& dims) const {
  int rank = 0;
  for (ParallelDim dim : dims) {
    rank += index % sizes_[at(dim)] * strides_[at(dim)];
    index /= sizes_[at(dim)];
  }
  return rank;
}

int OrthogonalGrid::index(int rank, const std::vector<ParallelDim>& dims) const {
  int result = 0;
  int place = 1;
  for (ParallelDim dim : dims) {
    result += coordinate(rank, dim) * place;
    place *= sizes_[at(dim)];
  }
  return result;
}

RankGroup OrthogonalGrid::group(int group_index, const Split& split) const {
  int group_size = 1;
  for (ParallelDim dim : split.varying) group_size *= sizes_[at(dim)];
  const int base = offset(group_index, split.fixed);
  RankGroup ranks(group_size);
  for (int i = 0; i < group_size; ++i) ranks[i] = base + offset(i, split.varying);
  return ranks;
}

std::vector<RankGroup> OrthogonalGrid::groups(const std::vector<ParallelDim>& varying) const {
  const Split parts = split(varying);
  int group_count = 1;
  for (ParallelDim dim : parts.fixed) group_count *= sizes_[at(dim)];
  std::vector<RankGroup> result;
  result.reserve(group_count);
  for (int g = 0; g < group_count; ++g) result.push_back(group(g, parts));
  return result;
}

GroupMembership OrthogonalGrid::membership(int rank,
                                           const std::vector<ParallelDim>& varying) const {
  check_rank(rank);
  const Split parts = split(varying);
  const int group_index = index(rank, parts.fixed);
  return {group_index, index(rank, parts.varying), group(group_index, parts)};
}

void OrthogonalGrid::check_rank(int rank) const {
  if (rank < 0 || rank >= world_size_) {
    throw Error("rank " + std::to_string(rank) + " is outside the world of " +
                std::to_string(world_size_) + " ranks; pass a rank in [0, " +
                std::to_string(world_size_) + ")");
  }
}

RankGrid::RankGrid(const ParallelSizes& sizes)
    : decoder_(decoder_grid_of(sizes)), expert_(expert_grid_of(sizes)) {
  // Megatron asserts this too: a stage's attention and experts must sit on
  // the same ranks, which fails e.g. for pp before dp with DP != expert-DP.
  const std::vector<ParallelDim> pipeline = {ParallelDim::kPipeline};
  if (decoder_.groups(pipeline) != expert_.groups(pipeline)) {
    throw Error("parallel order '" + sizes.order + "' puts the pipeline stages of attention (DP " +
                std::to_string(data_parallel_size()) + ") and experts (expert-DP " +
                std::to_string(expert_data_parallel_size()) +
                ") on different ranks; use order tp-cp-ep-dp-pp or sizes with "
                "TP*CP = ETP*EP");
  }
}

RankCoordinates RankGrid::coordinates(int rank) const {
  using D = ParallelDim;
  return {decoder_.coordinate(rank, D::kTensor), decoder_.coordinate(rank, D::kContext),
          decoder_.coordinate(rank, D::kData),   decoder_.coordinate(rank, D::kPipeline),
          expert_.coordinate(rank, D::kTensor),  expert_.coordinate(rank, D::kExpert),
          expert_.coordinate(rank, D::kData)};
}

std::vector<RankGroup> RankGrid::groups(GroupKind kind) const {
  const KindRule r = rule(kind);
  std::vector<RankGroup> result = (r.expert_grid ? expert_ : decoder_).groups(r.varying);
  if (r.embedding) {
    for (RankGroup& group : result) group = embedding_ranks(group, r.last_stage_too);
  }
  return result;
}

std::optional<GroupMembership> RankGrid::membership(int rank, GroupKind kind) const {
  const KindRule r = rule(kind);
  GroupMembership result = (r.expert_grid ? expert_ : decoder_).membership(rank, r.varying);
  if (r.embedding) {
    result.ranks = embedding_ranks(result.ranks, r.last_stage_too);
    const auto found = std::find(result.ranks.begin(), result.ranks.end(), rank);
    if (found == result.ranks.end()) return std::nullopt;
    result.rank_in_group = static_cast<int>(found - result.ranks.begin());
  }
  return result;
}

}  // namespace moebench
