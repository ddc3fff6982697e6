#include "moebench/core/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace moebench {
namespace {

// Cache-line alignment keeps vectorised CPU loops on aligned loads.
constexpr size_t kHostAlignment = 64;

std::shared_ptr<Storage> allocate_host_storage(size_t nbytes, Device device) {
  // aligned_alloc needs a size that is a multiple of the alignment (and > 0).
  const size_t padded =
      std::max<size_t>(1, (nbytes + kHostAlignment - 1) / kHostAlignment) * kHostAlignment;
  void* data = std::aligned_alloc(kHostAlignment, padded);
  if (data == nullptr) {
    throw Error("cannot allocate " + std::to_string(nbytes) +
                " bytes of host memory; reduce the tensor sizes or free memory");
  }
  return std::make_shared<Storage>(data, nbytes, device, [](void* p) { std::free(p); });
}

struct AllocatorRegistry {
  std::mutex mutex;
  std::map<DeviceKind, StorageAllocator> allocators{{DeviceKind::CPU, allocate_host_storage}};
};

AllocatorRegistry& allocator_registry() {
  static AllocatorRegistry registry;
  return registry;
}

}  // namespace

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Storage::Storage(void* data, size_t nbytes, Device device, Deleter deleter)
    : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {}

Storage::~Storage() {
  if (deleter_) deleter_(data_);
}

void set_storage_allocator(DeviceKind kind, StorageAllocator allocator) {
  AllocatorRegistry& registry = allocator_registry();
  std::lock_guard lock(registry.mutex);
  registry.allocators[kind] = std::move(allocator);
}

std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device) {
  StorageAllocator allocator;
  {
    AllocatorRegistry& registry = allocator_registry();
    std::lock_guard lock(registry.mutex);
    const auto found = registry.allocators.find(device.kind);
    if (found != registry.allocators.end()) allocator = found->second;
  }
  if (!allocator) {
    throw Error("no storage allocator for device " + device.str() +
                "; this build has no backend for it (build with CUDA, or use the cpu device)");
  }
  return allocator(nbytes, device);
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t stride = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = stride;
    stride *= shape[d];
  }
  return strides;
}

std::string format_dims(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t d = 0; d < dims.size(); ++d) {
    text += (d == 0 ? "" : ", ") + std::to_string(dims[d]);
  }
  return text + "]";
}

Tensor::Tensor(std::shared_ptr<Storage> storage, DType dtype, std::vector<int64_t> shape,
               std::vector<int64_t> strides, int64_t storage_offset)
    : storage_(std::move(storage)),
      dtype_(dtype),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      storage_offset_(storage_offset) {}

Tensor Tensor::empty(const std::vector<int64_t>& shape, DType dtype, Device device) {
  int64_t count = 1;
  for (int64_t size : shape) {
    if (size < 0) {
      throw Error("Tensor::empty got shape " + format_dims(shape) +
                  " with a negative size; sizes must be >= 0");
    }
    count *= size;
  }
  auto storage = allocate_storage(size_t(count) * size_in_bytes(dtype), device);
  return Tensor(std::move(storage), dtype, shape, contiguous_strides(shape), 0);
}

Tensor Tensor::zeros(const std::vector<int64_t>& shape, DType dtype, Device device) {
  Tensor tensor = empty(shape, dtype, device);
  tensor.fill_(0.0);
  return tensor;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, DType dtype,
                            const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                            int64_t storage_offset) {
  if (storage == nullptr)
    throw Error("Tensor::from_storage got no storage; pass an allocated Storage");
  if (shape.size() != strides.size()) {
    throw Error("Tensor::from_storage got shape " + format_dims(shape) + " and strides " +
                format_dims(strides) + " of different ranks; pass one stride per dimension");
  }
  int64_t last_element = storage_offset;  // furthest element the view can reach
  bool empty_view = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0 || strides[d] < 0) {
      throw Error("Tensor::from_storage got shape " + format_dims(shape) + " and strides " +
                  format_dims(strides) + "; sizes and strides must be >= 0");
    }
    if (shape[d] == 0) empty_view = true;
    last_element += (shape[d] - 1) * strides[d];
  }
  const int64_t needed_bytes = empty_view ? 0 : (last_element + 1) * int64_t(size_in_bytes(dtype));
  if (storage_offset < 0 || needed_bytes > int64_t(storage->nbytes())) {
    throw Error("Tensor::from_storage: a " + std::string(name(dtype)) + format_dims(shape) +
                " view with strides " + format_dims(strides) + " at offset " +
                std::to_string(storage_offset) + " needs " + std::to_string(needed_bytes) +
                " bytes but the storage has " + std::to_string(storage->nbytes()) +
                "; fix the shape, strides or offset");
  }
  return Tensor(std::move(storage), dtype, shape, strides, storage_offset);
}

