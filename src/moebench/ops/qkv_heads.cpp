#include "moebench/ops/qkv_heads.h"

#include <string>

#include "moebench/core/error.h"
#include "moebench/ops/elementwise.h"
#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {
namespace {

using namespace checks;

struct QkvDims {
  int64_t tokens, heads, groups, head_dim;
  int64_t per_group() const { return heads / groups; }
  int64_t fused_width() const { return groups * (per_group() + 2) * head_dim; }
};

// Shapes from q [tokens, heads, head_dim] and k [tokens, groups, head_dim];
// v like k, the fused tensor [tokens, fused width]; one device, one dtype.
QkvDims check_heads(const char* op, const Tensor& fused, const char* fused_name, const Tensor& q, const Tensor& k,
                    const Tensor& v) {
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{fused_name, &fused}, {"q", &q}, {"k", &k},
                                {"v", &v}}) {
    require_activation(op, name, *t);
    require_same_device(op, name, *t, fused, fused_name);
    if (t->dtype() != fused.dtype())
      throw Error(std::string("ops::") + op + ": " + name + " is " + t->describe() + " but " + fused_name + " is " +
                  fused.describe() + "; all four must share one dtype");
  }
  if (q.dim() != 3 || k.dim() != 3)
    throw Error(std::string("ops::") + op + ": q " + q.describe() + " and k " + k.describe() +
                " must be [tokens, heads, head_dim]");
  const QkvDims d{q.size(0), q.size(1), k.size(1), q.size(2)};
  if (d.groups < 1 || d.heads % d.groups != 0)
    throw Error(std::string("ops::") + op + ": k's " + std::to_string(d.groups) + " groups must divide q's " +
                std::to_string(d.heads) + " heads");
  require_shape(op, "k", k, {d.tokens, d.groups, d.head_dim});
  require_shape(op, "v", v, {d.tokens, d.groups, d.head_dim});
  require_shape(op, fused_name, fused, {d.tokens, d.fused_width()});
  return d;
}

// The heads moved one (group, tensor) column block at a time: the CPU path.
void copy_heads(Tensor& fused, Tensor& q, Tensor& k, Tensor& v, const QkvDims& d, bool to_fused) {
  const int64_t row = d.fused_width();
  auto move = [&](int64_t fused_col, Tensor& separate, int64_t separate_width, int64_t separate_col, int64_t count) {
    if (to_fused) {
      copy_columns(fused, row, fused_col, separate, separate_width, separate_col, d.tokens, count);
    } else {
      copy_columns(separate, separate_width, separate_col, fused, row, fused_col, d.tokens, count);
    }
  };
  for (int64_t g = 0; g < d.groups; ++g) {
    const int64_t base = g * (d.per_group() + 2) * d.head_dim;
    move(base, q, d.heads * d.head_dim, g * d.per_group() * d.head_dim, d.per_group() * d.head_dim);
    move(base + d.per_group() * d.head_dim, k, d.groups * d.head_dim, g * d.head_dim, d.head_dim);
    move(base + (d.per_group() + 1) * d.head_dim, v, d.groups * d.head_dim, g * d.head_dim, d.head_dim);
  }
}

#ifdef MOEBENCH_WITH_CUDA
cuda::QkvRotation device_rotation(const char* op, const QkvRotation* rotation, const Tensor& like) {
  if (rotation == nullptr) return {};
  require_contiguous(op, "positions", rotation->positions);
  require_dtype(op, "positions", rotation->positions, {DType::I64});
  require_same_device(op, "positions", rotation->positions, like, "q");
  require_numel(op, "positions", rotation->positions, like.size(0));
  return {device_table_view(op, rotation->table, like), rotation->positions.data<int64_t>()};
}
#endif

}  // namespace

void split_qkv(Tensor& q, Tensor& k, Tensor& v, const Tensor& qkv, const QkvRotation* rotation) {
  const char* op = "split_qkv";
  const QkvDims d = check_heads(op, qkv, "qkv", q, k, v);
  if (is_cuda(op, qkv)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::split_qkv(bf16_ptr(q), bf16_ptr(k), bf16_ptr(v), bf16_ptr(qkv),
                           {d.tokens, d.heads, d.groups, d.head_dim}, device_rotation(op, rotation, q),
                           current_stream());
#endif
  }
  Tensor fused = qkv;  // a handle: the split only reads it
  copy_heads(fused, q, k, v, d, false);
  if (rotation == nullptr) return;
  rope_forward(q, q, rotation->table, rotation->positions, d.head_dim, RopeLayout::kHalf);
  rope_forward(k, k, rotation->table, rotation->positions, d.head_dim, RopeLayout::kHalf);
}

void merge_qkv(Tensor& dqkv, const Tensor& dq, const Tensor& dk, const Tensor& dv, const QkvRotation* rotation) {
  const char* op = "merge_qkv";
  const QkvDims d = check_heads(op, dqkv, "dqkv", dq, dk, dv);
  if (is_cuda(op, dqkv)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::merge_qkv(bf16_ptr(dqkv), bf16_ptr(dq), bf16_ptr(dk), bf16_ptr(dv),
                           {d.tokens, d.heads, d.groups, d.head_dim}, device_rotation(op, rotation, dq),
                           current_stream());
#endif
  }
  Tensor q = dq, k = dk, v = dv;
  if (rotation != nullptr) {
    q = empty_like(dq);
    k = empty_like(dk);
    rope_backward(q, dq, rotation->table, rotation->positions, d.head_dim, RopeLayout::kHalf);
    rope_backward(k, dk, rotation->table, rotation->positions, d.head_dim, RopeLayout::kHalf);
  }
  copy_heads(dqkv, q, k, v, d, true);
}

}  // namespace moebench::ops
