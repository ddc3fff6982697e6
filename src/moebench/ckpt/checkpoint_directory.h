#pragma once
// Where the pieces of a native checkpoint live, as Megatron lays out its
// checkpoints:
//   <root>/latest_checkpointed_iteration.txt   "10", or "release" for a converted checkpoint
//   <root>/iter_0000010/ or <root>/release/    one checkpoint:
//       rank_00000.safetensors ...             each saving rank's shards
//       metadata.json                          written last: the checkpoint is complete
// A checkpoint is assembled in a hidden staging directory beside its final
// name (<root>/.iter_0000010.staging) and renamed into place when complete,
// so a reader never sees half of one.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace moebench::ckpt {

inline constexpr const char* kTrackerFileName = "latest_checkpointed_iteration.txt";
inline constexpr const char* kMetadataFileName = "metadata.json";
inline constexpr const char* kReleaseName = "release";

// "iter_0000010" for 10; "release" for a converted checkpoint (no iteration).
std::string checkpoint_name(std::optional<int64_t> iteration);
// "rank_00003.safetensors".
std::string rank_file_name(int rank);
std::filesystem::path staging_directory(const std::filesystem::path& root, const std::string& name);

// The tracker's content ("release" or an iteration number), if the file exists.
// Throws an Error for content that is neither.
std::optional<std::string> read_tracker(const std::filesystem::path& root);
// Atomically; Megatron's tracker holds the bare iteration number.
void write_tracker(const std::filesystem::path& root, std::optional<int64_t> iteration);

// True for a checkpoint directory (holding metadata.json) or a root whose
// tracker names one.
bool is_native_checkpoint(const std::filesystem::path& path);
// The checkpoint directory that `path` means: itself when it holds
// metadata.json, else the one its tracker names. Throws an Error saying what
// is missing otherwise.
std::filesystem::path resolve_checkpoint_directory(const std::filesystem::path& path);

}  // namespace moebench::ckpt
