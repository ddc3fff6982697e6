#include "moebench/train/gpu_rank_placement.h"

#include <string>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

constexpr const char* kSupported =
    "the GPU engine trains data-parallel only (TP=PP=EP=CP=1, one rank per GPU); run that mapping or use "
    "--device cpu";

void require_one(const char* setting, int value) {
  if (value != 1)
    throw Error(std::string("--device cuda with ") + setting + "=" + std::to_string(value) + ": " + kSupported);
}

}  // namespace

void require_gpu_data_parallel_mapping(const config::ParallelConfig& parallel) {
  require_one("TP", parallel.tensor);
  require_one("PP", parallel.pipeline);
  require_one("VPP", parallel.virtual_stages);
  require_one("EP", parallel.expert);
  require_one("CP", parallel.context);
  if (parallel.distributed_optimizer && parallel.data_parallel() > 1)
    throw Error("--device cuda with --use-distributed-optimizer and DP=" + std::to_string(parallel.data_parallel()) +
                ": the GPU engine trains data-parallel with plain Adam over all-reduced gradients; drop "
                "--use-distributed-optimizer or use --device cpu");
}

int gpu_of_local_rank(int local_rank, int visible_gpus) {
  if (local_rank < 0 || local_rank >= visible_gpus)
    throw Error("--device cuda: this rank is local rank " + std::to_string(local_rank) + " on its machine but sees " +
                std::to_string(visible_gpus) + " GPU" + (visible_gpus == 1 ? "" : "s") +
                "; start at most one rank per visible GPU on each machine (mpirun -np, srun --ntasks-per-node) "
                "and leave CUDA_VISIBLE_DEVICES listing all of them");
  return local_rank;
}

}  // namespace moebench::train
