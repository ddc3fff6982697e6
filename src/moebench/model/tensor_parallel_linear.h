#pragma once
// Megatron-Core's ColumnParallelLinear and RowParallelLinear on the CPU
// ranks of a tp group. Each rank holds a slice of the one-rank weight
// [out, in] under the one-rank name, with the slice's values:
//   column-parallel  out / TP rows (and bias rows); with partition_stride 2
//                    (a fused SwiGLU [gate; up]) matching gate and up rows
//   row-parallel     in / TP columns; the bias whole, added once after the
//                    partial outputs are summed
// Column-parallel input enters through TensorParallelRegions::enter
// (all-gather under sequence parallelism) and row-parallel output leaves
// through exit (reduce-scatter, or all-reduce). As Megatron, only this rank's
// tokens are kept for the backward, which gathers them again. With one tp
// rank both are exactly Linear.
#include <string>
#include <vector>

#include "moebench/dist/tensor_parallel_regions.h"
#include "moebench/model/linear.h"

namespace moebench::model {

// This rank's split along `partition_dim` of a tensor-parallel parameter.
TensorParallelSplit tensor_parallel_split(const dist::TensorParallelRegions& tp, int partition_dim,
                                          int partition_stride = 1);

class ColumnParallelLinear {
 public:
  // `out_features` is the one-rank width; `partition_stride` as
  // TensorParallelSplit says (2 for a fused SwiGLU [gate; up]).
  ColumnParallelLinear(const std::string& prefix, int64_t in_features, int64_t out_features, float std,
                       uint64_t seed, const dist::TensorParallelRegions& tp, bool with_bias = false,
                       int partition_stride = 1);

  int64_t out_features() const { return linear_.out_features(); }  // this rank's: out / TP

  // inp [n, in] (this rank's tokens under SP) -> [N, out / TP] for all N tokens.
  Tensor forward(const Tensor& inp) const;
  // dout [N, out / TP], inp as given to forward -> dinp like inp; accumulates grads.
  Tensor backward(const Tensor& dout, const Tensor& inp);
  // As backward, but adds dinp to `dinp`: with one tp rank in the GEMM
  // (beta = 1), else after the tp reduction of the input gradient.
  void backward_accumulate(Tensor& dinp, const Tensor& dout, const Tensor& inp);

  void collect(std::vector<Parameter*>& parameters);

 private:
  Linear linear_;
  dist::TensorParallelRegions tp_;
};

class RowParallelLinear {
 public:
  // `in_features` is the one-rank width.
  RowParallelLinear(const std::string& prefix, int64_t in_features, int64_t out_features, float std,
                    uint64_t seed, const dist::TensorParallelRegions& tp, bool with_bias = false);

  int64_t in_features() const { return linear_.in_features(); }  // this rank's: in / TP

  // inp [N, in / TP] -> [n, out] summed over the tp ranks (this rank's tokens
  // under SP), + bias, + residual [n, out] (undefined for none): the residual
  // is added once after the tp reduction. With one tp rank and no bias the
  // GEMM adds it in its epilogue (a new output; the residual is not written).
  Tensor forward(const Tensor& inp, const Tensor& residual = Tensor()) const;
  // dout [n, out] -> dinp [N, in / TP]; accumulates grads.
  Tensor backward(const Tensor& dout, const Tensor& inp);

  void collect(std::vector<Parameter*>& parameters);

 private:
  Linear linear_;  // without bias: the bias is added after the reduction
  Parameter bias_;  // [out]; undefined value when absent
  dist::TensorParallelRegions tp_;
};

}  // namespace moebench::model
