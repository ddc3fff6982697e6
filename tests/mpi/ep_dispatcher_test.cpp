// The expert-parallel token dispatchers against one process holding every
// token. Each rank builds the same global problem from a fixed seed (tokens,
// top-k routing with dropped slots, an expert no token picks, a rank without
// tokens where the dispatcher allows it), dispatches its own tokens, applies
// a toy expert y = (e + 1) * x + e to the rows of its local experts, combines,
// and runs both backwards; every result is compared with the reference
// computed directly from the global problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "moebench/dist/parallel_state.h"
#include "moebench/model/moe/allgather_token_dispatcher.h"
#include "moebench/model/moe/alltoall_token_dispatcher.h"
#include "mpi_test_world.h"

namespace moebench::model {
namespace {

using dist::test_world;

// Every rank's tokens, rank-major, as one process would hold them.
struct GlobalProblem {
  int64_t experts = 0, topk = 0, hidden = 0;
  std::vector<int64_t> tokens_of_rank;  // [token-group size]
  std::vector<float> inp;               // [T, hidden]
  std::vector<int64_t> routing_map;     // [T, topk], -1 = dropped
  std::vector<float> probs;             // [T, topk], 0 when dropped
  std::vector<float> dout;              // [T, hidden]: gradient arriving at combine's output