Device Tensor::device() const {
  require_defined("device");
  return storage_->device();
}

int64_t Tensor::numel() const {
  int64_t count = 1;
  for (int64_t size : shape_) count *= size;
  return count;
}

int64_t Tensor::size(int64_t dim) const { return shape_[normalize_dim(dim, "size")]; }

int64_t Tensor::stride(int64_t dim) const { return strides_[normalize_dim(dim, "stride")]; }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (size_t d = shape_.size(); d-- > 0;) {
    if (shape_[d] == 1) continue;  // the stride of a size-1 dim is never used
    if (strides_[d] != expected) return false;
    expected *= shape_[d];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return std::string(name(dtype_)) + format_dims(shape_) + " on " + device().str();
}

void* Tensor::data_ptr() const {
  require_defined("data");
  return static_cast<char*>(storage_->data()) + storage_offset_ * int64_t(size_in_bytes(dtype_));
}

Tensor Tensor::view(const std::vector<int64_t>& shape) const {
  require_defined("view");
  if (!is_contiguous()) {
    throw Error("Tensor::view needs a contiguous tensor, got " + describe() + " with strides " +
                format_dims(strides_) + "; call contiguous() first or use reshape()");
  }
  std::vector<int64_t> resolved = shape;
  const auto inferred = std::find(resolved.begin(), resolved.end(), -1);
  int64_t known = 1;  // product of the given sizes
  for (auto it = resolved.begin(); it != resolved.end(); ++it) {
    if (it == inferred) continue;
    if (*it < 0) {
      throw Error("Tensor::view got shape " + format_dims(shape) +
                  "; sizes must be >= 0 with at most one -1");
    }
    known *= *it;
  }
  const bool fits =
      inferred == resolved.end() ? known == numel() : known > 0 && numel() % known == 0;
  if (!fits) {
    throw Error("Tensor::view cannot view " + describe() + " (" + std::to_string(numel()) +
                " elements) as shape " + format_dims(shape) +
                "; the new shape must have the same number of elements");
  }
  if (inferred != resolved.end()) *inferred = numel() / known;
  return Tensor(storage_, dtype_, resolved, contiguous_strides(resolved), storage_offset_);
}

Tensor Tensor::reshape(const std::vector<int64_t>& shape) const {
  return is_contiguous() ? view(shape) : contiguous().view(shape);
}

Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end) const {
  const int64_t d = normalize_dim(dim, "slice");
  if (start < 0 || start > end || end > shape_[d]) {
    throw Error("Tensor::slice of " + describe() + " along dim " + std::to_string(dim) + " got [" +
                std::to_string(start) + ", " + std::to_string(end) +
                "); use 0 <= start <= end <= " + std::to_string(shape_[d]));
  }
  std::vector<int64_t> shape = shape_;
  shape[d] = end - start;
  return Tensor(storage_, dtype_, shape, strides_, storage_offset_ + start * strides_[d]);
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  const int64_t a = normalize_dim(dim0, "transpose");
  const int64_t b = normalize_dim(dim1, "transpose");
  std::vector<int64_t> shape = shape_;
  std::vector<int64_t> strides = strides_;
  std::swap(shape[a], shape[b]);
  std::swap(strides[a], strides[b]);
  return Tensor(storage_, dtype_, shape, strides, storage_offset_);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  require_defined("permute");
  if (dims.size() != shape_.size()) {
    throw Error("Tensor::permute of " + describe() + " got " + std::to_string(dims.size()) +
                " dims " + format_dims(dims) + "; pass all " + std::to_string(dim()) + " dims");
  }
  std::vector<bool> used(shape_.size(), false);
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  for (int64_t dim : dims) {
    const int64_t d = normalize_dim(dim, "permute");
    if (used[d]) {
      throw Error("Tensor::permute of " + describe() + " got dims " + format_dims(dims) +
                  " naming dim " + std::to_string(d) + " twice; pass each dim exactly once");
    }
    used[d] = true;
    shape.push_back(shape_[d]);
    strides.push_back(strides_[d]);
  }
  return Tensor(storage_, dtype_, shape, strides, storage_offset_);
}

