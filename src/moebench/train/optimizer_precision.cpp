#include "moebench/train/optimizer_precision.h"

#include <initializer_list>
#include <string_view>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

constexpr std::string_view kPrecisionFlag = "--use-precision-aware-optimizer";

struct DTypeChoice {
  std::string_view token;  // Megatron's spelling
  DType dtype;
};

std::string megatron_name(DType dtype) { return dtype == DType::F32 ? "fp32" : std::string(name(dtype)); }

std::string spelled(std::initializer_list<DTypeChoice> choices) {
  std::string text;
  for (const DTypeChoice& choice : choices) text += (text.empty() ? "" : " or ") + std::string(choice.token);
  return text;
}

// The dtype `flag` asks for (fp32 when absent): one of `supported`. Megatron's
// other choices (`not_yet`) and unknown values are errors naming the supported ones.
DType dtype_flag(const config::FlagMap& flags, std::string_view flag, std::initializer_list<DTypeChoice> supported,
                 std::initializer_list<std::string_view> not_yet) {
  const std::string value = flags.get_string(flag, "fp32");
  DType dtype = DType::F32;
  bool found = false;
  for (const DTypeChoice& choice : supported)
    if (choice.token == value) dtype = choice.dtype, found = true;
  if (!found) {
    bool megatron_choice = false;
    for (std::string_view token : not_yet) megatron_choice = megatron_choice || token == value;
    throw Error(std::string(flag) + " " + value + (megatron_choice ? " is not supported yet" : " is not a valid value") +
                "; use " + spelled(supported));
  }
  if (dtype != DType::F32 && !flags.get_bool(kPrecisionFlag))
    throw Error(std::string(flag) + " " + value + " needs " + std::string(kPrecisionFlag) +
                " (as in Megatron-LM); add it, or use " + std::string(flag) + " fp32");
  return dtype;
}

}  // namespace

double OptimizerPrecision::state_bytes_per_parameter() const {
  return double(size_in_bytes(DType::F32) + size_in_bytes(exp_avg) + size_in_bytes(exp_avg_sq));
}

std::string OptimizerPrecision::describe() const {
  return "fp32 main, " + megatron_name(exp_avg) + " m, " + megatron_name(exp_avg_sq) + " v";
}

OptimizerPrecision optimizer_precision_from_flags(const config::FlagMap& flags) {
  const std::initializer_list<DTypeChoice> moment_dtypes = {{"fp32", DType::F32}, {"bf16", DType::BF16}};
  OptimizerPrecision precision;
  precision.exp_avg = dtype_flag(flags, "--exp-avg-dtype", moment_dtypes, {"fp16", "fp8"});
  precision.exp_avg_sq = dtype_flag(flags, "--exp-avg-sq-dtype", moment_dtypes, {"fp16", "fp8"});
  dtype_flag(flags, "--main-grads-dtype", {{"fp32", DType::F32}}, {"bf16"});
  dtype_flag(flags, "--main-params-dtype", {{"fp32", DType::F32}}, {"fp16"});
  return precision;
}

}  // namespace moebench::train
