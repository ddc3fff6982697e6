#pragma once
// A whole file mapped read-only into memory: the .bin and .idx of a tokenized
// corpus can be far larger than RAM, and the kernel pages in only what the
// samples touch.
#include <cstddef>
#include <filesystem>
#include <span>

namespace moebench::data {

class MappedFile {
 public:
  // Throws an Error naming the path if it is missing or cannot be mapped.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moebench::data
