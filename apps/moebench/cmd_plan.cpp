// `moebench plan`: resolve a setup and show what it means before running it:
// the final config, the rank layout, parameters, FLOPs and memory per GPU.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "moebench/config/job_script.h"
#include "moebench/dist/rank_grid.h"
#include "moebench/train/flops.h"
#include "moebench/train/memory_estimate.h"
#include "moebench/train/parameter_count.h"

namespace moebench::cli {
namespace {

struct PlanOptions {
  SetupOptions setup;
  double gpu_memory_gb = 80;
  int groups_shown = 4;
};

std::string billions(double n) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f B", n / 1e9);
  return text;
}

std::string gigabytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%7.2f GB", bytes / 1e9);
  return text;
}

std::string format_groups(const std::vector<RankGroup>& groups, int shown) {
  std::ostringstream out;
  for (int g = 0; g < static_cast<int>(groups.size()) && g < shown; ++g) {
    out << (g ? " [" : "[");
    // Long groups show their first ranks; the stride says the rest.
    const size_t ranks_shown = std::min<size_t>(groups[g].size(), 8);
    for (size_t i = 0; i < ranks_shown; ++i) out << (i ? "," : "") << groups[g][i];
    if (ranks_shown < groups[g].size()) out << ",...";
    out << "]";
  }
  if (static_cast<int>(groups.size()) > shown) out << " ...";
  out << "  (" << groups.size() << " groups of " << groups.front().size() << ")";
  return out.str();
}

void print_layout(const Setup& setup, int shown) {
  const auto& p = setup.parallel;
  RankGrid grid(ParallelSizes{p.world_size, p.tensor, p.context, p.expert, p.expert_tensor, p.pipeline});
  std::printf("\n== Parallel layout: world %d = NNODES %s x GPUS_PER_NODE %s, order tp-cp-ep-dp-pp\n", p.world_size,
              setup.resolved.variables.at("NNODES").c_str(), setup.resolved.variables.at("GPUS_PER_NODE").c_str());
  std::printf("TP=%d PP=%d EP=%d expert-TP=%d CP=%d VPP=%d DP=%d expert-DP=%d\n", p.tensor, p.pipeline, p.expert,
              p.expert_tensor, p.context, p.virtual_stages, p.data_parallel(), p.expert_data_parallel());
  std::printf("MBS=%d GBS=%d microbatches per iteration=%d, sequence parallel %s, distributed optimizer %s\n",
              p.micro_batch, p.global_batch, p.num_microbatches(), p.sequence_parallel ? "on" : "off",
              p.distributed_optimizer ? "on" : "off");
  std::printf("layers per pipeline stage:");
  for (int layers : p.layers_per_stage(setup.model.num_layers)) std::printf(" %d", layers);
  if (p.virtual_stages > 1) std::printf("  (LAYERS_PER_VP=%s)", setup.resolved.variables.at("LAYERS_PER_VP").c_str());
  std::printf("\n");
  for (GroupKind kind : {GroupKind::kTensor, GroupKind::kContext, GroupKind::kData, GroupKind::kPipeline,
                         GroupKind::kExpert, GroupKind::kExpertTensor, GroupKind::kExpertData, GroupKind::kEmbedding})
    std::printf("  %-8s %s\n", std::string(name(kind)).c_str(), format_groups(grid.groups(kind), shown).c_str());
}

void print_parameters(const Setup& setup) {
  const auto total = train::model_parameters(setup.model);
  const auto active = train::active_parameters(setup.model);
  std::printf("\n== Parameters\n");
  std::printf("total %s (experts %s), active per token %s\n", billions(total.total()).c_str(),
              billions(total.experts).c_str(), billions(active.total()).c_str());
  const auto stages = train::parameters_per_stage(setup.model, setup.parallel);
  // A token uses top-k of the experts, so on average that share of a rank's experts is active.
  const double expert_share =
      setup.model.is_moe() ? static_cast<double>(setup.model.moe.topk) / setup.model.moe.num_experts : 0;
  for (size_t s = 0; s < stages.size(); ++s)
    std::printf("  per rank of stage %zu: %s, active %s (dense %s, experts %s, embedding %s, output %s)\n", s,
                billions(stages[s].total()).c_str(),
                billions(stages[s].total() - stages[s].experts * (1 - expert_share)).c_str(),
                billions(stages[s].dense).c_str(), billions(stages[s].experts).c_str(),
                billions(stages[s].embedding).c_str(), billions(stages[s].output).c_str());
}

