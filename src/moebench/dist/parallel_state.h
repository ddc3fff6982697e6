#pragma once
// ParallelState: this rank's place in the rank grid and one communicator per
// parallel group it belongs to (tp, cp, dp, dp_cp, pp, ep, expt_tp, expt_dp,
// embd, ... every GroupKind), built once at start-up and passed to whatever
// communicates. An explicit object rather than Megatron's module globals, so
// a test can hold several.
#include <array>
#include <memory>
#include <optional>

#include "moebench/dist/communicator.h"
#include "moebench/dist/rank_grid.h"

namespace moebench::dist {

class ParallelState {
 public:
  // Collective over `world`: every rank calls it with the same sizes, whose
  // world_size must be world.size(). Splits `world` once per group kind, so
  // each group's communicator ranks its members as rank_grid lists them.
  ParallelState(Communicator& world, const ParallelSizes& sizes);

  const RankGrid& grid() const { return grid_; }
  int world_rank() const { return world_rank_; }

  // False only for an embedding kind on an inner pipeline stage.
  bool is_member(GroupKind kind) const;
  // Both throw Error when this rank is in no group of that kind.
  Communicator& group(GroupKind kind) const;
  const GroupMembership& membership(GroupKind kind) const;

 private:
  struct Group {
    GroupMembership membership;
    std::unique_ptr<Communicator> communicator;
  };
  const Group& member_group(GroupKind kind) const;

  RankGrid grid_;
  int world_rank_ = 0;
  std::array<std::optional<Group>, kGroupKinds.size()> groups_;  // indexed by GroupKind
};

}  // namespace moebench::dist
