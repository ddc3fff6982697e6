#pragma once
// The --data-cache-path store: built sample indices saved under a name derived
// from a description of everything they depend on, so a later run with the
// same inputs loads them instead of rebuilding, and any change of input
// (paths, split, seed, sequence length, sample count, corpus file size or
// modification time) misses the cache and rebuilds.
//
// One file per entry, written atomically: magic "MBIDXC01", uint64 length and
// bytes of the description (compared in full on load, so a hash collision
// cannot serve the wrong indices), uint64 array count, then per array a
// uint64 element count and its int64 elements, little-endian.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace moebench::data {

class IndexCache {
 public:
  // An empty directory disables the cache: loads miss, stores do nothing.
  explicit IndexCache(std::filesystem::path directory) : directory_(std::move(directory)) {}

  bool enabled() const { return !directory_.empty(); }
  // <directory>/<16 hex digits of the description's hash>-<kind>.indices
  std::filesystem::path entry_path(const std::string& description, const std::string& kind) const;

  // The arrays stored for this description, or none when absent, unreadable
  // or made for another description.
  std::optional<std::vector<std::vector<int64_t>>> load(const std::string& description,
                                                        const std::string& kind) const;
  void store(const std::string& description, const std::string& kind,
             const std::vector<std::vector<int64_t>>& arrays) const;

 private:
  std::filesystem::path directory_;
};

// What a corpus contributes to a cache description: its prefix and the size
// and modification time of both files.
std::string corpus_fingerprint(const std::filesystem::path& prefix);

}  // namespace moebench::data
