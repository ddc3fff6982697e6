#pragma once
// The harness of the tests that prove a parallel mapping exact: train a zoo
// model (configs/models, tiny-*) for a few iterations on the ranks of a
// communicator, under a mapping of the guide's variables, and compare a
// parallel run with the one-rank run: the same logged losses and gradient
// norms, and every parameter a rank holds equal to the one-rank parameter of
// its name. Every rank also runs the one-rank reference itself: the models
// are tiny and it needs no communication.
#include <string>
#include <vector>

#include "moebench/dist/communicator.h"
#include "moebench/model/parameter.h"
#include "moebench/obs/iteration_log.h"

namespace moebench::train {

inline constexpr int kZooIterations = 3;
inline constexpr double kZooTolerance = 1e-5;  // relative, float32

// A short run of a zoo model: MBS 1, GBS 8 (so 4 ranks still run 2
// microbatches each), a warmup shorter than the run, no evaluation, small
// gradient buckets (every buffer is reduced in several collectives). The
// world's ranks left over by PP and EP are data-parallel.
struct ZooRun {
  std::string model{};
  bool distributed_optimizer = false;
  int expert_parallel = 1;       // EP
  int pipeline = 1;              // PP
  int virtual_stages = 1;        // VPP
  int first_stage_layers = 0;    // PP_FIRST; 0: even stages
  int last_stage_layers = 0;     // PP_LAST
  int num_layers = 0;            // 0: the model's row in configs/runtime.yaml
  std::string dispatcher{};      // --moe-token-dispatcher-type; empty: the model's own
  std::vector<std::string> flags{};  // more Megatron flags, over everything else
  int iterations = kZooIterations;  // --train-iters
  std::string save{};                // --save: a checkpoint at the end of the run
  std::string load{};                // --load: resume from this checkpoint

  // The same model and training on one rank: EP, PP and VPP 1.
  ZooRun one_rank() const;
};

struct ZooOutcome {
  std::vector<IterationRecord> records;
  std::vector<model::Parameter> weights;  // this rank's parameters: names and final values, copied
};

// Trains `run` on every rank of `world` (collective), each rank building its
// pipeline stage and its ep rank's experts.
ZooOutcome train_zoo_model(dist::Communicator& world, const ZooRun& run);

// The largest relative differences of a comparison.
struct ZooDifferences {
  double loss = 0;
  double grad_norm = 0;
  double weight = 0;
};

// Expects (gtest) that `parallel` logged every iteration as `reference` did,
// none skipped, and that each of its weights equals the reference weight of
// that name, within kZooTolerance. Weights must come in the reference's order.
ZooDifferences expect_matches_one_rank(const ZooOutcome& parallel, const ZooOutcome& reference);

}  // namespace moebench::train
