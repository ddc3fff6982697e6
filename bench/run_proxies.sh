#!/usr/bin/env bash
# The three single-GPU proxies of shared/reference/performance-floor.md through
# `moebench run` on this machine's GPU: sequence 4096, MBS 1, GBS 8 (eight
# micro-batches, one optimizer step), bf16 mixed precision, mock data,
# TP=PP=EP=1 on one GPU. For each proxy it reads the run's metrics.jsonl,
# takes the median step time over the iterations after WARMUP warm-ups, and
# appends one JSON line to bench/results/moebench.jsonl:
#   system ("moebench <commit>"), proxy, gpu, commit, date, step_s, tflops,
#   tokens_per_s, peak_mem_gb (the caching allocator's peak, GiB), or an
#   "error" (e.g. out of memory) when the run failed.
#
# Usage: bash bench/run_proxies.sh [proxy ...]   (mixtral deepseek qwen2; default all)
# Environment: MOEBENCH (binary, default build/moebench), ITERS (default 6),
#   WARMUP (default 2), RUNS_DIR (default bench/runs), RESULTS (default
#   bench/results/moebench.jsonl), COMMIT (default: git's), EXTRA_ARGS (more
#   `moebench run` flags for every proxy, recorded as "extra_args", e.g.
#   "--use-precision-aware-optimizer --exp-avg-dtype bf16 --exp-avg-sq-dtype bf16");
#   MOEBENCH_GROUPED_GEMM=kernel|cublaslt passes through.
set -uo pipefail
cd "$(dirname "$0")/.."

MOEBENCH=${MOEBENCH:-build/moebench}
ITERS=${ITERS:-6}
WARMUP=${WARMUP:-2}
RUNS_DIR=${RUNS_DIR:-bench/runs}
RESULTS=${RESULTS:-bench/results/moebench.jsonl}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet HEAD; then COMMIT="${COMMIT}-dirty"; fi
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
GPU=${GPU:-unknown}
mkdir -p "$RUNS_DIR" "$(dirname "$RESULTS")"

# proxy key -> "display name|MODEL|NUM_LAYERS|the proxy's own flags". The
# routed experts' weight gradient is added once per N micro-batches
# (--moe-wgrad-microbatches, docs/configuration.md) with N as large as the
# proxy's memory allows on an 80 GB H100 (Qwen2's kept operands cost 1.9 GB
# per micro-batch).
declare -A PROXIES=(
  [mixtral]="Mixtral-8x7B-L2|Mixtral-8x7B|2|--moe-wgrad-microbatches 4"
  [deepseek]="DeepSeek-V2-Lite-L4|DeepSeek-V2-Lite|4|--moe-layer-freq ([0]+[1]*3) --moe-wgrad-microbatches 8"
  [qwen2]="Qwen2-57B-A14B-L2|Qwen2-57B-A14B|2|--moe-wgrad-microbatches 2"
)
selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=(mixtral deepseek qwen2)

for key in "${selected[@]}"; do
  spec=${PROXIES[$key]:-}
  if [ -z "$spec" ]; then echo "unknown proxy '$key' (mixtral, deepseek, qwen2)" >&2; exit 2; fi
  IFS='|' read -r name model layers extra <<<"$spec"
  out="$RUNS_DIR/$key"
  rm -rf "$out" && mkdir -p "$out"
  read -ra extra_args <<<"$extra"
  echo "== $name: MODEL=$model NUM_LAYERS=$layers ${extra_args[*]:-} ($ITERS iterations)"
  env MODEL="$model" NUM_LAYERS="$layers" TP=1 PP=1 EP=1 CP=1 VPP=1 MBS=1 GBS=8 SEQ_LEN=4096 PR=bf16 \
      GPUS_PER_NODE=1 NNODES=1 \
      "$MOEBENCH" run --mock-data --device cuda --train-samples $((ITERS * 8)) --eval-iters 0 --log-interval 1 --save "" \
      --output-dir "$out" "${extra_args[@]}" ${EXTRA_ARGS:-} >"$out/log.txt" 2>&1
  rc=$?
  tail -n 3 "$out/log.txt"
  python3 - "$out" "$rc" "$name" "$key" "$GPU" "$COMMIT" "$WARMUP" "$RESULTS" "${EXTRA_ARGS:-}" "$extra" <<'PY'
import datetime, json, statistics, sys
out, rc, name, key, gpu, commit, warmup, results, extra_args, proxy_args = sys.argv[1:]
rc, warmup = int(rc), int(warmup)
rec = {"system": f"moebench {commit}", "proxy": name, "proxy_key": key, "gpu": gpu, "commit": commit,
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "seq_len": 4096, "micro_batches": 8, "dtype": "bfloat16", "warmup_steps": warmup}
rec["proxy_args"] = proxy_args
if extra_args:
    rec["extra_args"] = extra_args
iters = []
try:
    with open(f"{out}/metrics.jsonl") as f:
        iters = [r for r in map(json.loads, f) if r.get("type") == "train"]
except FileNotFoundError:
    pass
log = open(f"{out}/log.txt", errors="replace").read()
timed = [r for r in iters if r["iteration"] > warmup]
if rc != 0 or not timed:
    lines = [l for l in log.splitlines() if l.strip()]
    oom = "out of memory" in log.lower() or "cudaerrormemoryallocation" in log.lower()
    rec["error"] = ("out of memory: " if oom else f"exit {rc}: ") + (lines[-1] if lines else "no output")
else:
    step_s = statistics.median(r["elapsed_ms"] for r in timed) / 1e3
    rec.update({
        "step_s": step_s,
        "step_times_s": [r["elapsed_ms"] / 1e3 for r in timed],
        "tflops": statistics.median(r["tflops_per_gpu"] for r in timed),
        "tokens_per_s": statistics.median(r["tokens_per_second"] for r in timed),
        # GiB, as performance-floor.md and the PyTorch peer count GB
        "peak_mem_gb": max(r.get("peak_device_memory_bytes", 0) for r in iters) / 2**30,
        "final_lm_loss": iters[-1]["lm_loss"],
    })
with open(results, "a") as f:
    f.write(json.dumps(rec) + "\n")
if "error" in rec:
    print(f"{rec['system']} | {name} | ERROR: {rec['error']}")
else:
    print(f"{rec['system']} | {name} | step {rec['step_s']:.3f} s | {rec['tflops']:.1f} TFLOP/s | "
          f"{rec['tokens_per_s']:.0f} tokens/s | peak {rec['peak_mem_gb']:.1f} GB | {gpu}")
PY
done
