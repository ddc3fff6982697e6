// What `moebench launch` writes and runs: shell quoting, the sbatch script,
// the training command (nsys-wrapped when profiling) and the one-machine
// mpirun line.
#include "moebench/config/job_script.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using Strings = std::vector<std::string>;

// A resolved DeepSeek-V2-Lite-like run, written by hand.
ResolvedConfig resolved() {
  ResolvedConfig c;
  c.model = "DeepSeek-V2-Lite";
  c.variables = {{"TP", "1"},           {"PP", "1"},          {"EP", "8"},
                 {"CP", "1"},           {"VPP", "1"},         {"MBS", "1"},
                 {"GBS", "512"},        {"NNODES", "2"},      {"GPUS_PER_NODE", "8"},
                 {"RUN_TIME", "00:20:00"}, {"PROFILE", "0"},  {"RUN_NAME", "bench"},
                 {"COMMENT", ""},       {"OUTPUT_PATH", "/out"}, {"ACCOUNT", ""},
                 {"PARTITION", ""},     {"CONTAINER_IMAGE", ""}, {"CONTAINER_MOUNTS", "/data:/data"}};
  c.env_vars = {{"CUDA_DEVICE_MAX_CONNECTIONS", "1"}, {"NOTE", "two words"}};
  c.flags = FlagMap::parse_arguments({"--num-layers", "27", "--bf16"});
  return c;
}

