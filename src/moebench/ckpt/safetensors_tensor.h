#pragma once
// Between safetensors entries and Tensors: dtype names, a Tensor view of a
// mapped entry (no copy), and an entry viewing a Tensor's bytes.
#include <string>

#include "moebench/ckpt/safetensors.h"
#include "moebench/core/tensor.h"

namespace moebench::ckpt {

// F32 <-> DType::F32, BF16, F16, F64, F8_E4M3, F8_E5M2, I32, I64; throws an
// Error naming the dtype for any other.
DType dtype_from_safetensors(const std::string& dtype);
std::string safetensors_dtype(DType dtype);

// A read-only CPU view of the entry's bytes, valid while the file that holds
// them stays open. Never write through it: the mapping is read-only.
Tensor tensor_view(const SafetensorsTensor& entry);

// An entry viewing the bytes of `tensor`, which must be a contiguous CPU
// tensor and outlive the entry.
SafetensorsTensor safetensors_entry(const std::string& name, const Tensor& tensor);

}  // namespace moebench::ckpt
