#pragma once
// Megatron-LM's tokenized corpus: a `<prefix>.bin` of token ids back to back
// and a `<prefix>.idx` describing it, byte-compatible with
// megatron/core/datasets/indexed_dataset.py, so corpora preprocessed by either
// tool train in both.
//
// .idx layout (little-endian, packed, no padding):
//   offset 0   9 bytes   magic "MMIDIDX\0\0"
//          9   uint64    version, always 1
//         17   uint8     token dtype code (TokenDType)
//         18   uint64    N = number of sequences
//         26   uint64    D = number of document-index entries (documents + 1)
//         34   int32[N]  sequence lengths, in tokens
//              int64[N]  sequence pointers: byte offset of each sequence in .bin
//              int64[D]  document indices: 0, then for each document the index
//                        of the sequence after its last one (so document k is
//                        sequences [doc[k], doc[k+1]) and doc[D-1] == N)
// Megatron's writer starts the document list with that 0, so D counts it:
// a corpus of 3 documents stores D = 4. Multimodal corpora append int8
// sequence modes; this reader accepts text corpora only.
//
// A "sequence" is what Megatron's GPT sampling calls a document: with the
// default preprocessing every document is one sequence.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "moebench/data/mapped_file.h"

namespace moebench::data {

// Codes as stored in the .idx header (Megatron's DType enum).
enum class TokenDType : uint8_t {
  UInt8 = 1,
  Int8 = 2,
  Int16 = 3,
  Int32 = 4,
  Int64 = 5,
  Float64 = 6,
  Float32 = 7,
  UInt16 = 8,
};

size_t token_dtype_size(TokenDType dtype);
std::string token_dtype_name(TokenDType dtype);
// Megatron's choice for token ids: uint16 when the vocabulary has fewer than
// 65500 entries, int32 otherwise.
TokenDType token_dtype_for_vocabulary(int64_t vocab_size);

std::filesystem::path index_file_path(const std::filesystem::path& prefix);  // prefix + ".idx"
std::filesystem::path data_file_path(const std::filesystem::path& prefix);   // prefix + ".bin"

class IndexedDatasetReader {
 public:
  // Maps both files and validates the index against itself and the .bin;
  // throws an Error naming the file, the fault and the fix.
  explicit IndexedDatasetReader(const std::filesystem::path& prefix);

  const std::filesystem::path& prefix() const { return prefix_; }
  TokenDType dtype() const { return dtype_; }
  int64_t sequence_count() const { return sequence_count_; }
  // Documents, one less than the stored document-index entries.
  int64_t document_count() const { return document_entries_ - 1; }

  // Index entries, read in place from the mapping (they are not aligned in
  // the file, so they are returned by value rather than as spans).
  int32_t sequence_length(int64_t sequence) const;
  int64_t sequence_pointer(int64_t sequence) const;
  // Entry k of the document index, k in [0, document_count()].
  int64_t document_index(int64_t entry) const;
  std::vector<int32_t> sequence_lengths() const;

  // Tokens [offset, offset + length) of a sequence in the stored type, without
  // copying; T must match dtype(). length < 0 means "to the end".
  template <typename T>
  std::span<const T> view(int64_t sequence, int64_t offset = 0, int64_t length = -1) const;
  // The same tokens converted to int64 and appended to `out`.
  void append_tokens(int64_t sequence, int64_t offset, int64_t length, std::vector<int64_t>& out) const;
  std::vector<int64_t> tokens(int64_t sequence, int64_t offset = 0, int64_t length = -1) const;

 private:
  struct ByteRange {
    const std::byte* data;
    int64_t count;  // tokens
  };
  ByteRange locate(int64_t sequence, int64_t offset, int64_t length, TokenDType requested) const;
  template <typename T>
  T read_index_entry(int64_t byte_offset) const;

  std::filesystem::path prefix_;
  MappedFile index_;
  MappedFile data_;
  TokenDType dtype_;
  int64_t sequence_count_ = 0;
  int64_t document_entries_ = 0;
  int64_t lengths_offset_ = 0;
  int64_t pointers_offset_ = 0;
  int64_t documents_offset_ = 0;
};

// Writes a pair the reader (and Megatron) accepts. Tokens stream into a
// temporary .bin; finalize() renames it into place and then writes the .idx
// atomically, having first removed any old .idx, so an interrupted build
// leaves either no pair or a .bin without .idx (which the reader rejects),
// never a .bin and .idx that disagree.
class IndexedDatasetBuilder {
 public:
  IndexedDatasetBuilder(std::filesystem::path prefix, TokenDType dtype);
  ~IndexedDatasetBuilder();  // removes the temporary .bin unless finalized
  IndexedDatasetBuilder(const IndexedDatasetBuilder&) = delete;
  IndexedDatasetBuilder& operator=(const IndexedDatasetBuilder&) = delete;

  // One sequence of the current document; close the document with end_document().
  void add_item(std::span<const int64_t> tokens);
  void end_document();
  // A whole document made of sequences of the given lengths (summing to tokens.size()).
  void add_document(std::span<const int64_t> tokens, std::span<const int32_t> sequence_lengths);
  void finalize();

 private:
  void write_tokens(std::span<const int64_t> tokens);

  std::filesystem::path prefix_;
  TokenDType dtype_;
  std::filesystem::path temporary_data_;
  std::ofstream data_;
  std::vector<int32_t> sequence_lengths_;
  std::vector<int64_t> document_indices_{0};
  bool finalized_ = false;
};

template <typename T>
TokenDType token_dtype_of();
template <> inline TokenDType token_dtype_of<uint8_t>() { return TokenDType::UInt8; }
template <> inline TokenDType token_dtype_of<int8_t>() { return TokenDType::Int8; }
template <> inline TokenDType token_dtype_of<int16_t>() { return TokenDType::Int16; }
template <> inline TokenDType token_dtype_of<int32_t>() { return TokenDType::Int32; }
template <> inline TokenDType token_dtype_of<int64_t>() { return TokenDType::Int64; }
template <> inline TokenDType token_dtype_of<double>() { return TokenDType::Float64; }
template <> inline TokenDType token_dtype_of<float>() { return TokenDType::Float32; }
template <> inline TokenDType token_dtype_of<uint16_t>() { return TokenDType::UInt16; }

template <typename T>
std::span<const T> IndexedDatasetReader::view(int64_t sequence, int64_t offset, int64_t length) const {
  const ByteRange range = locate(sequence, offset, length, token_dtype_of<T>());
  // The mapping is page-aligned and pointers are multiples of the token size.
  return {reinterpret_cast<const T*>(range.data), size_t(range.count)};
}

}  // namespace moebench::data
