#pragma once
// Which global ranks form each parallel group, computed as Megatron-Core's
// parallel_state.RankGenerator does, so that a TP/CP/EP/ETP/PP mapping
// means the same ranks here and there. Pure arithmetic: no communication.
//
// Ranks are laid out on a grid whose dimensions are listed in an order
// string, fastest-varying first ("tp-cp-ep-dp-pp": consecutive ranks differ
// in tp). A group of some kind is a set of ranks that differ only along the
// kind's dimensions. Two grids share the ranks:
//   decoder grid  tp=TP,  cp=CP, ep=1,  dp=world/(TP*CP*PP),  pp=PP
//   expert grid   tp=ETP, cp=1,  ep=EP, dp=world/(ETP*EP*PP), pp=PP
// and both must give the same pipeline groups.
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moebench {

// One dimension of a rank grid; its token is what order strings spell.
enum class ParallelDim { kTensor, kContext, kExpert, kData, kPipeline };
inline constexpr int kParallelDimCount = 5;

// "tp", "cp", "ep", "dp" or "pp".
std::string_view token(ParallelDim dim);

// The global ranks of one group, in Megatron's order.
using RankGroup = std::vector<int>;

// Where one rank sits among the groups of one kind: enough to split a
// communicator (colour = group_index, key = rank_in_group) and to address
// peers (ranks).
struct GroupMembership {
  int group_index = 0;  // index into the list of groups of that kind
  int rank_in_group = 0;
  RankGroup ranks;
};

// One orthogonal grid of ranks: each dimension has a size, and a rank's
// coordinates are its mixed-radix digits in the grid's order.
class OrthogonalGrid {
 public:
  // `order` lists every dimension once, fastest first; `sizes` is indexed
  // by ParallelDim.
  OrthogonalGrid(const std::array<ParallelDim, kParallelDimCount>& order,
                 const std::array<int, kParallelDimCount>& sizes);

  int world_size() const { return world_size_; }
  int size(ParallelDim dim) const;
  int coordinate(int rank, ParallelDim dim) const;

  // Every group of ranks that differ only along `varying`. Groups are listed
  // by their fixed coordinates and ranks within a group by their varying
  // coordinates, fastest dimension first in both, as Megatron's
  // generate_masked_orthogonal_rank_groups lists them.
  std::vector<RankGroup> groups(const std::vector<ParallelDim>& varying) const;
  GroupMembership membership(int rank, const std::vector<ParallelDim>& varying) const;

 private:
  struct Split {
    std::vector<ParallelDim> fixed;
    std::vector<ParallelDim> varying;
  };
  Split split(const std::vector<ParallelDim>& varying) const;
  // The rank whose coordinates along `dims` are the mixed-radix digits of
  // `index` (fastest dimension first) and zero elsewhere.
  int offset(int index, const std::vector<ParallelDim>& dims) const;
  // The mixed-radix number formed by the rank's coordinates along `dims`.
  int index(int rank, const std::vector<ParallelDim>& dims) const;
  RankGroup group(int group_index, const Split& split) const;
  void check_rank(int rank) const;

  std::array<ParallelDim, kParallelDimCount> order_;
  std::array<int, kParallelDimCount> sizes_;    // by ParallelDim
  std::array<int, kParallelDimCount> strides_;  // by ParallelDim
  int world_size_ = 1;
};

// The group kinds of Megatron-Core, named as its ProcessGroupCollection
// fields are.
enum class GroupKind {
  kTensor,                      // tp
  kContext,                     // cp
  kData,                        // dp
  kDataWithContext,             // dp_cp: gradients are reduced over it
  kPipeline,                    // pp
  kModel,                       // mp = tp-pp
  kTensorAndContext,            // tp_cp
  kTensorAndDataWithContext,    // tp_dp_cp
  kEmbedding,                   // embd: first and last stage of each pipeline
  kPositionEmbedding,           // pos_embd: first stage of each pipeline
  kExpert,                      // ep
  kExpertTensor,                // expt_tp
  kExpertTensorAndExpert,       // tp_ep
  kExpertTensorExpertPipeline,  // tp_ep_pp
  kExpertData,                  // expt_dp
};
inline constexpr std::array kGroupKinds = {
    GroupKind::kTensor,
    GroupKind::kContext,
    GroupKind::kData,
    GroupKind::kDataWithContext,
    GroupKind::kPipeline,
    GroupKind::kModel,
    GroupKind::kTensorAndContext,
    GroupKind::kTensorAndDataWithContext,
    GroupKind::kEmbedding,
    GroupKind::kPositionEmbedding,
    GroupKind::kExpert,
    GroupKind::kExpertTensor,
    GroupKind::kExpertTensorAndExpert,
    GroupKind::kExpertTensorExpertPipeline,
    GroupKind::kExpertData,
};

// Megatron's short name of the kind ("tp", "dp_cp", "expt_dp", ...).
std::string_view name(GroupKind kind);

struct ParallelSizes {
  int world_size = 1;
  int tensor = 1;         // TP
  int context = 1;        // CP
  int expert = 1;         // EP
  int expert_tensor = 1;  // ETP; Megatron's default (ETP = TP) is the config's to apply
  int pipeline = 1;       // PP
  std::string order = "tp-cp-ep-dp-pp";
};

// A rank's coordinates in both grids (the pipeline stage is shared).
struct RankCoordinates {
  int tensor = 0;
  int context = 0;
  int data = 0;
  int pipeline = 0;
  int expert_tensor = 0;
  int expert = 0;
  int expert_data = 0;
};

// The decoder and expert grids of one run, and the groups of every kind.
class RankGrid {
 public:
  // Throws Error when a size is below 1, the order is not a permutation of
  // tp, cp, ep, dp, pp, or the world is not divisible by TP*CP*PP or
  // ETP*EP*PP, or the two grids disagree on the pipeline groups.
  explicit RankGrid(const ParallelSizes& sizes);

  int world_size() const { return decoder_.world_size(); }
  int data_parallel_size() const { return decoder_.size(ParallelDim::kData); }
  int expert_data_parallel_size() const { return expert_.size(ParallelDim::kData); }
  const OrthogonalGrid& decoder_grid() const { return decoder_; }
  const OrthogonalGrid& expert_grid() const { return expert_; }

  RankCoordinates coordinates(int rank) const;
  std::vector<RankGroup> groups(GroupKind kind) const;
  // Empty only for an embedding kind and a rank on an inner pipeline stage,
  // which belongs to no embedding group.
  std::optional<GroupMembership> membership(int rank, GroupKind kind) const;

 private:
  OrthogonalGrid decoder_;
  OrthogonalGrid expert_;
};

}  // namespace moebench
