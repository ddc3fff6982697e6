#include "moebench/model/moe/dispatch_arguments.h"

#include <string>

#include "moebench/core/error.h"

namespace moebench::model {
namespace {

std::string described(const Tensor& tensor) {
  return tensor.defined() ? tensor.describe() : std::string("an undefined tensor");
}

bool is_contiguous_cpu(const Tensor& tensor, DType dtype) {
  return tensor.defined() && tensor.dtype() == dtype && tensor.device().is_cpu() &&
         tensor.is_contiguous();
}

}  // namespace

void check_dispatch_inputs(const char* phase, const Tensor& hidden, const Routing& routing) {
  if (!is_contiguous_cpu(hidden, DType::F32) || hidden.dim() != 2)
    throw Error(std::string(phase) + ": hidden must be a contiguous f32 CPU tensor [tokens, " +
                "hidden]; got " + described(hidden));
  const Tensor& map = routing.routing_map;
  if (!is_contiguous_cpu(map, DType::I64) || map.dim() != 2 || map.size(0) != hidden.size(0) ||
      map.size(1) < 1)
    throw Error(std::string(phase) + ": routing_map must be a contiguous i64 CPU tensor [" +
                std::to_string(hidden.size(0)) + ", topk]; got " + described(map));
  if (!is_contiguous_cpu(routing.probs, DType::F32) || routing.probs.shape() != map.shape())
    throw Error(std::string(phase) + ": probs must be a contiguous f32 CPU tensor " +
                format_dims(map.shape()) + " like routing_map; got " + described(routing.probs));
}

void check_rows(const char* phase, const char* name, const Tensor& rows, int64_t expected_rows,
                int64_t hidden) {
  if (!is_contiguous_cpu(rows, DType::F32) || rows.dim() != 2 || rows.size(0) != expected_rows ||
      rows.size(1) != hidden)
    throw Error(std::string(phase) + ": " + name + " must be a contiguous f32 CPU tensor [" +
                std::to_string(expected_rows) + ", " + std::to_string(hidden) + "]; got " +
                described(rows));
}

}  // namespace moebench::model
