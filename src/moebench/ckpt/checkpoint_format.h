#pragma once
// The two kinds of checkpoint directory moebench reads: its own native
// distributed checkpoint and a Hugging Face hub directory. As Megatron's
// --auto-detect-ckpt-format, commands accept either and look which it is.
#include <filesystem>

namespace moebench::ckpt {

enum class CheckpointFormat { kNative, kHuggingFace };

// Native: metadata.json or a tracker file; Hugging Face: config.json. Throws
// an Error naming the path and what it lacks otherwise.
CheckpointFormat detect_checkpoint_format(const std::filesystem::path& path);

}  // namespace moebench::ckpt
