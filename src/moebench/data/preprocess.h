#pragma once
// Megatron-LM's tools/preprocess_data.py: a JSONL file (one JSON object, one
// document, per line) tokenized into one .bin/.idx pair per JSON key, named
// `{output_prefix}_{key}_document`. Without sentence splitting every document
// is one sequence; a key whose value is a list of strings (sentences already
// split) gives one sequence per non-empty entry; an empty text gives an empty
// document, as Megatron writes it. The tokenizer's bos(), when it has one,
// starts every sequence (so an empty text is then the sequence [bos]), and
// --append-eod ends the document's last one.
//
// Work is spread over threads: a reader cuts the file into chunks of whole
// lines, `workers` threads parse and tokenize chunks, and the calling thread
// appends the results to the builders in input order, so the output does not
// depend on the thread count. At most a few chunks per worker are in flight
// at once, which bounds memory whatever the file size.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "moebench/data/tokenizer.h"

namespace moebench::data {

struct PreprocessProgress {
  int64_t documents = 0;    // JSON lines written so far
  int64_t tokens = 0;       // over every key, BOS and EOD included
  int64_t bytes_read = 0;   // of the input, newlines included
  int64_t input_bytes = 0;  // size of the whole input
  double seconds = 0;       // since the start
};

struct PreprocessOptions {
  std::filesystem::path input;  // --input
  std::string output_prefix;    // --output-prefix
  std::vector<std::string> json_keys{"text"};
  bool append_eod = false;  // end every non-empty document with the tokenizer's EOD id
  int workers = 1;          // tokenizing threads
  // Input lines are handed to the workers in chunks of about this many bytes.
  int64_t chunk_bytes = int64_t(1) << 20;
  // Called on the calling thread after each chunk is written, and once at the end.
  std::function<void(const PreprocessProgress&)> on_progress;
  // Polled between chunks; once set, the run stops without writing any output
  // (a SIGINT handler sets it). May be null.
  const std::atomic<bool>* interrupted = nullptr;
};

struct PreprocessSummary {
  PreprocessProgress totals;
  bool interrupted = false;  // stopped by `interrupted`: no output was written
  std::vector<std::filesystem::path> outputs;  // one prefix per JSON key
};

// `{output_prefix}_{key}_document`, the prefix --data-path then names.
std::filesystem::path preprocessed_prefix(const std::string& output_prefix, const std::string& key);

// Tokenizes `options.input` with `tokenizer`, whose encode() is called from
// several threads at once. The pairs appear only when every line is done
// (IndexedDatasetBuilder renames its temporaries at finalize), so an error or
// an interruption leaves no partial output. Throws an Error naming the line
// for a line that is not a JSON object, lacks a key or holds a non-string.
PreprocessSummary preprocess_jsonl(const PreprocessOptions& options, const Tokenizer& tokenizer);

}  // namespace moebench::data
