#pragma once
// Loading the vocabulary-sized tensors across paddings. The word embeddings
// and the output layer (and Adam's moments of them) have padded_vocab_size
// rows, the real vocabulary padded to a multiple of
// --make-vocab-size-divisible-by x TP, so a checkpoint saved under another TP
// size (or divisor) holds another row count. As Megatron, loading keeps the
// real vocabulary's rows and leaves the padding rows zero.
#include "moebench/ckpt/native_checkpoint.h"

namespace moebench::ckpt {

// checkpoint.read(target), except for a vocabulary-sized tensor whose stored
// row count differs from target.global_shape's while both hold the real
// vocabulary (as the checkpoint's model_args record it): rows [0, min(saved,
// model)) are read and target's other rows set to zero. Any other difference
// throws read's Error, or one naming both shapes when a row count is smaller
// than the real vocabulary.
void read_across_vocabulary_padding(const NativeCheckpoint& checkpoint, const ShardedTensor& target);

}  // namespace moebench::ckpt
