#include "moebench/dist/parallel_state.h"

#include <string>

#include "moebench/core/error.h"

namespace moebench::dist {
namespace {

size_t index_of(GroupKind kind) { return size_t(kind); }

const RankGrid& checked_grid(const RankGrid& grid, const Communicator& world) {
  if (grid.world_size() != world.size()) {
    throw Error("ParallelState got sizes for a world of " + std::to_string(grid.world_size()) +
                " ranks, but " + std::to_string(world.size()) +
                " ranks were launched; set world_size to the launched rank count");
  }
  return grid;
}

}  // namespace

ParallelState::ParallelState(Communicator& world, const ParallelSizes& sizes)
    : grid_(checked_grid(RankGrid(sizes), world)), world_rank_(world.rank()) {
  // Every rank splits once per kind, in the same order, as MPI requires.
  for (GroupKind kind : kGroupKinds) {
    std::optional<GroupMembership> membership = grid_.membership(world_rank_, kind);
    if (!membership) {
      world.split(std::nullopt, 0);
      continue;
    }
    std::unique_ptr<Communicator> communicator =
        world.split(membership->group_index, membership->rank_in_group);
    groups_[index_of(kind)] = Group{std::move(*membership), std::move(communicator)};
  }
}

bool ParallelState::is_member(GroupKind kind) const {
  return groups_[index_of(kind)].has_value();
}

Communicator& ParallelState::group(GroupKind kind) const {
  return *member_group(kind).communicator;
}

const GroupMembership& ParallelState::membership(GroupKind kind) const {
  return member_group(kind).membership;
}

const ParallelState::Group& ParallelState::member_group(GroupKind kind) const {
  const std::optional<Group>& group = groups_[index_of(kind)];
  if (!group) {
    throw Error("rank " + std::to_string(world_rank_) + " is in no " + std::string(name(kind)) +
                " group (an inner pipeline stage has no embedding group); check is_member first");
  }
  return *group;
}

}  // namespace moebench::dist
