#!/bin/bash
# The guide's conversion scripts end to end on the tiny fixtures: a converted
# DeepSeek-V2 fixture answers `moebench logits` (on 1 rank, and under mpirun
# with TP2 and SP: the reference logits and loss), `moebench run --load` trains
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
bash "$root/tests/mpi/run_mpi.sh" 2 "$MOEBENCH_BIN" logits --load "$work/native" \
  --input "$fixture/reference.safetensors" --output "$work/logits_tp2.safetensors" \
  --tensor-model-parallel-size 2 --sequence-parallel > /dev/null
python3 - "$fixture/reference.safetensors" "$work/logits.safetensors" "$work/logits_tp2.safetensors" <<'PY'
import json, struct, sys
def floats(path, name):
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        begin, end = header[name]["data_offsets"]
        f.seek(begin, 1)
        data = f.read(end - begin)
    return struct.unpack("<%df" % (len(data) // 4), data)
want_logits, want_loss = floats(sys.argv[1], "logits"), floats(sys.argv[1], "loss")[0]
for path in sys.argv[2:]:
    got = floats(path, "logits")
    error = max(abs(a - b) for a, b in zip(got, want_logits)) / max(abs(b) for b in want_logits)
    loss = floats(path, "loss")[0]
    if len(got) != len(want_logits) or error > 1e-4 or abs(loss - want_loss) > 1e-4 * abs(want_loss):
        sys.exit(f"FAIL: {path}: logits rel err {error:.2e}, loss {loss} vs {want_loss}")
PY

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
