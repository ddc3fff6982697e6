#include "moebench/data/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "moebench/core/error.h"

namespace moebench::data {

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  const int descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0)
    throw Error("cannot open '" + path.string() + "': " + std::strerror(errno) +
                "; check the path (--data-path takes the prefix without .bin/.idx)");
  struct stat status {};
  if (::fstat(descriptor, &status) != 0) {
    const int error = errno;
    ::close(descriptor);
    throw Error("cannot stat '" + path.string() + "': " + std::strerror(error));
  }
  size_ = size_t(status.st_size);
  // mmap refuses length 0; an empty file is simply an empty span.
  if (size_ > 0) {
    void* mapping = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, descriptor, 0);
    if (mapping == MAP_FAILED) {
      const int error = errno;
      ::close(descriptor);
      throw Error("cannot memory-map '" + path.string() + "': " + std::strerror(error));
    }
    data_ = static_cast<const std::byte*>(mapping);
  }
  ::close(descriptor);  // the mapping keeps the file alive
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace moebench::data
