#pragma once
// Files that are either absent or complete: written next to their final name,
// then renamed over it, so a crash or a reader never sees half a file.
#include <filesystem>
#include <string_view>

namespace moebench {

// Creates the parent directory if needed. Throws an Error naming the path.
void write_file_atomically(const std::filesystem::path& path, std::string_view text);

}  // namespace moebench
