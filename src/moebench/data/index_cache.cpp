#include "moebench/data/index_cache.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "moebench/core/atomic_file.h"
#include "moebench/core/rng.h"
#include "moebench/data/indexed_dataset.h"

namespace moebench::data {
namespace {

constexpr std::string_view kCacheMagic = "MBIDXC01";

void append_u64(std::string& out, uint64_t value) { out.append(reinterpret_cast<const char*>(&value), 8); }

// Reads from a byte buffer, reporting failure instead of throwing: a damaged
// cache entry is simply a miss.
class ByteCursor {
 public:
  explicit ByteCursor(const std::string& bytes) : bytes_(bytes) {}
  bool read(void* out, size_t count) {
    if (bytes_.size() - position_ < count) return false;
    std::memcpy(out, bytes_.data() + position_, count);
    position_ += count;
    return true;
  }
  size_t remaining() const { return bytes_.size() - position_; }

 private:
  const std::string& bytes_;
  size_t position_ = 0;
};

std::string file_fingerprint(const std::filesystem::path& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  const auto time = std::filesystem::last_write_time(path, error);
  if (error) return path.string() + " (absent)";
  return path.string() + " size=" + std::to_string(size) +
         " mtime=" + std::to_string(time.time_since_epoch().count());
}

}  // namespace

std::filesystem::path IndexCache::entry_path(const std::string& description, const std::string& kind) const {
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(fnv1a_64(description)));
  return directory_ / (std::string(hash) + "-" + kind + ".indices");
}

std::optional<std::vector<std::vector<int64_t>>> IndexCache::load(const std::string& description,
                                                                  const std::string& kind) const {
  if (!enabled()) return std::nullopt;
  std::ifstream in(entry_path(description, kind), std::ios::binary);
  if (!in) return std::nullopt;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ByteCursor cursor(bytes);
  char magic[8];
  uint64_t length = 0;
  if (!cursor.read(magic, 8) || std::string_view(magic, 8) != kCacheMagic || !cursor.read(&length, 8) ||
      length > cursor.remaining())
    return std::nullopt;
  std::string stored(length, '\0');
  if (!cursor.read(stored.data(), length) || stored != description) return std::nullopt;
  uint64_t count = 0;
  if (!cursor.read(&count, 8) || count > cursor.remaining() / 8) return std::nullopt;
  std::vector<std::vector<int64_t>> arrays(count);
  for (auto& array : arrays) {
    uint64_t elements = 0;
    if (!cursor.read(&elements, 8) || elements > cursor.remaining() / 8) return std::nullopt;
    array.resize(elements);
    if (!cursor.read(array.data(), elements * 8)) return std::nullopt;
  }
  if (cursor.remaining() != 0) return std::nullopt;
  return arrays;
}

void IndexCache::store(const std::string& description, const std::string& kind,
                       const std::vector<std::vector<int64_t>>& arrays) const {
  if (!enabled()) return;
  std::string bytes(kCacheMagic);
  append_u64(bytes, description.size());
  bytes += description;
  append_u64(bytes, arrays.size());
  for (const auto& array : arrays) {
    append_u64(bytes, array.size());
    bytes.append(reinterpret_cast<const char*>(array.data()), array.size() * sizeof(int64_t));
  }
  write_file_atomically(entry_path(description, kind), bytes);
}

std::string corpus_fingerprint(const std::filesystem::path& prefix) {
  return file_fingerprint(index_file_path(prefix)) + "; " + file_fingerprint(data_file_path(prefix));
}

}  // namespace moebench::data
