#include "moebench/ops/embedding.h"

#include "moebench/ops/tensor_checks.h"

#ifdef MOEBENCH_WITH_CUDA
#include "moebench/ops/cuda_stream.h"
#endif

namespace moebench::ops {

using namespace checks;

void embedding_forward(Tensor& out, const Tensor& ids, const Tensor& table) {
  const char* op = "embedding_forward";
  require_activation(op, "table", table);
  require_activation(op, "out", out);
  require_contiguous(op, "ids", ids);
  require_dtype(op, "ids", ids, {DType::I64});
  require_same_device(op, "ids", ids, table, "table");
  require_same_device(op, "out", out, table, "table");
  if (table.dim() != 2) unsupported(op, "table", table, "[V, C]");
  const int64_t n = ids.numel(), vocab = table.size(0), c = table.size(1);
  require_numel(op, "out", out, n * c);
  if (is_cuda(op, table)) {
#ifdef MOEBENCH_WITH_CUDA
    return cuda::embedding_forward(bf16_ptr(out), ids.data<int64_t>(), bf16_ptr(table), n, vocab, c,
                                   current_stream());
#endif
  }
  if (table.dtype() == DType::F32)
    return cpu::embedding_forward(out.data<float>(), ids.data<int64_t>(), table.data<float>(), n, vocab, c);
  cpu::embedding_forward(out.data<double>(), ids.data<int64_t>(), table.data<double>(), n, vocab, c);
}

void embedding_backward(Tensor& dtable, const Tensor& dout, const Tensor& ids) {
  const char* op = "embedding_backward";
  require_activation(op, "dout", dout);
  require_contiguous(op, "dtable", dtable);
  require_contiguous(op, "ids", ids);
  require_dtype(op, "ids", ids, {DType::I64});
  require_same_device(op, "ids", ids, dout, "dout");
  require_same_device(op, "dtable", dtable, dout, "dout");
  if (dtable.dim() != 2) unsupported(op, "dtable", dtable, "[V, C]");
  const int64_t n = ids.numel(), vocab = dtable.size(0), c = dtable.size(1);
  require_numel(op, "dout", dout, n * c);
  if (is_cuda(op, dout)) {
#ifdef MOEBENCH_WITH_CUDA
    require_dtype(op, "dtable", dtable, {DType::F32});
    const int64_t bytes = int64_t(cuda::embedding_backward_scratch_bytes(n, vocab));
    Tensor scratch = Tensor::empty({(bytes + 7) / 8}, DType::I64, dout.device());
    return cuda::embedding_backward(dtable.data<float>(), bf16_ptr(dout), ids.data<int64_t>(), n, vocab, c,
                                    scratch.data_ptr(), current_stream());
#endif
  }
  if (dout.dtype() == DType::F32)
    return cpu::embedding_backward(dtable.data<float>(), dout.data<float>(), ids.data<int64_t>(), n, vocab, c);
  cpu::embedding_backward(dtable.data<double>(), dout.data<double>(), ids.data<int64_t>(), n, vocab, c);
}

}  // namespace moebench::ops
