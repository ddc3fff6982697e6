#include "moebench/train/device_gradient_buckets.h"

#include <algorithm>
#include <memory>
#include <string>

#include "moebench/core/error.h"

namespace moebench::train {
namespace {

// One parameter's gradient: where it lies in its allocation.
struct GradientRun {
  int64_t begin = 0;
  int64_t numel = 0;
  const std::string* name = nullptr;
};

struct Allocation {
  std::shared_ptr<Storage> storage;
  std::vector<GradientRun> runs;
};

void require_flat_f32(const model::Parameter& p) {
  if (!p.grad.defined() || p.grad.dtype() != DType::F32 || !p.grad.is_contiguous())
    throw Error("device_gradient_buckets: the gradient of " + p.name + " is " +
                (p.grad.defined() ? p.grad.describe() : std::string("undefined")) +
                "; data-parallel reduction needs contiguous float32 gradients (Megatron's main grads)");
}

// Cuts one allocation's runs, in address order, into buckets.
void append_buckets(Allocation& allocation, int64_t bucket_elements, std::vector<Tensor>& buckets) {
  std::ranges::sort(allocation.runs, {}, &GradientRun::begin);
  int64_t begin = allocation.runs.front().begin;
  int64_t end = begin;
  const auto close = [&] {
    buckets.push_back(Tensor::from_storage(allocation.storage, DType::F32, {end - begin}, {1}, begin));
  };
  for (const GradientRun& run : allocation.runs) {
    if (run.begin < end)
      throw Error("device_gradient_buckets: the gradient of " + *run.name +
                  " overlaps another parameter's; every parameter needs its own gradient memory");
    if (run.begin > end || end - begin >= bucket_elements) {
      if (end > begin) close();
      begin = run.begin;
    }
    end = run.begin + run.numel;
  }
  close();
}

}  // namespace

std::vector<Tensor> device_gradient_buckets(const std::vector<model::Parameter*>& parameters,
                                            int64_t bucket_elements) {
  if (bucket_elements < 1)
    throw Error("device_gradient_buckets: the bucket size is " + std::to_string(bucket_elements) +
                " elements; pass a positive --ddp-bucket-size");
  std::vector<Allocation> allocations;
  for (auto p = parameters.rbegin(); p != parameters.rend(); ++p) {
    require_flat_f32(**p);
    const Tensor& grad = (*p)->grad;
    auto found = std::ranges::find(allocations, grad.storage(), &Allocation::storage);
    if (found == allocations.end()) found = allocations.insert(allocations.end(), {grad.storage(), {}});
    found->runs.push_back({grad.storage_offset(), grad.numel(), &(*p)->name});
  }
  std::vector<Tensor> buckets;
  for (Allocation& allocation : allocations) append_buckets(allocation, bucket_elements, buckets);
  return buckets;
}

}  // namespace moebench::train
