#pragma once
// Token embedding lookup: row ids[i] of table[V,C] becomes row i of out.
// Ids outside [0, V) throw moebench::Error. The table gradient accumulates (+=).
#include <cstdint>

namespace moebench::ops::cpu {

// out[N,C] = table[ids[i], :] for each of the N ids; `vocab` is V, the
// table's row count (Megatron's padded vocabulary size).
// Instantiated for float and double.
template <typename T>
void embedding_forward(T* out, const std::int64_t* ids, const T* table, std::int64_t n,
                       std::int64_t vocab, std::int64_t c);

// dtable[ids[i], :] += dout[i, :]; repeated ids sum their gradients.
template <typename T>
void embedding_backward(T* dtable, const T* dout, const std::int64_t* ids, std::int64_t n,
                        std::int64_t vocab, std::int64_t c);

}  // namespace moebench::ops::cpu
