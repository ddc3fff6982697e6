#include "moebench/ckpt/safetensors_tensor.h"

#include <memory>
#include <utility>

namespace moebench::ckpt {
namespace {

constexpr std::pair<const char*, DType> kDtypes[] = {
    {"F32", DType::F32},         {"F64", DType::F64},         {"BF16", DType::BF16}, {"F16", DType::F16},
    {"F8_E4M3", DType::FP8E4M3}, {"F8_E5M2", DType::FP8E5M2}, {"I32", DType::I32},   {"I64", DType::I64},
};

}  // namespace

DType dtype_from_safetensors(const std::string& dtype) {
  for (const auto& [text, value] : kDtypes)
    if (dtype == text) return value;
  throw Error("safetensors dtype '" + dtype +
              "' has no moebench tensor type; expected F32, F64, BF16, F16, F8_E4M3, F8_E5M2, I32 or I64");
}

std::string safetensors_dtype(DType dtype) {
  for (const auto& [text, value] : kDtypes)
    if (dtype == value) return text;
  throw Error("dtype " + std::string(name(dtype)) + " has no safetensors spelling");
}

Tensor tensor_view(const SafetensorsTensor& entry) {
  // The storage does not own the mapping: an empty deleter.
  auto storage = std::make_shared<Storage>(const_cast<std::byte*>(entry.bytes.data()), entry.bytes.size(),
                                           Device::cpu(), Storage::Deleter([](void*) {}));
  return Tensor::from_storage(std::move(storage), dtype_from_safetensors(entry.dtype), entry.shape,
                              contiguous_strides(entry.shape), 0);
}

SafetensorsTensor safetensors_entry(const std::string& name, const Tensor& tensor) {
  if (!tensor.device().is_cpu() || !tensor.is_contiguous())
    throw Error("tensor '" + name + "' (" + tensor.describe() + ") must be a contiguous CPU tensor to be saved");
  const auto* bytes = static_cast<const std::byte*>(tensor.data_ptr());
  return {name, safetensors_dtype(tensor.dtype()), tensor.shape(), {bytes, tensor.nbytes()}};
}

}  // namespace moebench::ckpt
