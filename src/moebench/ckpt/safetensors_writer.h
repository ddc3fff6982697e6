#pragma once
// A safetensors file written one tensor at a time, so that a converter holds
// a single tensor in memory: the header (tensors in name order, padded to 8
// bytes) is laid out from the names, dtypes and shapes given up front; each
// tensor's bytes then go to their place in a temporary file beside the
// target, which commit() fsyncs and renames into place. Until then the
// target is untouched; a writer dropped before commit() removes its
// temporary file.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "moebench/ckpt/safetensors.h"

namespace moebench {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // safetensors spelling: F32 BF16 F8_E4M3 ...
  std::vector<int64_t> shape;
};

class SafetensorsWriter {
 public:
  // Throws an Error for a duplicate or reserved name and when the temporary
  // file cannot be created.
  SafetensorsWriter(const std::filesystem::path& path, std::vector<SafetensorsEntry> entries,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The bytes of tensor `name`, in any order, each tensor once; their size
  // must match the entry's dtype and shape.
  void write(const std::string& name, std::span<const std::byte> bytes);
  // Needs every tensor written. Afterwards `path` holds the complete file.
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moebench