std::string error_of(const ResolvedConfig& c) {
  try {
    interactive_command(c, {"moebench", "run"}, false);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ShellQuote, PlainWordsStayBare) {
  EXPECT_EQ(shell_quote("abc"), "abc");
  EXPECT_EQ(shell_quote("--num-layers"), "--num-layers");
  EXPECT_EQ(shell_quote("/data/x_1.bin"), "/data/x_1.bin");
  EXPECT_EQ(shell_quote("--container-mounts=/a:/b,/c:/d"), "--container-mounts=/a:/b,/c:/d");
  EXPECT_EQ(shell_quote("user@host+1%x"), "user@host+1%x");
}

TEST(ShellQuote, SpecialWordsAreSingleQuoted) {
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("two words"), "'two words'");
  EXPECT_EQ(shell_quote("$HOME"), "'$HOME'");
  EXPECT_EQ(shell_quote("([0]+[1]*26)"), "'([0]+[1]*26)'");
  EXPECT_EQ(shell_quote("a;b"), "'a;b'");
  EXPECT_EQ(shell_quote("x\"y"), "'x\"y'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("'"), "''\\'''");
}

TEST(ShellQuote, JoinQuotesEachWord) {
  EXPECT_EQ(shell_join({"echo", "a b", "", "c"}), "echo 'a b' '' c");
  EXPECT_EQ(shell_join({}), "");
}

TEST(JobName, MappingAndComment) {
  ResolvedConfig c = resolved();
  EXPECT_EQ(job_name(c), "bench-DeepSeek-V2-Lite-TP1PP1EP8CP1VPP1-MBS1GBS512");
  c.variables["COMMENT"] = "ep8";
  c.variables["RUN_NAME"] = "";
  EXPECT_EQ(job_name(c), "DeepSeek-V2-Lite-TP1PP1EP8CP1VPP1-MBS1GBS512-ep8");
}

TEST(TrainingCommand, PlainRun) {
  EXPECT_EQ(training_command(resolved(), "/bin/moebench"),
            (Strings{"/bin/moebench", "run", "--num-layers", "27", "--bf16"}));
}

TEST(TrainingCommand, ProfileWrapsInNsys) {
  ResolvedConfig c = resolved();
  c.variables["PROFILE"] = "1";
  Strings command = training_command(c, "/bin/moebench");
  ASSERT_GE(command.size(), 2u);
  EXPECT_EQ(command[0], "nsys");
  EXPECT_EQ(command[1], "profile");
  EXPECT_THAT(command, testing::Contains("--capture-range=cudaProfilerApi"));
  EXPECT_THAT(command, testing::Contains("--capture-range-end=stop"));
  // The report goes under OUTPUT_PATH/nsys, one per rank.
  auto o = std::find(command.begin(), command.end(), "-o");
  ASSERT_NE(o, command.end());
  ASSERT_NE(o + 1, command.end());
  EXPECT_EQ(*(o + 1), "/out/nsys/bench-DeepSeek-V2-Lite-TP1PP1EP8CP1VPP1-MBS1GBS512_%q{SLURM_PROCID}");
  // The training command follows, unchanged, at the end.
  Strings tail(command.end() - 5, command.end());
  EXPECT_EQ(tail, (Strings{"/bin/moebench", "run", "--num-layers", "27", "--bf16"}));
  EXPECT_LT(o - command.begin(), static_cast<long>(command.size()) - 5);
}

TEST(SlurmScript, HeaderLines) {
  const std::string script = slurm_script(resolved(), {"/bin/moebench", "run", "--bf16"});
  EXPECT_TRUE(script.starts_with("#!/bin/bash\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --job-name=bench-DeepSeek-V2-Lite-TP1PP1EP8CP1VPP1-MBS1GBS512\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --nodes=2\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --ntasks-per-node=8\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --time=00:20:00\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --output=/out/slurm_logs/%x-%j.out\n"));
  // Empty account and partition: no lines for them.
  EXPECT_THAT(script, Not(HasSubstr("--account")));
  EXPECT_THAT(script, Not(HasSubstr("--partition")));
}

TEST(SlurmScript, AccountAndPartitionWhenSet) {
  ResolvedConfig c = resolved();
  c.variables["ACCOUNT"] = "acct1";
  c.variables["PARTITION"] = "batch";
  const std::string script = slurm_script(c, {"true"});
  EXPECT_THAT(script, HasSubstr("#SBATCH --account=acct1\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --partition=batch\n"));
  // Every #SBATCH line comes before the first command.
  EXPECT_LT(script.rfind("#SBATCH"), script.find("set -euo pipefail"));
}

TEST(SlurmScript, OutputPathWithSpaceIsQuoted) {
  ResolvedConfig c = resolved();
  c.variables["OUTPUT_PATH"] = "/my out";
  EXPECT_THAT(slurm_script(c, {"true"}), HasSubstr("#SBATCH --output='/my out/slurm_logs/%x-%j.out'\n"));
}

TEST(SlurmScript, ExportsEnvVarsAndRunsSrunWithPmix) {
  const std::string script = slurm_script(resolved(), {"/bin/moebench", "run", "--data-path", "a b"});
  EXPECT_THAT(script, HasSubstr("\nexport CUDA_DEVICE_MAX_CONNECTIONS=1\n"));
  EXPECT_THAT(script, HasSubstr("\nexport NOTE='two words'\n"));
  EXPECT_THAT(script, HasSubstr("\nsrun --mpi=pmix /bin/moebench run --data-path 'a b'\n"));
  EXPECT_LT(script.find("export NOTE"), script.find("srun"));
  EXPECT_THAT(script, Not(HasSubstr("--container")));
}

TEST(SlurmScript, ContainerFlagsOnlyWithImage) {
  ResolvedConfig c = resolved();
  c.variables["CONTAINER_IMAGE"] = "/images/moebench.sqsh";
  EXPECT_THAT(slurm_script(c, {"moebench"}),
              HasSubstr("\nsrun --mpi=pmix --container-image=/images/moebench.sqsh --container-mounts=/data:/data "
                        "--no-container-mount-home moebench\n"));
  c.variables["CONTAINER_MOUNTS"] = "";
  const std::string script = slurm_script(c, {"moebench"});
  EXPECT_THAT(script, HasSubstr("--container-image=/images/moebench.sqsh --no-container-mount-home moebench\n"));
  EXPECT_THAT(script, Not(HasSubstr("--container-mounts")));
}

TEST(InteractiveCommand, OneRankIsTheCommandItself) {
  ResolvedConfig c = resolved();
  c.variables["NNODES"] = "1";
  c.variables["GPUS_PER_NODE"] = "1";
  EXPECT_EQ(interactive_command(c, {"moebench", "run", "--bf16"}, false), (Strings{"moebench", "run", "--bf16"}));
  EXPECT_EQ(interactive_command(c, {"moebench", "run"}, true), (Strings{"moebench", "run"}));
}

TEST(InteractiveCommand, SeveralRanksUseMpirun) {
  ResolvedConfig c = resolved();
  c.variables["NNODES"] = "1";
  c.variables["GPUS_PER_NODE"] = "4";
  Strings line = interactive_command(c, {"moebench", "run", "--bf16"}, false);
  ASSERT_GE(line.size(), 3u);
  EXPECT_EQ(line[0], "mpirun");
  EXPECT_EQ(line[1], "-np");
  EXPECT_EQ(line[2], "4");
  EXPECT_THAT(line, Not(testing::Contains("--allow-run-as-root")));
  // Each ENV_VAR exported to the ranks as one -x NAME=value (no shell quoting: no shell in between).
  auto x1 = std::find(line.begin(), line.end(), "CUDA_DEVICE_MAX_CONNECTIONS=1");
  ASSERT_NE(x1, line.end());
  EXPECT_EQ(*(x1 - 1), "-x");
  auto x2 = std::find(line.begin(), line.end(), "NOTE=two words");
  ASSERT_NE(x2, line.end());
  EXPECT_EQ(*(x2 - 1), "-x");
  EXPECT_EQ(Strings(line.end() - 3, line.end()), (Strings{"moebench", "run", "--bf16"}));
  EXPECT_THAT(interactive_command(c, {"moebench"}, true), testing::Contains("--allow-run-as-root"));
}

TEST(InteractiveCommand, SeveralNodesRejected) {
  ResolvedConfig c = resolved();
  EXPECT_THAT(error_of(c), AllOf(HasSubstr("NNODES=2"), HasSubstr("set NNODES=1")));
  c.variables["NNODES"] = "1";
  EXPECT_EQ(error_of(c), "");
}

}  // namespace
}  // namespace moebench::config
