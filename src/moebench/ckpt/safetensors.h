#pragma once
// Safetensors (https://github.com/huggingface/safetensors), the format of
// Hugging Face checkpoints: an 8-byte little-endian header length N, N bytes
// of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {str: str}}, then the tensor bytes, offsets relative to the end of the
// header. Files are memory-mapped: opening reads the header only, and each
// tensor's bytes are a view into the mapping, paged in when first touched.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace moebench {

// One tensor. When read, `bytes` points into the file mapping and stays valid
// while the SafetensorsFile or SafetensorsCheckpoint it came from (or a copy)
// lives; when written, it points at the caller's data.
struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // as the format spells it: F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U8 BOOL
  std::vector<int64_t> shape;  // empty for a scalar
  std::span<const std::byte> bytes;

  int64_t numel() const;
};

// Bytes per element of a safetensors dtype; throws on an unknown dtype.
size_t safetensors_dtype_size(const std::string& dtype);

// One .safetensors file, mapped read-only. Copies share the mapping.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // In the order of their bytes in the file.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const;
  // Throws naming the file when `name` is not in it.
  const SafetensorsTensor& tensor(const std::string& name) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<const std::byte> mapping_;  // unmapped when the last copy goes
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_by_name_;
};

// A whole checkpoint as one name -> tensor view: a directory holding
// model.safetensors.index.json (its "weight_map" names each tensor's shard)
// or a single model.safetensors, or the path of one .safetensors file.
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::filesystem::path& path);

  const std::vector<SafetensorsFile>& files() const { return files_; }
  // Sorted by name.
  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const;
  // Throws naming the checkpoint when `name` is not in it.
  const SafetensorsTensor& tensor(const std::string& name) const;

 private:
  std::filesystem::path path_;
  std::vector<SafetensorsFile> files_;  // keeps the mappings alive
  std::map<std::string, SafetensorsTensor> tensors_;
};

// Writes `tensors` (in name order, header padded to 8 bytes) and `metadata`
// to `path` atomically: a temporary file in the same directory is written,
// fsynced and renamed over `path`, so readers see the old file or the new one.
void write_safetensors(const std::filesystem::path& path, std::span<const SafetensorsTensor> tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The tensor's values as float, converted from F32, F64, F16 or BF16.
std::vector<float> to_float_vector(const SafetensorsTensor& tensor);
// The tensor's values as int64, converted from I64 or I32.
std::vector<int64_t> to_int64_vector(const SafetensorsTensor& tensor);

}  // namespace moebench
