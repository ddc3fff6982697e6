#pragma once
// Memory of this process as the operating system counts it: what the CPU
// engine reports where Megatron reports CUDA allocator figures.
#include <cstdint>

namespace moebench {

// Peak resident set size of this process so far, in bytes.
int64_t peak_resident_bytes();

}  // namespace moebench
