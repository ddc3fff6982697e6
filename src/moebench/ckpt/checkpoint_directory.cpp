#include "moebench/ckpt/checkpoint_directory.h"

#include <cstdio>
#include <fstream>

#include "moebench/core/atomic_file.h"
#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace fs = std::filesystem;

std::string checkpoint_name(std::optional<int64_t> iteration) {
  if (!iteration) return kReleaseName;
  char name[32];
  std::snprintf(name, sizeof name, "iter_%07lld", static_cast<long long>(*iteration));
  return name;
}

std::string rank_file_name(int rank) {
  char name[40];
  std::snprintf(name, sizeof name, "rank_%05d.safetensors", rank);
  return name;
}

fs::path staging_directory(const fs::path& root, const std::string& name) { return root / ("." + name + ".staging"); }

std::optional<std::string> read_tracker(const fs::path& root) {
  std::ifstream file(root / kTrackerFileName);
  if (!file) return std::nullopt;
  std::string text;
  file >> text;
  const bool number = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (text != kReleaseName && !number)
    throw Error("checkpoint tracker " + (root / kTrackerFileName).string() + " holds '" + text +
                "', not an iteration number or 'release'; fix or delete the file");
  return text;
}

void write_tracker(const fs::path& root, std::optional<int64_t> iteration) {
  write_file_atomically(root / kTrackerFileName, (iteration ? std::to_string(*iteration) : kReleaseName) + std::string("\n"));
}

bool is_native_checkpoint(const fs::path& path) {
  return fs::exists(path / kMetadataFileName) || fs::exists(path / kTrackerFileName);
}

fs::path resolve_checkpoint_directory(const fs::path& path) {
  if (fs::exists(path / kMetadataFileName)) return path;
  const std::optional<std::string> tracked = read_tracker(path);
  if (!tracked)
    throw Error("checkpoint " + path.string() + " has neither " + kMetadataFileName + " nor " + kTrackerFileName +
                "; give a directory saved by moebench (--save) or converted by `moebench convert`");
  const std::string name = *tracked == kReleaseName ? *tracked : checkpoint_name(std::stoll(*tracked));
  const fs::path directory = path / name;
  if (!fs::exists(directory / kMetadataFileName))
    throw Error("checkpoint " + path.string() + ": its tracker names '" + name + "' but " +
                (directory / kMetadataFileName).string() +
                " does not exist; the checkpoint is incomplete: restore it or fix " + kTrackerFileName);
  return directory;
}

}  // namespace moebench::ckpt
