#!/bin/bash
# The guide's conversion scripts end to end on the tiny fixtures: a converted
# DeepSeek-V2 fixture answers `moebench logits`, `moebench run --load` trains
# from it and `--ckpt-convert-save` re-saves it, and the scripts' error paths
# (unknown MODEL, missing path) exit non-zero with one line.
#   bash tests/e2e/convert_fixtures.sh path/to/moebench
set -euo pipefail
export MOEBENCH_BIN=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
export MOEBENCH_CONFIG_DIR=$root/configs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixture=$root/tests/fixtures/hf/tiny-deepseek-v2

MODEL=DeepSeek-V2-Lite SOURCE_CKPT_PATH=$fixture TARGET_CKPT_PATH=$work/native EP=2 \
  bash "$root/scripts/convert_deepseek_v2.sh" > /dev/null
test "$(cat "$work/native/latest_checkpointed_iteration.txt")" = release
"$MOEBENCH_BIN" logits --load "$work/native" --input "$fixture/reference.safetensors" --output "$work/logits.safetensors" > /dev/null

expect_failure() {  # expect_failure <what> <stderr pattern> <command...>
  local what=$1 pattern=$2
  shift 2
  if "$@" > /dev/null 2> "$work/stderr"; then echo "FAIL: $what succeeded" >&2; exit 1; fi
  if [[ $(wc -l < "$work/stderr") -ne 1 ]] || ! grep -q "$pattern" "$work/stderr"; then
    echo "FAIL: $what: expected one line matching '$pattern', got:" >&2; cat "$work/stderr" >&2; exit 1
  fi
}
expect_failure "v2 script with MODEL=DeepSeek-V3" "is not one of: DeepSeek-V2 DeepSeek-V2-Lite" \
  env MODEL=DeepSeek-V3 SOURCE_CKPT_PATH=$fixture TARGET_CKPT_PATH=$work/x bash "$root/scripts/convert_deepseek_v2.sh"
expect_failure "v3 script with MODEL=DeepSeek-V2" "is not one of: DeepSeek-V3" \
  env MODEL=DeepSeek-V2 SOURCE_CKPT_PATH=$fixture TARGET_CKPT_PATH=$work/x bash "$root/scripts/convert_deepseek_v3.sh"
expect_failure "v3 script with a missing source" "SOURCE_CKPT_PATH='$work/none' is not a Hugging Face checkpoint" \
  env MODEL=DeepSeek-V3 SOURCE_CKPT_PATH=$work/none TARGET_CKPT_PATH=$work/x bash "$root/scripts/convert_deepseek_v3.sh"
expect_failure "v2 script without a target" "TARGET_CKPT_PATH is not set" \
  env MODEL=DeepSeek-V2 SOURCE_CKPT_PATH=$fixture TARGET_CKPT_PATH= bash "$root/scripts/convert_deepseek_v2.sh"
expect_failure "v3 script on the v2 fixture (no FP8, wrong layers)" "moebench: error:" \
  env MODEL=DeepSeek-V3 SOURCE_CKPT_PATH=$root/tests/fixtures/hf/tiny-qwen3-moe TARGET_CKPT_PATH=$work/x TP=3 \
  bash "$root/scripts/convert_deepseek_v3.sh"
test ! -e "$work/x/release"

# Training from a Hugging Face directory and from a native checkpoint, and Megatron's convert-on-load.
run=(--model tiny-deepseek-v2 --train-iters 2 --eval-iters 0 --micro-batch-size 1 --global-batch-size 2 --log-interval 1 --lr-warmup-iters 1)
cd "$work"
"$MOEBENCH_BIN" run "${run[@]}" --load "$fixture" --save "$work/trained" --output-dir "$work/out1" > /dev/null
test "$(cat "$work/trained/latest_checkpointed_iteration.txt")" = 2
"$MOEBENCH_BIN" run "${run[@]}" --load "$work/trained" --ckpt-convert-save "$work/converted" \
  --ckpt-convert-format torch_dist --output-dir "$work/out2" > /dev/null
test -f "$work/converted/iter_0000002/metadata.json"
echo "convert_fixtures: ok"
