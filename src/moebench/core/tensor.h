#pragma once
// Device, Storage and Tensor: a strided view (shape, strides in elements,
// storage offset, dtype) over a reference-counted block of device memory.
//
// Tensor is a handle, as in PyTorch: copying a Tensor shares its storage;
// view, reshape (when possible), slice, transpose and permute return views;
// clone, contiguous (when needed) and to() copy. Element-wise work here
// (fill_, copy_from, clone, to) runs on the CPU only and throws for other
// devices; GPU code reaches a CUDA tensor's memory through data<T>().
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "moebench/core/dtype.h"
#include "moebench/core/error.h"

namespace moebench {

enum class DeviceKind { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;

  static Device cpu() { return {DeviceKind::CPU, 0}; }
  static Device cuda(int index) { return {DeviceKind::CUDA, index}; }
  bool is_cpu() const { return kind == DeviceKind::CPU; }
  bool is_cuda() const { return kind == DeviceKind::CUDA; }
  std::string str() const;  // "cpu", "cuda:1"
  friend bool operator==(const Device&, const Device&) = default;
};

// One block of memory on one device. The deleter that came with the memory
// frees it when the last tensor viewing it goes away, so every backend (host
// allocation, cudaMalloc, a caching allocator) fits the same type; an empty
// deleter wraps memory owned elsewhere.
class Storage {
 public:
  using Deleter = std::function<void(void*)>;

  Storage(void* data, size_t nbytes, Device device, Deleter deleter);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  Deleter deleter_;
};

// Allocation per device kind. CPU memory (64-byte aligned host memory) is
// built in; a backend installs the allocator of its kind (the CUDA layer
// installs one for DeviceKind::CUDA), so core needs no CUDA code.
using StorageAllocator = std::function<std::shared_ptr<Storage>(size_t nbytes, Device device)>;
void set_storage_allocator(DeviceKind kind, StorageAllocator allocator);
std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device);

class Tensor {
 public:
  // An undefined tensor (no storage), for members assigned later.
  Tensor() = default;

  static Tensor empty(const std::vector<int64_t>& shape, DType dtype,
                      Device device = Device::cpu());
  static Tensor zeros(const std::vector<int64_t>& shape, DType dtype,
                      Device device = Device::cpu());
  // A contiguous CPU tensor holding `values`; the dtype follows T (dtype_of).
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const std::vector<int64_t>& shape);
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values) {
    return from_vector(values, {int64_t(values.size())});
  }
  // A view of existing storage; throws if the view reaches past its end.
  static Tensor from_storage(std::shared_ptr<Storage> storage, DType dtype,
                             const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                             int64_t storage_offset);

  bool defined() const { return storage_ != nullptr; }
  const std::vector<int64_t>& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  DType dtype() const { return dtype_; }
  Device device() const;
  int64_t storage_offset() const { return storage_offset_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * size_in_bytes(dtype_); }
  // Negative dims count from the end, as in PyTorch.
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  bool is_contiguous() const;
  // "bf16[4, 8] on cpu", for error messages.
  std::string describe() const;

  // The first element (at the storage offset). T must match the dtype.
  template <typename T>
  T* data() const;
  void* data_ptr() const;

  // Views. view() needs a contiguous tensor; one size may be -1 (inferred).
  Tensor view(const std::vector<int64_t>& shape) const;
  Tensor reshape(const std::vector<int64_t>& shape) const;  // a view when contiguous, else a copy
  Tensor slice(int64_t dim, int64_t start, int64_t end) const;  // [start, end) along dim
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;

  // Copies (CPU only).
  Tensor contiguous() const;     // *this when already contiguous
  Tensor clone() const;          // always a fresh contiguous copy
  Tensor to(DType dtype) const;  // *this when the dtype already matches; rounds as dtype.h says
  Tensor& fill_(double value);
  // Same shape required; converts from source's dtype. Overlapping source
  // and destination are handled by copying through a temporary.
  Tensor& copy_from(const Tensor& source);

 private:
  Tensor(std::shared_ptr<Storage> storage, DType dtype, std::vector<int64_t> shape,
         std::vector<int64_t> strides, int64_t storage_offset);
  void require_defined(const char* operation) const;
  void require_cpu(const char* operation) const;
  void require_dtype(DType expected) const;
  int64_t normalize_dim(int64_t dim, const char* operation) const;

  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::F32;
  std::vector<int64_t> shape_;
  std::vector<int64_t> strides_;
  int64_t storage_offset_ = 0;
};

// Row-major strides of a contiguous tensor of this shape.
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);
// "[2, 3]": a shape, strides or a dim list, for messages.
std::string format_dims(const std::vector<int64_t>& dims);

// Visits every index of `shape` in row-major order and passes the element's
// offset under two layouts, offset = base + sum(index[d] * strides[d]), so
// strided loops (copies between layouts, shard-to-global index maps) need no
// index arithmetic of their own.
template <typename Visit>
void for_each_offset_pair(const std::vector<int64_t>& shape,
                          const std::vector<int64_t>& first_strides, int64_t first_base,
                          const std::vector<int64_t>& second_strides, int64_t second_base,
                          Visit&& visit) {
  for (int64_t size : shape) {
    if (size == 0) return;
  }
  const int64_t rank = int64_t(shape.size());
  const int64_t inner_size = rank == 0 ? 1 : shape.back();
  const int64_t first_inner = rank == 0 ? 0 : first_strides.back();
  const int64_t second_inner = rank == 0 ? 0 : second_strides.back();
  std::vector<int64_t> index(shape.size(), 0);
  int64_t first = first_base;
  int64_t second = second_base;
  while (true) {
    for (int64_t i = 0; i < inner_size; ++i)
      visit(first + i * first_inner, second + i * second_inner);
    // Odometer step over the outer dimensions.
    int64_t d = rank - 2;
    for (; d >= 0; --d) {
      ++index[d];
      first += first_strides[d];
      second += second_strides[d];
      if (index[d] < shape[d]) break;
      first -= shape[d] * first_strides[d];
      second -= shape[d] * second_strides[d];
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const std::vector<int64_t>& shape) {
  Tensor tensor = empty(shape, dtype_of<T>);
  if (tensor.numel() != int64_t(values.size())) {
    throw Error("Tensor::from_vector got " + std::to_string(values.size()) + " values for shape " +
                format_dims(shape) + " (" + std::to_string(tensor.numel()) +
                " elements); pass a matching shape");
  }
  T* destination = tensor.data<T>();
  for (size_t i = 0; i < values.size(); ++i) destination[i] = values[i];
  return tensor;
}

template <typename T>
T* Tensor::data() const {
  require_dtype(dtype_of<std::remove_cv_t<T>>);
  return static_cast<T*>(data_ptr());
}

}  // namespace moebench
