#include "moebench/config/job_script.h"

#include <cctype>
#include <sstream>

#include "moebench/core/error.h"

namespace moebench::config {
namespace {

const std::string& variable(const ResolvedConfig& config, const std::string& name) {
  static const std::string empty;
  auto it = config.variables.find(name);
  return it == config.variables.end() ? empty : it->second;
}

}  // namespace

std::string shell_quote(std::string_view word) {
  bool plain = !word.empty();
  for (char c : word)
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || std::string_view("-_./=:,+@%").find(c) != std::string_view::npos);
  if (plain) return std::string(word);
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string shell_join(const std::vector<std::string>& words) {
  std::string line;
  for (const auto& word : words) line += (line.empty() ? "" : " ") + shell_quote(word);
  return line;
}

std::vector<std::string> training_command(const ResolvedConfig& config, const std::string& moebench_binary) {
  std::vector<std::string> command;
  if (variable(config, "PROFILE") == "1") {
    // Capture only the steps bracketed by cudaProfilerStart/Stop (--profile-step-start/end).
    const std::string report = variable(config, "OUTPUT_PATH") + "/nsys/" + job_name(config) + "_%q{SLURM_PROCID}";
    command = {"nsys", "profile", "-s", "none", "-t", "nvtx,cuda", "--force-overwrite", "true",
               "--capture-range=cudaProfilerApi", "--capture-range-end=stop", "-o", report};
  }
  command.push_back(moebench_binary);
  command.push_back("run");
  for (auto& token : config.flags.to_arguments()) command.push_back(token);
  return command;
}

std::string job_name(const ResolvedConfig& config) {
  std::string name = variable(config, "RUN_NAME");
  name += (name.empty() ? "" : "-") + config.model + "-TP" + variable(config, "TP") + "PP" + variable(config, "PP") +
          "EP" + variable(config, "EP") + "CP" + variable(config, "CP") + "VPP" + variable(config, "VPP") + "-MBS" +
          variable(config, "MBS") + "GBS" + variable(config, "GBS");
  if (!variable(config, "COMMENT").empty()) name += "-" + variable(config, "COMMENT");
  return name;
}

std::string slurm_script(const ResolvedConfig& config, const std::vector<std::string>& command) {
  std::ostringstream s;
  s << "#!/bin/bash\n";
  s << "#SBATCH --job-name=" << shell_quote(job_name(config)) << "\n";
  s << "#SBATCH --nodes=" << variable(config, "NNODES") << "\n";
  s << "#SBATCH --ntasks-per-node=" << variable(config, "GPUS_PER_NODE") << "\n";
  s << "#SBATCH --time=" << variable(config, "RUN_TIME") << "\n";
  if (!variable(config, "ACCOUNT").empty()) s << "#SBATCH --account=" << variable(config, "ACCOUNT") << "\n";
  if (!variable(config, "PARTITION").empty()) s << "#SBATCH --partition=" << variable(config, "PARTITION") << "\n";
  s << "#SBATCH --output=" << shell_quote(variable(config, "OUTPUT_PATH") + "/slurm_logs/%x-%j.out") << "\n";
  s << "\nset -euo pipefail\n";
  for (const auto& [name, value] : config.env_vars) s << "export " << name << "=" << shell_quote(value) << "\n";
  std::vector<std::string> srun = {"srun", "--mpi=pmix"};
  if (!variable(config, "CONTAINER_IMAGE").empty()) {
    srun.push_back("--container-image=" + variable(config, "CONTAINER_IMAGE"));
    if (!variable(config, "CONTAINER_MOUNTS").empty())
      srun.push_back("--container-mounts=" + variable(config, "CONTAINER_MOUNTS"));
    srun.push_back("--no-container-mount-home");
  }
  srun.insert(srun.end(), command.begin(), command.end());
  s << "\n" << shell_join(srun) << "\n";
  return s.str();
}

std::vector<std::string> interactive_command(const ResolvedConfig& config, const std::vector<std::string>& command,
                                             bool running_as_root) {
  if (variable(config, "NNODES") != "1")
    throw Error("NNODES=" + variable(config, "NNODES") +
                " but an interactive launch runs on this machine only; set NNODES=1 or use sbatch_benchmarking.sh");
  const std::string& ranks = variable(config, "GPUS_PER_NODE");
  if (ranks == "1") return command;
  std::vector<std::string> mpirun = {"mpirun", "-np", ranks, "--bind-to", "none"};
  // Ranks may outnumber cores when CPU ranks stand in for GPUs.
  mpirun.push_back("--oversubscribe");
  if (running_as_root) mpirun.push_back("--allow-run-as-root");
  for (const auto& [name, value] : config.env_vars) {
    mpirun.push_back("-x");
    mpirun.push_back(name + "=" + value);
  }
  mpirun.insert(mpirun.end(), command.begin(), command.end());
  return mpirun;
}

}  // namespace moebench::config
