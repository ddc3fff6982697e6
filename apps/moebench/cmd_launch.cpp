// `moebench launch`: the guide's sbatch_benchmarking.sh and
// interactive_benchmarking.sh. DRY_RUN=1 prints what would run.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "moebench/config/job_script.h"
#include "moebench/core/atomic_file.h"
#include "moebench/core/error.h"

namespace moebench::cli {
namespace fs = std::filesystem;
namespace {

struct LaunchOptions {
  SetupOptions setup;
  bool interactive = false;
  bool dry_run = false;
};

std::string own_binary() {
  std::error_code error;
  fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (error) throw Error("cannot locate the moebench binary through /proc/self/exe: " + error.message());
  return exe.string();
}

std::vector<char*> c_arguments(std::vector<std::string>& words) {
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  return argv;
}

// Runs `words` and waits; returns its exit status.
int run_and_wait(std::vector<std::string> words) {
  pid_t pid = fork();
  if (pid < 0) throw Error("cannot fork to run " + words.front());
  if (pid == 0) {
    auto argv = c_arguments(words);
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "moebench: error: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    if (::access((fs::path(dirs.substr(start, end - start)) / program).c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

int submit_to_slurm(const Setup& setup, const std::vector<std::string>& command, bool dry_run) {
  const std::string script = config::slurm_script(setup.resolved, command);
  if (dry_run) {
    std::cout << "# DRY_RUN=1: nothing submitted\n# sbatch script:\n" << script
              << "\n# training command:\n" << config::shell_join(command) << "\n";
    return 0;
  }
  if (!on_path("sbatch"))
    throw Error("sbatch is not on PATH; submit from a Slurm login node, or run interactive_benchmarking.sh");
  const fs::path output = setup.resolved.variables.at("OUTPUT_PATH");
  if (output.empty()) throw Error("OUTPUT_PATH is empty; set it in the cluster file or the environment");
  fs::create_directories(output / "slurm_logs");
  const auto stamp = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  const fs::path path = output / "slurm_scripts" / (config::job_name(setup.resolved) + "-" + std::to_string(stamp) + ".sh");
  write_file_atomically(path, script);
  std::cout << "sbatch script: " << path.string() << "\n" << std::flush;
  return run_and_wait({"sbatch", path.string()});
}

int run_interactive(const Setup& setup, const std::vector<std::string>& command, bool dry_run) {
  std::vector<std::string> words = config::interactive_command(setup.resolved, command, geteuid() == 0);
  if (dry_run) {
    std::cout << "# DRY_RUN=1: nothing run\n";
    for (const auto& [name, value] : setup.resolved.env_vars)
      std::cout << "export " << name << "=" << config::shell_quote(value) << "\n";
    std::cout << config::shell_join(words) << "\n";
    return 0;
  }
  for (const auto& [name, value] : setup.resolved.env_vars) setenv(name.c_str(), value.c_str(), 1);
  std::cout << config::shell_join(words) << "\n" << std::flush;
  return run_and_wait(words);
}

}  // namespace

void add_launch_command(CLI::App& app, Action& action) {
  auto options = std::make_shared<LaunchOptions>();
  auto* command = app.add_subcommand(
      "launch", "run a benchmark as the guide's scripts do: sbatch (default) or on this machine (--interactive); "
                "extra --flags are appended to the training command");
  options->setup.add_to(*command);
  command->add_flag("--interactive", options->interactive, "run on this machine (mpirun with GPUS_PER_NODE ranks)");
  command->add_flag("--dry-run", options->dry_run, "print the script and command, run nothing (as DRY_RUN=1)");
  command->callback([options, command, &action] {
    action = [options, extras = command->remaining()] {
      Setup setup = validated_setup(resolve_from_environment(extras, options->setup.model));
      const bool dry_run = options->dry_run || setup.resolved.variables["DRY_RUN"] == "1";
      const std::vector<std::string> training = config::training_command(setup.resolved, own_binary());
      return options->interactive ? run_interactive(setup, training, dry_run)
                                  : submit_to_slurm(setup, training, dry_run);
    };
  });
}

}  // namespace moebench::cli
