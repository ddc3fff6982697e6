#include "moebench/ops/tensor_checks.h"

#include <string>

#include "moebench/core/error.h"

namespace moebench::ops::checks {
namespace {

std::string prefix(const char* op, const char* name) {
  return std::string("ops::") + op + ": " + name + " ";
}

}  // namespace

void require_defined(const char* op, const char* name, const Tensor& tensor) {
  if (!tensor.defined()) throw Error(prefix(op, name) + "is undefined; pass an allocated tensor");
}

void require_contiguous(const char* op, const char* name, const Tensor& tensor) {
  require_defined(op, name, tensor);
  if (!tensor.is_contiguous())
    throw Error(prefix(op, name) + "must be contiguous, got " + tensor.describe() + " with strides " +
                format_dims(tensor.strides()) + "; pass .contiguous()");
}

void require_dtype(const char* op, const char* name, const Tensor& tensor,
                   std::initializer_list<DType> allowed) {
  require_defined(op, name, tensor);
  std::string names;
  for (DType dtype : allowed) {
    if (tensor.dtype() == dtype) return;
    if (!names.empty()) names += " or ";
    names += std::string(moebench::name(dtype));
  }
  throw Error(prefix(op, name) + "must be " + names + ", got " + tensor.describe());
}

void require_shape(const char* op, const char* name, const Tensor& tensor,
                   const std::vector<int64_t>& shape) {
  require_defined(op, name, tensor);
  if (tensor.shape() != shape)
    throw Error(prefix(op, name) + "must have shape " + format_dims(shape) + ", got " + tensor.describe());
}

void require_numel(const char* op, const char* name, const Tensor& tensor, int64_t numel) {
  require_defined(op, name, tensor);
  if (tensor.numel() != numel)
    throw Error(prefix(op, name) + "must have " + std::to_string(numel) + " elements, got " +
                tensor.describe());
}

void require_same_device(const char* op, const char* name, const Tensor& tensor,
                         const Tensor& reference, const char* reference_name) {
  require_defined(op, name, tensor);
  if (tensor.device() != reference.device())
    throw Error(prefix(op, name) + "must be on " + reference_name + "'s device " +
                reference.device().str() + ", got " + tensor.describe());
}

void require_activation(const char* op, const char* name, const Tensor& tensor) {
  require_contiguous(op, name, tensor);
  const bool ok = tensor.device().is_cuda()
                      ? tensor.dtype() == DType::BF16
                      : (tensor.dtype() == DType::F32 || tensor.dtype() == DType::F64);
  if (!ok) unsupported(op, name, tensor, "f32 or f64 on the CPU, bf16 on CUDA");
}

bool is_cuda(const char* op, const Tensor& tensor) {
  if (!tensor.device().is_cuda()) return false;
#ifdef MOEBENCH_WITH_CUDA
  (void)op;
  return true;
#else
  throw Error(std::string("ops::") + op + ": got " + tensor.describe() +
              " but this moebench was built without CUDA; rebuild with a CUDA compiler or use CPU tensors");
#endif
}

void unsupported(const char* op, const char* name, const Tensor& tensor, const char* allowed) {
  throw Error(prefix(op, name) + "must be " + allowed + "; got " + tensor.describe());
}

}  // namespace moebench::ops::checks
