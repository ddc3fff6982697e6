#include "moebench/ops/rope.h"

#include <initializer_list>

#include "moebench/core/error.h"
#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {
namespace {

using namespace checks;

void apply_rope(const char* op, Tensor& out, const Tensor& x, const RopeTableTensors& table,
                const Tensor& positions, int64_t head_dim, RopeLayout layout, bool backward) {
  require_activation(op, "x", x);
  require_activation(op, "out", out);
  require_same_device(op, "out", out, x, "x");
  require_contiguous(op, "positions", positions);
  require_dtype(op, "positions", positions, {DType::I64});
  require_same_device(op, "positions", positions, x, "x");
  require_numel(op, "out", out, x.numel());
  if (table.host == nullptr) throw Error(std::string("ops::") + op + ": the table has no host RopeTable");
  const int64_t tokens = positions.numel();
  const int64_t heads = tokens > 0 && head_dim > 0 ? x.numel() / (tokens * head_dim) : 0;
  require_numel(op, "x", x, tokens * heads * head_dim);
  if (is_cuda(op, x)) {
#ifdef MOEBENCH_WITH_CUDA
    const cuda::RopeTableView view = device_table_view(op, table, x);
    if (backward)
      return cuda::rope_backward(bf16_ptr(out), bf16_ptr(x), view, positions.data<int64_t>(), tokens, heads, head_dim,
                                 layout, current_stream());
    return cuda::rope_forward(bf16_ptr(out), bf16_ptr(x), view, positions.data<int64_t>(), tokens, heads, head_dim,
                              layout, current_stream());
#endif
  }
  require_dtype(op, "x", x, {DType::F32});
  if (backward)
    return cpu::rope_backward(out.data<float>(), x.data<float>(), *table.host, positions.data<int64_t>(), tokens,
                              heads, head_dim, layout);
  cpu::rope_forward(out.data<float>(), x.data<float>(), *table.host, positions.data<int64_t>(), tokens, heads,
                    head_dim, layout);
}

}  // namespace

#ifdef MOEBENCH_WITH_CUDA
cuda::RopeTableView device_table_view(const char* op, const RopeTableTensors& table, const Tensor& x) {
  if (table.host == nullptr) throw Error(std::string("ops::") + op + ": the table has no host RopeTable");
  const int64_t half = table.host->rot_dim / 2;
  for (const Tensor* t : std::initializer_list<const Tensor*>{&table.cos, &table.sin}) {
    require_contiguous(op, "table cos/sin", *t);
    require_dtype(op, "table cos/sin", *t, {DType::F32});
    require_same_device(op, "table cos/sin", *t, x, "x");
    require_numel(op, "table cos/sin", *t, table.host->num_positions * half);
  }
  return {table.cos.data<float>(), table.sin.data<float>(), table.host->rot_dim, table.host->num_positions};
}
#endif

void rope_forward(Tensor& out, const Tensor& x, const RopeTableTensors& table, const Tensor& positions,
                  std::int64_t head_dim, RopeLayout layout) {
  apply_rope("rope_forward", out, x, table, positions, head_dim, layout, false);
}

void rope_backward(Tensor& dx, const Tensor& dout, const RopeTableTensors& table, const Tensor& positions,
                   std::int64_t head_dim, RopeLayout layout) {
  apply_rope("rope_backward", dx, dout, table, positions, head_dim, layout, true);
}

}  // namespace moebench::ops
