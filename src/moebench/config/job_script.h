#pragma once
// What `moebench launch` runs: the training command line, the sbatch script
// that runs it under srun, and the mpirun line for one machine.
#include <string>
#include <string_view>
#include <vector>

#include "moebench/config/resolve.h"

namespace moebench::config {

// "moebench run <flags>", wrapped in nsys when PROFILE=1.
std::vector<std::string> training_command(const ResolvedConfig& config, const std::string& moebench_binary);

// The job's name: RUN_NAME, model, mapping and COMMENT.
std::string job_name(const ResolvedConfig& config);

// A complete sbatch script: #SBATCH header, the model's ENV_VARS, and
// `srun --mpi=pmix` (with container flags when CONTAINER_IMAGE is set).
std::string slurm_script(const ResolvedConfig& config, const std::vector<std::string>& command);

// The command for this machine: the training command itself for one rank,
// else mpirun with GPUS_PER_NODE ranks, exporting the model's ENV_VARS.
std::vector<std::string> interactive_command(const ResolvedConfig& config, const std::vector<std::string>& command,
                                             bool running_as_root);

// Quotes a word for bash only when it needs it.
std::string shell_quote(std::string_view word);
std::string shell_join(const std::vector<std::string>& words);

}  // namespace moebench::config
