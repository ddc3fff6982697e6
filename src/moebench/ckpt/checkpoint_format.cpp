#include "moebench/ckpt/checkpoint_format.h"

#include "moebench/ckpt/checkpoint_directory.h"
#include "moebench/core/error.h"

namespace moebench::ckpt {

CheckpointFormat detect_checkpoint_format(const std::filesystem::path& path) {
  if (is_native_checkpoint(path)) return CheckpointFormat::kNative;
  if (std::filesystem::exists(path / "config.json")) return CheckpointFormat::kHuggingFace;
  throw Error("checkpoint " + path.string() + " is neither a moebench checkpoint (" + kMetadataFileName + " or " +
              kTrackerFileName + ") nor a Hugging Face directory (config.json); give one of those");
}

}  // namespace moebench::ckpt
