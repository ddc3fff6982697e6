#include "moebench/core/atomic_file.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "moebench/core/error.h"

namespace moebench {

void write_file_atomically(const std::filesystem::path& path, std::string_view text) {
  std::error_code error;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), error);
  if (error)
    throw Error("cannot create directory '" + path.parent_path().string() + "': " + error.message());
  // The pid keeps two processes writing the same file from sharing a temporary.
  std::filesystem::path temporary = path;
  temporary += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(text.data(), std::streamsize(text.size()));
    if (!out.flush()) throw Error("cannot write '" + temporary.string() + "'; check permissions and disk space");
  }
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::filesystem::remove(temporary);
    throw Error("cannot rename '" + temporary.string() + "' to '" + path.string() + "': " + error.message());
  }
}

}  // namespace moebench
