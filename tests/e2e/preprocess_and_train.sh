#!/usr/bin/env bash
# Text to training: a JSONL of whitespace-separated token ids goes through
# `moebench preprocess` (NullTokenizer), and tiny-mixtral trains 10 iterations
# on the resulting .bin/.idx; metrics.jsonl must hold every iteration with a
# finite loss and the validation records of iterations 5 and 10. A bad line
# must fail with one error line naming it and leave no output.
# Usage: preprocess_and_train.sh <moebench binary>
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
moebench=$(realpath "$1")
export MOEBENCH_BIN=$moebench MOEBENCH_CONFIG_DIR=$root/configs
export MOEBENCH_CONFIG_DIR=$root/configs
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 500 documents of 20-119 ids below 383, the same every run.
awk 'BEGIN { srand(7); for (d = 0; d < 500; ++d) { n = 20 + int(rand() * 100); line = "";
       for (t = 0; t < n; ++t) line = line (t ? " " : "") int(rand() * 383);
       printf "{\"text\": \"%s\", \"id\": %d}\n", line, d } }' >"$scratch/corpus.jsonl"
tokens=$(awk -F'"' '{ total += split($4, ids, " ") } END { print total }' "$scratch/corpus.jsonl")

"$moebench" preprocess --input "$scratch/corpus.jsonl" --output-prefix "$scratch/corpus" \
  --tokenizer-type NullTokenizer --vocab-size 383 --append-eod --workers 2 >"$scratch/preprocess.txt" \
  || fail "preprocess exited $?: $(cat "$scratch/preprocess.txt")"
grep -q "^preprocess: 500 documents, $((tokens + 500)) tokens" "$scratch/preprocess.txt" \
  || fail "unexpected summary: $(cat "$scratch/preprocess.txt")"
# uint16 ids (a vocabulary of 384), one EOD per document.
[[ $(stat -c %s "$scratch/corpus_text_document.bin") == $((2 * (tokens + 500))) ]] || fail "wrong .bin size"
[[ -s "$scratch/corpus_text_document.idx" ]] || fail "no .idx"
echo "ok: preprocessed $tokens tokens"

OUTPUT_PATH=$scratch/run "$moebench" run --model tiny-mixtral --data-path "$scratch/corpus_text_document" \
  --tokenizer-type NullTokenizer --vocab-size 383 --train-iters 10 --eval-interval 5 >"$scratch/run.txt" \
  || fail "run exited $?: $(tail -5 "$scratch/run.txt")"
grep -q "data $scratch/corpus_text_document" "$scratch/run.txt" || fail "the run did not train on the corpus"

python3 - "$scratch/run/metrics.jsonl" <<'PY'
import json, math, sys
records = [json.loads(line) for line in open(sys.argv[1])]
train = [r for r in records if r.get("type") == "train"]
valid = [r for r in records if r.get("type") == "validation"]
assert [r["iteration"] for r in train] == list(range(1, 11)), "iterations missing"
assert all(math.isfinite(r["lm_loss"]) for r in train + valid), "a loss is not finite"
assert [r["iteration"] for r in valid] == [5, 10], f"validation records: {valid}"
print(f"lm loss {train[0]['lm_loss']:.3f} -> {train[-1]['lm_loss']:.3f}; validation {[round(r['lm_loss'], 3) for r in valid]}")
PY

# The guide's way: DATA_PATH comes from the cluster file, keyed by DATASET:MODEL.
cat >"$scratch/cluster.yaml" <<YAML
PARTITION: debug
RUN_NAME: moebench
OUTPUT_PATH: $scratch/cluster_run
DATA_PATH:
  "Mock:tiny-mixtral": $scratch/corpus_text_document
YAML
MODEL=tiny-mixtral CLUSTER=$scratch/cluster.yaml GPUS_PER_NODE=1 NNODES=1 \
  bash "$root/scripts/interactive_benchmarking.sh" --train-iters 2 --lr-warmup-iters 1 --eod-mask-loss >"$scratch/cluster.txt" \
  || fail "cluster-file run exited $?: $(tail -5 "$scratch/cluster.txt")"
grep -q "data $scratch/corpus_text_document" "$scratch/cluster.txt" \
  || fail "the run did not take DATA_PATH from the cluster file: $(head -3 "$scratch/cluster.txt")"
echo "ok: DATA_PATH from the cluster file"

# A bad line: exit 2, one line naming it, nothing written.
sed '3s/.*/{"text": oops}/' "$scratch/corpus.jsonl" >"$scratch/bad.jsonl"
set +e
"$moebench" preprocess --input "$scratch/bad.jsonl" --output-prefix "$scratch/bad" \
  --tokenizer-type NullTokenizer --vocab-size 383 >/dev/null 2>"$scratch/err.txt"
status=$?
set -e
[[ $status == 2 ]] || fail "a bad line exited $status, expected 2"
[[ $(wc -l <"$scratch/err.txt") == 1 ]] || fail "the error is not one line: $(cat "$scratch/err.txt")"
grep -q "line 3" "$scratch/err.txt" || fail "the error does not name line 3: $(cat "$scratch/err.txt")"
[[ -z $(ls "$scratch" | grep '^bad_') ]] || fail "a failed run left files: $(ls "$scratch")"
echo "ok: tiny-mixtral trained on a preprocessed corpus"
