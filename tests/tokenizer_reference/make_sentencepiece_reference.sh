#!/usr/bin/env bash
# Trains the tiny SentencePiece model of the Llama2Tokenizer test on
# corpus.txt, with Llama's settings (BPE, byte fallback, split digits, no
# normalization), and writes its ids for every line, with the sentencepiece
# command-line tools (Debian package `sentencepiece`).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="$here/../fixtures/tokenizers/sentencepiece"
mkdir -p "$out"
spm_train --input="$here/corpus.txt" --model_prefix="$out/tiny" --model_type=bpe --vocab_size=600 \
  --character_coverage=0.98 --byte_fallback=true --split_digits=true \
  --normalization_rule_name=identity --remove_extra_whitespaces=false --allow_whitespace_only_pieces=true \
  --num_threads=1 --minloglevel=2
rm "$out/tiny.vocab"
spm_encode --model="$out/tiny.model" --output_format=id < "$here/corpus.txt" > "$out/tiny.expected_ids.txt"
