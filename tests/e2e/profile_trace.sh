#!/usr/bin/env bash
# --profile with --profile-trace on the CPU: tiny-mixtral trains 4 iterations,
# profiling iterations 2-3; the Chrome trace must hold every layer's forward
# and backward ranges for iterations 2 and 3 and nothing of 1 or 4.
# Usage: profile_trace.sh <moebench binary>
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
moebench=$(realpath "$1")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

MOEBENCH_CONFIG_DIR=$root/configs OUTPUT_PATH=$scratch/run "$moebench" run --model tiny-mixtral --mock-data \
  --train-iters 4 --lr-warmup-iters 1 --eval-iters 0 --profile --profile-step-start 2 --profile-step-end 3 \
  --profile-trace "$scratch/trace.json" >"$scratch/run.txt" 2>&1 \
  || fail "run exited $?: $(tail -5 "$scratch/run.txt")"
[[ -s "$scratch/trace.json" ]] || fail "no trace written"

python3 - "$scratch/trace.json" <<'PY'
import collections, json, sys
trace = json.load(open(sys.argv[1]))["traceEvents"]
names = [e for e in trace if e["ph"] == "M"]
assert [e["args"]["name"] for e in names] == ["host"], f"thread names {names}"  # a CPU run: one timeline
events = [e for e in trace if e["ph"] != "M"]
assert events and all(e["ph"] == "X" and e["dur"] >= 0 and e["tid"] == 0 for e in events), "not complete events"
iterations = sorted({e["args"]["iteration"] for e in events})
assert iterations == [2, 3], f"profiled iterations {iterations}"
layers = collections.Counter(e["name"] for e in events if e["name"].startswith("layer "))
forward = [n for n in layers if n.endswith(" forward")]
assert forward and all(layers[n] == layers[n.replace("forward", "backward")] for n in forward), layers
assert {"attention forward", "moe forward", "moe backward"} <= {e["name"] for e in events}, "module ranges missing"
print(f"ok: {len(events)} ranges over iterations {iterations}, {len(forward)} layers")
PY
