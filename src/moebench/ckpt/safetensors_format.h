#pragma once
// What the safetensors reader and writer share: the layout constants, the
// error wording and a POSIX file handle. Private to ckpt/.
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "moebench/ckpt/safetensors.h"
#include "moebench/core/error.h"

namespace moebench::safetensors_format {

constexpr size_t kHeaderLengthBytes = 8;
constexpr const char* kMetadataKey = "__metadata__";

[[noreturn]] inline void fail(const std::filesystem::path& path, const std::string& problem) {
  throw Error("safetensors file '" + path.string() + "': " + problem);
}

inline std::string system_error_text() { return std::strerror(errno); }

// Owns a POSIX file descriptor (we need fsync, pwrite and mmap, which streams lack).
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now so a failing close (a late write error on some filesystems) is seen.
  bool close() {
    const int fd = std::exchange(fd_, -1);
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

// Bytes a tensor of `dtype` and `shape` needs, or fails when a dimension is
// negative or the size overflows.
inline uint64_t checked_byte_size(const std::filesystem::path& path, const std::string& name,
                                  const std::string& dtype, const std::vector<int64_t>& shape) {
  uint64_t bytes = safetensors_dtype_size(dtype);
  for (const int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) {
      fail(path, "tensor '" + name + "' has an invalid shape (negative or overflowing dimension); "
                 "the header is corrupt");
    }
  }
  return bytes;
}

}  // namespace moebench::safetensors_format
