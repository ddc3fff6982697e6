#pragma once
// Reads back the scalars of a TensorBoard event file, verifying every record's
// CRCs: how tests check what TensorBoardWriter wrote, and how reports read runs.
#include <filesystem>
#include <vector>

#include "moebench/obs/tensorboard_event.h"

namespace moebench {

// Every simple-value scalar in the file, in file order. Throws on a CRC
// mismatch or a truncated record (naming its offset) and on malformed events.
std::vector<TensorBoardScalar> read_tensorboard_scalars(const std::filesystem::path& event_file);

}  // namespace moebench
