#pragma once
// The harness of the tests that prove a parallel mapping exact: train a zoo
// model (configs/models, tiny-*) for a few iterations on the ranks of a
// communicator, under a mapping of the guide's variables (TP with or without
// SP, EP, PP with VPP and uneven stages, the rest data-parallel), and compare
// a parallel run with the one-rank run: the same logged losses and gradient
// norms, and every parameter a rank holds (gathered over tp into its
// one-rank tensor) equal to the one-rank parameter of its name. Every rank
// also runs the one-rank reference itself: the models are tiny and it needs
// no communication.
#include <filesystem>
#include <string>
#include <vector>

#include "moebench/core/tensor.h"
#include "moebench/dist/communicator.h"
#include "moebench/model/parameter.h"
#include "moebench/obs/iteration_log.h"

namespace moebench::train {

inline constexpr int kZooIterations = 3;
inline constexpr double kZooTolerance = 1e-5;  // relative, float32

// ZooRun::flags of the zoo model with dense layers only (MoE with TP needs
// sequence parallelism; these can go without).
inline const std::vector<std::string> kZooDenseFlags = {"--num-experts", "", "--moe-layer-freq", ""};

// A short run of a zoo model: GBS 8 (so 4 ranks still run 2 microbatches
// each), a warmup shorter than the run, no evaluation, small gradient
// buckets (every buffer is reduced in several collectives). The world's
// ranks left over by TP and PP are data-parallel; EP divides DP x TP.
struct ZooRun {
  std::string model{};
  bool distributed_optimizer = false;
  int tensor_parallel = 1;        // TP
  bool sequence_parallel = true;  // --sequence-parallel (the zoo configs' setting; no effect with TP 1)
  int expert_parallel = 1;        // EP
  int pipeline = 1;               // PP
  int virtual_stages = 1;         // VPP
  int first_stage_layers = 0;     // PP_FIRST; 0: even stages
  int last_stage_layers = 0;      // PP_LAST
  int num_layers = 0;             // 0: the model's row in configs/runtime.yaml
  int micro_batch = 1;            // MBS
  std::string dispatcher{};       // --moe-token-dispatcher-type; empty: the model's own
  std::vector<std::string> flags{};  // more Megatron flags, over everything else
  int iterations = kZooIterations;   // --train-iters
  std::filesystem::path save{};      // --save: a checkpoint at the end of the run (empty: none)
  std::filesystem::path load{};      // --load: resume from this checkpoint (empty: initialised weights)
  Device device = Device::cpu();     // where the model trains: a GPU (this rank's) trains in bf16

  // The same model and training on one rank (of the same device): TP, EP, PP and VPP 1, no checkpoint.
  ZooRun one_rank() const;
};

struct ZooOutcome {
  std::vector<IterationRecord> records;
  // This rank's parameters: names, one-rank shapes and final values, copied
  // to the host (tensor-parallel slices gathered over tp; a GPU model's fp32
  // main weights).
  std::vector<model::Parameter> weights;
};

// Resolves `run` for `world_size` ranks and validates it as `moebench run`
// does, before any group is built: throws the validation's Error.
void validate_zoo_run(const ZooRun& run, int world_size);

// Trains `run` on every rank of `world` (collective), each rank building its
// pipeline stage, its tp slices and its ep rank's experts. A GPU run needs
// `world` to move that GPU's tensors (train::communicator_for_placement).
ZooOutcome train_zoo_model(dist::Communicator& world, const ZooRun& run);

// Largest |value - reference| over the tensor, relative to its largest
// reference magnitude: Adam moves every element by about lr, so an
// element-wise ratio would judge elements that sit near zero too harshly.
double relative_difference(const Tensor& value, const Tensor& reference);

// The largest relative differences of a comparison.
struct ZooDifferences {
  double loss = 0;
  double grad_norm = 0;
  double weight = 0;
};

// Expects (gtest) that `parallel` logged each iteration that `reference`
// logged (at least one) with its losses and gradient norm, none skipped, and
// that each of its weights equals the reference weight of that name, within
// `tolerance` (relative). Weights must come in the reference's order.
ZooDifferences expect_matches_one_rank(const ZooOutcome& parallel, const ZooOutcome& reference,
                                       double tolerance = kZooTolerance);

}  // namespace moebench::train
