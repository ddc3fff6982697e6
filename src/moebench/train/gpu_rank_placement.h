#pragma once
// What a run on GPUs may be, and which GPU each rank takes: one process per
// GPU (mpirun -np N, srun --ntasks-per-node), data-parallel only. Tensor,
// pipeline, expert and context parallelism, and the distributed optimizer
// with DP > 1, are the CPU engine's so far. Checked before any group is built,
// so a run that asks for more fails with the message on every rank alike.
#include "moebench/config/parallel_config.h"

namespace moebench::train {

// Throws Error naming the first setting the GPU engine cannot run and what is
// supported (TP = PP = EP = CP = 1, VPP off, plain Adam when DP > 1).
void require_gpu_data_parallel_mapping(const config::ParallelConfig& parallel);

// The CUDA device of the rank that is `local_rank` among the ranks of its
// machine: the local rank itself. Throws Error when this process sees fewer
// GPUs than that (more ranks started per machine than GPUs visible to each).
int gpu_of_local_rank(int local_rank, int visible_gpus);

}  // namespace moebench::train