  int64_t total_tokens() const {
    return std::accumulate(tokens_of_rank.begin(), tokens_of_rank.end(), int64_t{0});
  }
  int64_t first_token(int rank) const {
    return std::accumulate(tokens_of_rank.begin(), tokens_of_rank.begin() + rank, int64_t{0});
  }
};

struct ProblemShape {
  uint32_t seed = 1;
  int64_t experts = 8, topk = 2, hidden = 6;
  std::vector<int64_t> tokens_of_rank;
  std::set<int64_t> unused_experts;  // no token routes to these
  int rank_with_dropped_slots = -1;  // every slot of this rank's tokens is dropped
};

GlobalProblem make_problem(const ProblemShape& shape) {
  std::mt19937 gen(shape.seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f), prob(0.05f, 1.0f);
  GlobalProblem p{shape.experts, shape.topk, shape.hidden, shape.tokens_of_rank, {}, {}, {}, {}};
  std::vector<int64_t> candidates;
  for (int64_t e = 0; e < shape.experts; ++e)
    if (!shape.unused_experts.count(e)) candidates.push_back(e);
  for (int rank = 0; rank < int(shape.tokens_of_rank.size()); ++rank) {
    for (int64_t t = 0; t < shape.tokens_of_rank[rank]; ++t) {
      std::shuffle(candidates.begin(), candidates.end(), gen);
      for (int64_t k = 0; k < shape.topk; ++k) {
        // About one slot in six is dropped, as capacity dropping would.
        const bool dropped = rank == shape.rank_with_dropped_slots || gen() % 6 == 0;
        p.routing_map.push_back(dropped ? -1 : candidates[k]);
        p.probs.push_back(dropped ? 0.0f : prob(gen));
      }
      for (int64_t c = 0; c < shape.hidden; ++c) {
        p.inp.push_back(value(gen));
        p.dout.push_back(value(gen));
      }
    }
  }
  return p;
}

float toy_expert(int64_t expert, float x) { return float(expert + 1) * x + float(expert); }

// What one process holding every token computes.
struct Reference {
  std::vector<float> out, dinp, dprobs;  // [T, hidden], [T, hidden], [T, topk]
};

Reference reference(const GlobalProblem& p) {
  const int64_t tokens = p.total_tokens();
  Reference r{std::vector<float>(tokens * p.hidden, 0.0f),
              std::vector<float>(tokens * p.hidden, 0.0f),
              std::vector<float>(tokens * p.topk, 0.0f)};
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < p.topk; ++k) {
      const int64_t slot = t * p.topk + k, e = p.routing_map[slot];
      if (e < 0) continue;
      for (int64_t c = 0; c < p.hidden; ++c) {
        const int64_t i = t * p.hidden + c;
        const float y = toy_expert(e, p.inp[i]);
        r.out[i] += p.probs[slot] * y;
        r.dinp[i] += p.probs[slot] * float(e + 1) * p.dout[i];
        r.dprobs[slot] += p.dout[i] * y;
      }
    }
  return r;
}

// The rows an expert should receive: the inputs of the tokens routed to it,
// in global token order.
std::vector<float> reference_expert_rows(const GlobalProblem& p, int64_t expert) {
  std::vector<float> rows;
  for (int64_t t = 0; t < p.total_tokens(); ++t)
    for (int64_t k = 0; k < p.topk; ++k)
      if (p.routing_map[t * p.topk + k] == expert)
        rows.insert(rows.end(), p.inp.begin() + t * p.hidden, p.inp.begin() + (t + 1) * p.hidden);
  return rows;
}

// Rows [first_token, first_token + count) of a [T, width] array, as a tensor.
template <typename T>
Tensor rows_of(const std::vector<T>& values, int64_t first_token, int64_t count, int64_t width) {
  return Tensor::from_vector(std::vector<T>(values.begin() + first_token * width,
                                            values.begin() + (first_token + count) * width),
                             {count, width});
}

// actual [rows, width] against rows [first_row, first_row + rows) of a
// reference array [T, width].
void expect_close(const Tensor& actual, const std::vector<float>& expected, int64_t first_row,
                  int64_t rows, int64_t width, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(actual.shape(), (std::vector<int64_t>{rows, width}));
  const float* a = actual.data<float>();
  const float* e = expected.data() + first_row * width;
  double max_error = 0;
  for (int64_t i = 0; i < rows * width; ++i)
    max_error = std::max(max_error, std::abs(double(a[i]) - e[i]) / (1.0 + std::abs(e[i])));
  EXPECT_LT(max_error, 1e-5) << "max relative error " << max_error;
}

// Applies the toy expert to rows grouped by local expert (forward), or its
// backward, d x = (e + 1) * d y; `share` is this rank's part of a TP-sharded
// expert, whose partial outputs the dispatcher sums.
Tensor apply_local_experts(const Tensor& rows, const std::vector<int64_t>& tokens_per_local_expert,
                           int64_t first_local_expert, float share, bool backward) {
  Tensor out = Tensor::empty(rows.shape(), DType::F32);
  const int64_t hidden = rows.size(1);
  const float* x = rows.data<float>();
  float* y = out.data<float>();
  int64_t row = 0;
  for (size_t l = 0; l < tokens_per_local_expert.size(); ++l) {
    const int64_t e = first_local_expert + int64_t(l);
    for (int64_t end = row + tokens_per_local_expert[l]; row < end; ++row)
      for (int64_t c = 0; c < hidden; ++c) {
        const int64_t i = row * hidden + c;
        y[i] = share * (backward ? float(e + 1) * x[i] : toy_expert(e, x[i]));
      }
  }
  EXPECT_EQ(row, rows.size(0));
  return out;
}

// One microbatch through dispatch, experts, combine and both backwards on
// this rank (whose place in the token group is `token_rank`), checked
// against the reference at every step.
template <typename Dispatcher>
void run_and_compare(const Dispatcher& dispatcher, const GlobalProblem& p, int token_rank,
                     float expert_share) {
  const Reference ref = reference(p);
  const int64_t first = p.first_token(token_rank), tokens = p.tokens_of_rank[token_rank];
  const Routing routing{rows_of(p.routing_map, first, tokens, p.topk),
                        rows_of(p.probs, first, tokens, p.topk)};
  typename Dispatcher::Handle handle;
  const Tensor expert_in =
      dispatcher.dispatch(rows_of(p.inp, first, tokens, p.hidden), routing, handle);

  std::vector<float> expected_in;
  std::vector<int64_t> expected_counts;
  for (int64_t l = 0; l < dispatcher.num_local_experts(); ++l) {
    const std::vector<float> rows = reference_expert_rows(p, dispatcher.first_local_expert() + l);
    expected_in.insert(expected_in.end(), rows.begin(), rows.end());
    expected_counts.push_back(int64_t(rows.size()) / p.hidden);
  }
  ASSERT_EQ(handle.tokens_per_local_expert, expected_counts);
  ASSERT_EQ(expert_in.numel(), int64_t(expected_in.size()));
  EXPECT_TRUE(std::equal(expected_in.begin(), expected_in.end(), expert_in.data<float>()))
      << "rows of the local experts differ from the global order";

  const Tensor expert_out =
      apply_local_experts(expert_in, handle.tokens_per_local_expert,
                          dispatcher.first_local_expert(), expert_share, /*backward=*/false);
  expect_close(dispatcher.combine(expert_out, handle), ref.out, first, tokens, p.hidden, "combine");

  Tensor dprobs;
  const Tensor dexpert_out =
      dispatcher.combine_backward(rows_of(p.dout, first, tokens, p.hidden), handle, dprobs);
  expect_close(dprobs, ref.dprobs, first, tokens, p.topk, "combine_backward dprobs");
  const Tensor dexpert_in =
      apply_local_experts(dexpert_out, handle.tokens_per_local_expert,
                          dispatcher.first_local_expert(), expert_share, /*backward=*/true);
  expect_close(dispatcher.dispatch_backward(dexpert_in, handle), ref.dinp, first, tokens, p.hidden,
               "dispatch_backward dinp");
}

// Uneven shapes for an EP group of `ep` ranks: E = 4 * ep, expert 1 unused,
// and on more than two ranks all of rank 2's experts unused, so it receives
// nothing.
ProblemShape uneven_shape(int ep, std::vector<int64_t> tokens_of_rank) {
  ProblemShape shape;
  shape.experts = 4 * ep;
  shape.topk = 3;
  shape.tokens_of_rank = std::move(tokens_of_rank);
  shape.unused_experts = {1};
  if (ep > 2)
    for (int64_t e = 8; e < 12; ++e) shape.unused_experts.insert(e);
  return shape;
}

ParallelSizes expert_parallel_over_world() {
  const int n = test_world().size();
  return {.world_size = n, .expert = n};
}

TEST(AllToAllTokenDispatcher, MatchesOneProcessWithUnevenTokens) {
  const int n = test_world().size();
  const dist::ParallelState state(test_world(), expert_parallel_over_world());
  // Rank 1 has no tokens at all, so it sends nothing.
  std::vector<int64_t> tokens_of_rank = {7, 0, 13, 4};
  tokens_of_rank.resize(n);
  const GlobalProblem problem = make_problem(uneven_shape(n, tokens_of_rank));
  const AllToAllTokenDispatcher dispatcher(problem.experts, state);
  EXPECT_EQ(dispatcher.num_local_experts(), 4);
  EXPECT_EQ(dispatcher.first_local_expert(), 4 * test_world().rank());
  run_and_compare(dispatcher, problem, state.group(GroupKind::kExpert).rank(), 1.0f);
}

TEST(AllToAllTokenDispatcher, TopOneWithOneExpertPerRank) {
  const int n = test_world().size();
  const dist::ParallelState state(test_world(), expert_parallel_over_world());
  ProblemShape shape;
  shape.seed = 7;
  shape.experts = n;
  shape.topk = 1;
  shape.hidden = 3;
  for (int r = 0; r < n; ++r) shape.tokens_of_rank.push_back(5 + 3 * r);
  const GlobalProblem problem = make_problem(shape);
  run_and_compare(AllToAllTokenDispatcher(problem.experts, state), problem, test_world().rank(),
                  1.0f);
}

// Two microbatches in flight, each with its own handle: forward both, then
// backward in reverse order, as a pipeline schedule would.
TEST(AllToAllTokenDispatcher, HandlesKeepMicrobatchesApart) {
  const int n = test_world().size();
  const int rank = test_world().rank();
  const dist::ParallelState state(test_world(), expert_parallel_over_world());
  std::vector<GlobalProblem> problems;
  for (uint32_t seed : {11u, 12u}) {
    ProblemShape shape = uneven_shape(n, std::vector<int64_t>(n, 0));
    shape.seed = seed;
    for (int r = 0; r < n; ++r) shape.tokens_of_rank[r] = 3 + int64_t(seed + 2 * r) % 5;
    problems.push_back(make_problem(shape));
  }
  const AllToAllTokenDispatcher dispatcher(problems[0].experts, state);
  std::vector<AllToAllTokenDispatcher::Handle> handles(2);
  std::vector<Tensor> outs;
  for (int m = 0; m < 2; ++m) {
    const GlobalProblem& p = problems[m];
    const int64_t first = p.first_token(rank), tokens = p.tokens_of_rank[rank];
    const Routing routing{rows_of(p.routing_map, first, tokens, p.topk),
                          rows_of(p.probs, first, tokens, p.topk)};
    const Tensor expert_in =
        dispatcher.dispatch(rows_of(p.inp, first, tokens, p.hidden), routing, handles[m]);
    outs.push_back(
        dispatcher.combine(apply_local_experts(expert_in, handles[m].tokens_per_local_expert,
                                               dispatcher.first_local_expert(), 1.0f, false),
                           handles[m]));
  }
  for (int m = 1; m >= 0; --m) {
    const GlobalProblem& p = problems[m];
    const Reference ref = reference(p);
    const int64_t first = p.first_token(rank), tokens = p.tokens_of_rank[rank];
    expect_close(outs[m], ref.out, first, tokens, p.hidden, "combine");
    Tensor dprobs;
    const Tensor dexpert_out =
        dispatcher.combine_backward(rows_of(p.dout, first, tokens, p.hidden), handles[m], dprobs);
    expect_close(dprobs, ref.dprobs, first, tokens, p.topk, "dprobs");
    const Tensor dinp = dispatcher.dispatch_backward(
        apply_local_experts(dexpert_out, handles[m].tokens_per_local_expert,
                            dispatcher.first_local_expert(), 1.0f, true),
        handles[m]);
    expect_close(dinp, ref.dinp, first, tokens, p.hidden, "dinp");
  }
}

// EP 2 with expert-DP 2: two ep groups side by side, each its own problem;
// the dispatcher must talk to its ep group only.
TEST(AllToAllTokenDispatcher, TwoExpertGroupsOnFourRanks) {
  if (test_world().size() != 4) GTEST_SKIP() << "needs 4 ranks";
  const dist::ParallelState state(test_world(), {.world_size = 4, .expert = 2});
  const GroupMembership& ep = state.membership(GroupKind::kExpert);
  ProblemShape shape = uneven_shape(2, {6 + 4 * int64_t(ep.group_index), 3});
  shape.seed = 20 + uint32_t(ep.group_index);
  const GlobalProblem problem = make_problem(shape);
  run_and_compare(AllToAllTokenDispatcher(problem.experts, state), problem, ep.rank_in_group, 1.0f);
}

TEST(AllToAllTokenDispatcher, RejectsExpertsNotDivisibleByExpertParallelSize) {
  const dist::ParallelState state(test_world(), expert_parallel_over_world());
  EXPECT_THROW(AllToAllTokenDispatcher(test_world().size() + 1, state), Error);
}

TEST(AllToAllTokenDispatcher, RejectsExpertTensorParallelism) {
  if (test_world().size() != 4) GTEST_SKIP() << "needs 4 ranks";
  const dist::ParallelState state(test_world(), {.world_size = 4, .expert = 2, .expert_tensor = 2});
  EXPECT_THROW(AllToAllTokenDispatcher(4, state), Error);
}

TEST(AllGatherTokenDispatcher, MatchesOneProcessWithSkewedRouting) {
  const int n = test_world().size();
  const dist::ParallelState state(test_world(), expert_parallel_over_world());
  // All-gather needs equal token counts; rank 1 routes nothing instead (all
  // its slots dropped).
  ProblemShape shape = uneven_shape(n, std::vector<int64_t>(n, 9));
  shape.seed = 3;
  shape.rank_with_dropped_slots = 1;
  const GlobalProblem problem = make_problem(shape);
  const AllGatherTokenDispatcher dispatcher(problem.experts, state);
  EXPECT_EQ(dispatcher.first_local_expert(), 4 * test_world().rank());
  run_and_compare(dispatcher, problem, test_world().rank(), 1.0f);
}

TEST(AllGatherTokenDispatcher, RanksWithoutTokens) {
  const int n = test_world().size();
  const dist::ParallelState state(test_world(), expert_parallel_over_world());
  const GlobalProblem problem = make_problem(uneven_shape(n, std::vector<int64_t>(n, 0)));
  run_and_compare(AllGatherTokenDispatcher(problem.experts, state), problem, test_world().rank(),
                  1.0f);
}

// Expert-TP 2 x EP 2: tokens are gathered over all four ranks, both TP ranks
// of an expert see the same rows, and each returns half of the expert's
// output (its shard's partial sum), which the reduce-scatter adds up.
TEST(AllGatherTokenDispatcher, ExpertTensorParallelPartialOutputsAreSummed) {
  if (test_world().size() != 4) GTEST_SKIP() << "needs 4 ranks";
  const dist::ParallelState state(test_world(), {.world_size = 4, .expert = 2, .expert_tensor = 2});
  ProblemShape shape;
  shape.seed = 5;
  shape.experts = 6;
  shape.topk = 2;
  shape.tokens_of_rank = {5, 5, 5, 5};
  shape.unused_experts = {4};
  const GlobalProblem problem = make_problem(shape);
  const AllGatherTokenDispatcher dispatcher(problem.experts, state);
  EXPECT_EQ(dispatcher.first_local_expert(), 3 * state.group(GroupKind::kExpert).rank());
  run_and_compare(dispatcher, problem, state.group(GroupKind::kExpertTensorAndExpert).rank(), 0.5f);
}

}  // namespace
}  // namespace moebench::model
