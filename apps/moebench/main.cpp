// moebench: train and benchmark Mixture-of-Experts transformers.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "moebench/build_info.h"
#include "moebench/core/error.h"
#include "moebench/core/library_versions.h"

namespace {

void print_version() {
  std::cout << "moebench " << moebench::build_info::version << " (commit " << moebench::build_info::git_commit
            << ")\n";
  for (const auto& [library, version] : moebench::library_versions()) std::cout << library << " " << version << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moebench: train and benchmark Mixture-of-Experts transformers, Megatron-LM style"};
  app.require_subcommand(0, 1);
  bool version = false;
  app.add_flag("--version", version, "print version, git commit and GPU library versions");
  moebench::cli::Action action;
  moebench::cli::add_plan_command(app, action);
  moebench::cli::add_launch_command(app, action);
  moebench::cli::add_flags_command(app, action);
  moebench::cli::add_run_command(app, action);
  moebench::cli::add_logits_command(app, action);
  moebench::cli::add_convert_command(app, action);
  moebench::cli::add_preprocess_command(app, action);
  try {
    app.parse(argc, argv);
    if (version) {
      print_version();
      return 0;
    }
    if (!action) {
      std::cout << app.help();
      return 0;
    }
    return action();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const moebench::Error& e) {
    std::fprintf(stderr, "moebench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moebench: internal error: %s\n", e.what());
    return 3;
  }
}