void print_flops(const Setup& setup) {
  const double flops = train::flops_per_iteration(setup.model, setup.parallel.global_batch);
  std::printf("\n== FLOPs per iteration (docs/flops.md)\n");
  std::printf("%.2f TFLOP per iteration, %.2f TFLOP per GPU\n", flops / 1e12, flops / 1e12 / setup.parallel.world_size);
}

bool print_memory(const Setup& setup, double gpu_memory_gb) {
  const auto recompute = train::recompute_config_from_flags(setup.resolved.flags);
  const auto m = train::estimate_memory(setup.model, setup.parallel, recompute, setup.optimizer_precision);
  std::printf("\n== Memory per GPU, stage %d (docs/memory-model.md)\n", m.stage);
  std::printf("  weights (bf16)             %s\n", gigabytes(m.weights).c_str());
  std::printf("  gradients (fp32)           %s\n", gigabytes(m.gradients).c_str());
  std::printf("  optimizer                  %s  (%s; replicated %s, distributed %s)\n",
              gigabytes(m.optimizer).c_str(), setup.optimizer_precision.describe().c_str(),
              gigabytes(m.optimizer_replicated).c_str(), gigabytes(m.optimizer_distributed).c_str());
  std::printf("  activations                %s  (%s per microbatch x %.2f in flight, recompute %s)\n",
              gigabytes(m.activations).c_str(), gigabytes(m.activations_per_microbatch).c_str(),
              m.microbatches_in_flight, recompute.full ? "full" : "none");
  if (m.kept_wgrad_operands > 0)
    std::printf("  expert wgrad operands      %s  (kept for %d microbatches: --moe-wgrad-microbatches %d)\n",
                gigabytes(m.kept_wgrad_operands).c_str(), m.kept_wgrad_microbatches,
                setup.model.moe.wgrad_microbatches);
  std::printf("  workspace                  %s\n", gigabytes(m.workspace).c_str());
  std::printf("  total                      %s\n", gigabytes(m.total()).c_str());
  const bool fits = m.total() <= gpu_memory_gb * 1e9;
  std::printf("verdict: %s %.0f GB (%.0f%%)\n", fits ? "fits in" : "DOES NOT FIT in", gpu_memory_gb,
              100.0 * m.total() / (gpu_memory_gb * 1e9));
  return fits;
}

}  // namespace

void add_plan_command(CLI::App& app, Action& action) {
  auto options = std::make_shared<PlanOptions>();
  auto* command = app.add_subcommand(
      "plan", "resolve MODEL and the guide's variables, validate, and show layout, parameters, FLOPs and memory");
  options->setup.add_to(*command);
  command->add_option("--gpu-memory-gb", options->gpu_memory_gb, "GPU memory to check the estimate against")
      ->capture_default_str();
  command->add_option("--groups-shown", options->groups_shown, "groups printed per kind")->capture_default_str();
  command->callback([options, command, &action] {
    action = [options, extras = command->remaining()] {
      Setup setup = validated_setup(resolve_from_environment(extras, options->setup.model));
      std::printf("== moebench plan: %s\n\n== Variables\n", setup.resolved.model.c_str());
      for (const auto& [name, value] : setup.resolved.variables)
        if (!value.empty()) std::printf("%s=%s\n", name.c_str(), config::shell_quote(value).c_str());
      std::printf("\n== Training command\nmoebench run %s\n", config::shell_join(setup.resolved.flags.to_arguments()).c_str());
      print_layout(setup, options->groups_shown);
      print_parameters(setup);
      print_flops(setup);
      // A setup that cannot fit is an error, as a failed launch would be.
      return print_memory(setup, options->gpu_memory_gb) ? 0 : 2;
    };
  });
}

}  // namespace moebench::cli