Tensor Tensor::contiguous() const {
  require_defined("contiguous");
  return is_contiguous() ? *this : clone();
}

Tensor Tensor::clone() const {
  require_cpu("clone");
  Tensor copy = empty(shape_, dtype_, device());
  copy.copy_from(*this);
  return copy;
}

Tensor Tensor::to(DType dtype) const {
  require_cpu("to");
  if (dtype == dtype_) return *this;
  Tensor converted = empty(shape_, dtype, device());
  converted.copy_from(*this);
  return converted;
}

Tensor& Tensor::fill_(double value) {
  require_cpu("fill_");
  alignas(8) unsigned char element[8];
  store_element_from_double(dtype_, value, element);
  const size_t element_size = size_in_bytes(dtype_);
  if (is_contiguous() && value == 0.0 && !std::signbit(value)) {
    std::memset(data_ptr(), 0, nbytes());  // zero is all-zero bits in every dtype (parameters' gradients: GBs)
    return *this;
  }
  char* base = static_cast<char*>(storage_->data());
  for_each_offset_pair(shape_, strides_, storage_offset_, strides_, storage_offset_,
                       [&](int64_t offset, int64_t) {
                         std::memcpy(base + offset * int64_t(element_size), element, element_size);
                       });
  return *this;
}

Tensor& Tensor::copy_from(const Tensor& source) {
  require_cpu("copy_from");
  source.require_cpu("copy_from");
  if (source.shape_ != shape_) {
    throw Error("Tensor::copy_from into " + describe() + " got source " + source.describe() +
                "; shapes must match (no broadcasting)");
  }
  if (source.storage_ == storage_) return copy_from(source.clone());
  if (source.dtype_ == dtype_ && is_contiguous() && source.is_contiguous()) {
    std::memcpy(data_ptr(), source.data_ptr(), nbytes());
    return *this;
  }
  const int64_t to_size = int64_t(size_in_bytes(dtype_));
  const int64_t from_size = int64_t(size_in_bytes(source.dtype_));
  char* to_base = static_cast<char*>(storage_->data());
  const char* from_base = static_cast<const char*>(source.storage_->data());
  for_each_offset_pair(shape_, strides_, storage_offset_, source.strides_, source.storage_offset_,
                       [&](int64_t to_offset, int64_t from_offset) {
                         convert_element(source.dtype_, from_base + from_offset * from_size, dtype_,
                                         to_base + to_offset * to_size);
                       });
  return *this;
}

void Tensor::require_defined(const char* operation) const {
  if (!defined()) {
    throw Error(std::string("Tensor::") + operation +
                " called on an undefined tensor; create it with Tensor::empty or zeros first");
  }
}

void Tensor::require_cpu(const char* operation) const {
  require_defined(operation);
  if (!device().is_cpu()) {
    throw Error(std::string("Tensor::") + operation + " runs on the CPU only, got " + describe() +
                "; copy the tensor to the CPU first or use the device's op");
  }
}

void Tensor::require_dtype(DType expected) const {
  if (dtype_ != expected) {
    throw Error("Tensor::data<" + std::string(name(expected)) + ">() called on " + describe() +
                "; read it with its own element type or convert it with to(DType)");
  }
}

int64_t Tensor::normalize_dim(int64_t dim, const char* operation) const {
  require_defined(operation);
  const int64_t rank = this->dim();
  if (dim < -rank || dim >= rank) {
    throw Error(std::string("Tensor::") + operation + " got dim " + std::to_string(dim) + " for " +
                describe() + "; use a dim in [" + std::to_string(-rank) + ", " +
                std::to_string(rank) + ")");
  }
  return dim < 0 ? dim + rank : dim;
}

}  // namespace moebench
