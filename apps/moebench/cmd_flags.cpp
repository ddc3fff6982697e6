// `moebench flags`: the Megatron-LM flags moebench understands.
#include <cstdio>

#include "commands.h"
#include "moebench/config/flag_registry.h"

namespace moebench::cli {

void add_flags_command(CLI::App& app, Action& action) {
  auto* command = app.add_subcommand("flags", "list the Megatron-LM flags moebench understands");
  command->callback([&action] {
    action = [] {
      for (const auto& spec : config::known_flags())
        std::printf("%-44s %s\n", std::string(spec.name).c_str(), std::string(spec.help).c_str());
      return 0;
    };
  });
}

}  // namespace moebench::cli
