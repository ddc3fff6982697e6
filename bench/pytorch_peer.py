#!/usr/bin/env python3
"""PyTorch peer of the moebench benchmark (see bench/README.md).

Builds the three single-GPU proxies of shared/reference/performance-floor.md from
configs written below (nothing is downloaded), as Hugging Face transformers models
with attn_implementation="sdpa" and experts_implementation="grouped_mm", bf16
weights on CUDA, torch.optim.AdamW(fused=True), and times a training step:
8 micro-batches of one 4096-token sequence, loss.backward() accumulated, then
optimizer.step() and zero_grad(set_to_none=True). Two warm-up steps, then the
median of N timed steps, eager and/or under torch.compile(model) (default mode).

Dependencies: Python 3 standard library, torch, transformers. Run on the GPU machine:

    python3 bench/pytorch_peer.py --proxy all --mode both --steps 5 --commit $(git rev-parse --short HEAD)
"""

import argparse
import dataclasses
import datetime
import gc
import inspect
import json
import math
import os
import statistics
import sys
import time
import traceback

import torch
import transformers
from transformers import AutoModelForCausalLM, DeepseekV2Config, MixtralConfig, Qwen2MoeConfig

ATTN_IMPLEMENTATION = "sdpa"
EXPERTS_IMPLEMENTATION = "grouped_mm"

# ---------------------------------------------------------------------------
# The three proxies: real widths, experts and vocabulary, fewer layers.
# Keyword arguments are the transformers 5.x config field names; every key is
# checked against the config class's fields (a misspelt key would otherwise be
# set silently as an extra attribute).
# ---------------------------------------------------------------------------
PROXIES = {
    "mixtral": {
        "name": "Mixtral-8x7B-L2",
        "config_class": MixtralConfig,
        "vocab_divisible_by": 128,  # Megatron --make-vocab-size-divisible-by (model-zoo.md)
        "config": dict(
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=14336,  # expert ffn (all layers MoE)
            num_hidden_layers=2,
            num_attention_heads=32,
            num_key_value_heads=8,
            num_local_experts=8,
            num_experts_per_tok=2,
            max_position_embeddings=32768,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            sliding_window=None,
            tie_word_embeddings=False,
            output_router_logits=False,  # as the released config: no aux loss in the HF loss
            use_cache=False,  # training: no KV cache
        ),
    },
    "deepseek-v2-lite": {
        "name": "DeepSeek-V2-Lite-L4",
        "config_class": DeepseekV2Config,
        "vocab_divisible_by": 3200,
        "config": dict(
            vocab_size=102400,
            hidden_size=2048,
            intermediate_size=10944,  # dense MLP of the first layer
            moe_intermediate_size=1408,
            num_hidden_layers=4,
            first_k_dense_replace=1,  # layer 0 dense, layers 1-3 MoE
            num_attention_heads=16,
            num_key_value_heads=16,
            kv_lora_rank=512,
            q_lora_rank=None,
            qk_nope_head_dim=128,
            qk_rope_head_dim=64,
            v_head_dim=128,
            n_routed_experts=64,
            num_experts_per_tok=6,
            n_shared_experts=2,
            topk_method="greedy",
            norm_topk_prob=False,
            routed_scaling_factor=1.0,
            max_position_embeddings=163840,
            rms_norm_eps=1e-6,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 40.0,
                "original_max_position_embeddings": 4096,
                "mscale": 0.707,
                "mscale_all_dim": 0.707,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
            },
            attention_bias=False,
            tie_word_embeddings=False,
            use_cache=False,
        ),
    },
    "qwen2-57b": {
        "name": "Qwen2-57B-A14B-L2",
        "config_class": Qwen2MoeConfig,
        "vocab_divisible_by": 1187,
        "config": dict(
            vocab_size=151936,
            hidden_size=3584,
            intermediate_size=18944,  # dense size of the released config; unused (all layers MoE)
            moe_intermediate_size=2560,
            shared_expert_intermediate_size=20480,
            num_hidden_layers=2,
            decoder_sparse_step=1,
            mlp_only_layers=[],
            num_attention_heads=28,
            num_key_value_heads=4,
            num_experts=64,
            num_experts_per_tok=8,
            norm_topk_prob=False,
            qkv_bias=True,  # Qwen2 has q/k/v biases
            max_position_embeddings=32768,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            use_sliding_window=False,
            tie_word_embeddings=False,
            output_router_logits=False,
            use_cache=False,
        ),
    },
}

# Model FLOPs per step (8 x 4096 tokens) by the model-zoo.md formula, as
# performance-floor.md lists them; asserted to 0.1% at start-up:
#   Mixtral-8x7B-L2      187.4 TFLOP
#   DeepSeek-V2-Lite-L4  114.3 TFLOP
#   Qwen2-57B-A14B-L2    297.6 TFLOP
REFERENCE_TFLOP_PER_STEP = {"mixtral": 187.4, "deepseek-v2-lite": 114.3, "qwen2-57b": 297.6}


class SetupError(RuntimeError):
    """The peer could not be configured as specified: abort, never fall back."""


# ---------------------------------------------------------------------------
# FLOPs: the formula of shared/reference/model-zoo.md (Megatron-LM's), the same
# as src/moebench/train/flops.cpp.
#   F = B*s*6*[ h*(3*ffn*n_dense + 3*moe_ffn*topk*n_moe + 3*shared*n_moe)
#               + A*n_layers + h*V_padded ]
#   GQA: A = h*(q + k + v) + q*s + q*h,  q = kv_channels*heads, k = v = kv_channels*groups
#   MLA: A = q_term + kv_lora*(h + heads*(qk + v_head) + 1) + h*qk_rope + heads*v_head*h
#            + s*heads*(qk + qk_rope)/2 + s*heads*v_head/2
#        q_term = h*heads*(qk + qk_rope) (no q-LoRA) or q_lora*(h + heads*(qk + qk_rope) + 1)
# ---------------------------------------------------------------------------
def padded_vocab(vocab, divisible_by):
    return int(math.ceil(vocab / divisible_by) * divisible_by)


def gqa_attention_term(h, heads, groups, kv_channels, s):
    q = kv_channels * heads
    kv = kv_channels * groups
    return h * (q + 2 * kv) + q * s + q * h


def mla_attention_term(h, heads, qk, qk_rope, v_head, kv_lora, q_lora, s):
    if q_lora:
        q_term = q_lora * (h + heads * (qk + qk_rope) + 1)
    else:
        q_term = h * heads * (qk + qk_rope)
    return (q_term + kv_lora * (h + heads * (qk + v_head) + 1) + h * qk_rope + heads * v_head * h
            + s * heads * (qk + qk_rope) / 2 + s * heads * v_head / 2)


def flops_terms(proxy, cfg, s):
    """The formula's terms read from a built HF config object."""
    h = cfg.hidden_size
    n_layers = cfg.num_hidden_layers
    heads = cfg.num_attention_heads
    if proxy == "mixtral":
        kv_channels = getattr(cfg, "head_dim", None) or h // heads
        return dict(h=h, n_layers=n_layers, ffn=0, n_dense=0, moe_ffn=cfg.intermediate_size,
                    topk=cfg.num_experts_per_tok, n_moe=n_layers, shared=0,
                    A=gqa_attention_term(h, heads, cfg.num_key_value_heads, kv_channels, s))
    if proxy == "deepseek-v2-lite":
        n_dense = cfg.first_k_dense_replace
        return dict(h=h, n_layers=n_layers, ffn=cfg.intermediate_size, n_dense=n_dense,
                    moe_ffn=cfg.moe_intermediate_size, topk=cfg.num_experts_per_tok,
                    n_moe=n_layers - n_dense, shared=cfg.moe_intermediate_size * cfg.n_shared_experts,
                    A=mla_attention_term(h, heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim,
                                         cfg.v_head_dim, cfg.kv_lora_rank, cfg.q_lora_rank, s))
    if proxy == "qwen2-57b":
        kv_channels = getattr(cfg, "head_dim", None) or h // heads
        return dict(h=h, n_layers=n_layers, ffn=0, n_dense=0, moe_ffn=cfg.moe_intermediate_size,
                    topk=cfg.num_experts_per_tok, n_moe=n_layers,
                    shared=cfg.shared_expert_intermediate_size,
                    A=gqa_attention_term(h, heads, cfg.num_key_value_heads, kv_channels, s))
    raise ValueError(proxy)


def model_flops_per_step(proxy, cfg, micro_batches, seq_len):
    t = flops_terms(proxy, cfg, seq_len)
    v_padded = padded_vocab(cfg.vocab_size, PROXIES[proxy]["vocab_divisible_by"])
    mlp = 3 * t["ffn"] * t["n_dense"] + 3 * t["moe_ffn"] * t["topk"] * t["n_moe"] + 3 * t["shared"] * t["n_moe"]
    per_token = t["h"] * mlp + t["A"] * t["n_layers"] + t["h"] * v_padded
    return micro_batches * seq_len * 6 * per_token


# ---------------------------------------------------------------------------
# Building and checking a proxy
# ---------------------------------------------------------------------------
def config_field_names(config_class):
    """Field names of a config class: dataclass fields (transformers 5.x configs are dataclasses)
    plus named __init__ parameters (older style) plus attribute_map aliases."""
    names = set(inspect.signature(config_class.__init__).parameters) - {"self", "args", "kwargs"}
    if dataclasses.is_dataclass(config_class):
        names |= {f.name for f in dataclasses.fields(config_class)}
    names |= set(getattr(config_class, "attribute_map", {}) or {})
    return names


def make_config(proxy):
    spec = PROXIES[proxy]
    cls = spec["config_class"]
    known = config_field_names(cls)
    unknown = sorted(k for k in spec["config"] if k not in known)
    if unknown:
        raise SetupError(f"{cls.__name__} (transformers {transformers.__version__}) has no field(s) {unknown}")
    return cls(**spec["config"])


def experts_modules(model):
    """The routed-expert modules: 3-D gate_up_proj / down_proj parameters."""
    found = []
    for name, m in model.named_modules():
        gu = getattr(m, "gate_up_proj", None)
        dp = getattr(m, "down_proj", None)
        if isinstance(gu, torch.nn.Parameter) and isinstance(dp, torch.nn.Parameter) and gu.dim() == 3:
            found.append((name, m))
    return found


def build_model(proxy):
    cfg = make_config(proxy)
    kwargs = dict(attn_implementation=ATTN_IMPLEMENTATION, experts_implementation=EXPERTS_IMPLEMENTATION,
                  dtype=torch.bfloat16)
    print(f"[{proxy}] AutoModelForCausalLM.from_config({type(cfg).__name__}, "
          + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ") on cuda", flush=True)
    try:
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, **kwargs)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as e:  # a rejected argument or an unsupported implementation: fail loudly
        raise SetupError(f"[{proxy}] from_config rejected {kwargs}: {type(e).__name__}: {e}") from e
    model.train()
    check_model(proxy, model, cfg)
    return model


def check_model(proxy, model, cfg):
    mc = model.config
    attn = getattr(mc, "_attn_implementation", None)
    experts = getattr(mc, "_experts_implementation", None)
    if attn != ATTN_IMPLEMENTATION:
        raise SetupError(f"[{proxy}] model.config._attn_implementation is {attn!r}, not {ATTN_IMPLEMENTATION!r}")
    if experts != EXPERTS_IMPLEMENTATION:
        raise SetupError(f"[{proxy}] model.config._experts_implementation is {experts!r}, "
                         f"not {EXPERTS_IMPLEMENTATION!r}")
    if mc.use_cache:
        raise SetupError(f"[{proxy}] use_cache is on")
    for name, p in model.named_parameters():
        if p.dtype != torch.bfloat16 or p.device.type != "cuda":
            raise SetupError(f"[{proxy}] parameter {name} is {p.dtype} on {p.device}, not bfloat16 on cuda")
    t = flops_terms(proxy, mc, 1)
    mods = experts_modules(model)
    if len(mods) != t["n_moe"]:
        raise SetupError(f"[{proxy}] found {len(mods)} routed-expert modules, expected {t['n_moe']}")
    for name, m in mods:
        impl = getattr(getattr(m, "config", None), "_experts_implementation", None)
        if impl != EXPERTS_IMPLEMENTATION:
            raise SetupError(f"[{proxy}] {name} ({type(m).__name__}) runs experts_implementation={impl!r}")
        n_experts = m.gate_up_proj.shape[0]
        want = n_experts * 2 * t["moe_ffn"] * t["h"]
        if m.gate_up_proj.numel() != want or m.down_proj.numel() != want // 2:
            raise SetupError(f"[{proxy}] {name}: gate_up_proj {tuple(m.gate_up_proj.shape)}, "
                             f"down_proj {tuple(m.down_proj.shape)} do not fit moe_ffn={t['moe_ffn']}, h={t['h']}")
    if proxy == "qwen2-57b":
        q_proj = model.model.layers[0].self_attn.q_proj
        if q_proj.bias is None:
            raise SetupError(f"[{proxy}] q_proj has no bias (Qwen2 has q/k/v biases)")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[{proxy}] built {type(model).__name__}: {mc.num_hidden_layers} layers, {n_params / 1e9:.3f} B params, "
          f"attn_implementation={attn}, experts_implementation={experts} "
          f"({len(mods)} x {type(mods[0][1]).__name__}, {mods[0][1].gate_up_proj.shape[0]} experts, "
          f"top-{t['topk']}), rope={mc.rope_parameters}", flush=True)


def probe_grouped_mm_calls(model, vocab_size, tokens=256):
    """Counts torch grouped-mm calls in one short no-grad eager forward (a check that the
    experts really run grouped_mm; expected 2 per MoE layer)."""
    targets = [(mod, name) for mod, name in ((torch, "_grouped_mm"), (torch.nn.functional, "grouped_mm"))
               if hasattr(mod, name)]
    count = [0]
    depth = [0]  # F.grouped_mm may call torch._grouped_mm: count outermost calls only
    originals = []
    for mod, name in targets:
        original = getattr(mod, name)
        originals.append((mod, name, original))

        def counting(*a, _original=original, **k):
            if depth[0] == 0:
                count[0] += 1
            depth[0] += 1
            try:
                return _original(*a, **k)
            finally:
                depth[0] -= 1

        setattr(mod, name, counting)
    try:
        ids = torch.randint(0, vocab_size, (1, tokens), device="cuda")
        with torch.no_grad():
            model(input_ids=ids)
        torch.cuda.synchronize()
    finally:
        for mod, name, original in originals:
            setattr(mod, name, original)
    return count[0]


# ---------------------------------------------------------------------------
# One measurement
# ---------------------------------------------------------------------------
def train_step(fwd, optimizer, batches):
    loss = None
    for ids in batches:
        out = fwd(input_ids=ids, labels=ids)  # HF shifts the labels internally
        loss = out.loss / len(batches)
        loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def system_name(mode):
    return f"pytorch-{mode} {torch.__version__} / transformers {transformers.__version__}"


def base_record(proxy, mode, args):
    return {
        "system": system_name(mode),
        "proxy": PROXIES[proxy]["name"],
        "proxy_key": proxy,
        "mode": mode,
        "gpu": torch.cuda.get_device_name(0),
        "commit": args.commit,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "micro_batches": args.micro_batches,
        "seq_len": args.seq_len,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "attn_implementation": ATTN_IMPLEMENTATION,
        "experts_implementation": EXPERTS_IMPLEMENTATION,
        "optimizer": "torch.optim.AdamW(fused=True)",
        "dtype": "bfloat16",
        "compile": "torch.compile(model) default mode" if mode == "compile" else None,
    }


def measure(proxy, mode, args):
    rec = base_record(proxy, mode, args)
    torch.manual_seed(args.seed)
    model = build_model(proxy)
    cfg = model.config
    flops = model_flops_per_step(proxy, cfg, args.micro_batches, args.seq_len)
    rec["model_tflop_per_step"] = flops / 1e12
    rec["params"] = sum(p.numel() for p in model.parameters())

    calls = probe_grouped_mm_calls(model, cfg.vocab_size)
    rec["grouped_mm_calls_probe"] = calls
    n_moe = flops_terms(proxy, cfg, 1)["n_moe"]
    print(f"[{proxy}] probe forward: {calls} grouped-mm calls (expected {2 * n_moe}: fc1 + fc2 per MoE layer)",
          flush=True)
    if calls == 0:
        print(f"[{proxy}] WARNING: no torch._grouped_mm / torch.nn.functional.grouped_mm call was seen; "
              f"config says experts_implementation={cfg._experts_implementation!r}", flush=True)

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=0.1,
                                  fused=True)
    fwd = torch.compile(model) if mode == "compile" else model
    batches = [torch.randint(0, cfg.vocab_size, (1, args.seq_len), device="cuda")
               for _ in range(args.micro_batches)]

    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()

    warmup_s = []
    for i in range(args.warmup):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_step(fwd, optimizer, batches)
        torch.cuda.synchronize()
        warmup_s.append(time.perf_counter() - t0)
        print(f"[{proxy}/{mode}] warm-up step {i + 1}: {warmup_s[-1]:.3f} s", flush=True)

    step_s = []
    loss = None
    for i in range(args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = train_step(fwd, optimizer, batches)
        torch.cuda.synchronize()
        step_s.append(time.perf_counter() - t0)

    peak = torch.cuda.max_memory_allocated()
    median = statistics.median(step_s)
    rec.update({
        "step_s": median,
        "step_times_s": step_s,
        "warmup_times_s": warmup_s,
        "tflops": flops / median / 1e12,
        "tokens_per_s": args.micro_batches * args.seq_len / median,
        # GB here = 2**30 bytes (GiB), the unit of performance-floor.md's 28 / 25 / 50 GB
        "peak_mem_gb": peak / 2**30,
        "peak_mem_bytes": peak,
        "final_loss": float(loss.item()) * args.micro_batches if loss is not None else None,
    })
    return rec


def free_memory():
    gc.collect()
    if hasattr(torch, "_dynamo"):
        torch._dynamo.reset()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


def is_oom(exc):
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def human_line(rec):
    if "error" in rec:
        return f"{rec['system']} | {rec['proxy']} | ERROR: {rec['error']}"
    return (f"{rec['system']} | {rec['proxy']} | step {rec['step_s']:.3f} s "
            f"(min {min(rec['step_times_s']):.3f}, max {max(rec['step_times_s']):.3f}) | "
            f"{rec['tflops']:.1f} TFLOP/s | {rec['tokens_per_s']:.0f} tokens/s | "
            f"peak {rec['peak_mem_gb']:.1f} GB | {rec['model_tflop_per_step']:.1f} TFLOP/step | {rec['gpu']}")


def check_reference_flops():
    """The formula, read from each proxy's config, must give performance-floor.md's figures."""
    for proxy, ref in REFERENCE_TFLOP_PER_STEP.items():
        got = model_flops_per_step(proxy, make_config(proxy), 8, 4096) / 1e12
        assert abs(got - ref) / ref < 1e-3, f"{proxy}: {got:.2f} TFLOP per step, reference {ref}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxy", choices=list(PROXIES) + ["all"], default="all")
    parser.add_argument("--mode", choices=["eager", "compile", "both"], default="both")
    parser.add_argument("--steps", type=int, default=5, help="timed steps; the median is reported (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up steps (default 2)")
    parser.add_argument("--micro-batches", type=int, default=8, help="micro-batches per step (default 8)")
    parser.add_argument("--seq-len", type=int, default=4096, help="tokens per micro-batch (default 4096)")
    parser.add_argument("--output", default=os.path.join("bench", "results", "pytorch_peer.jsonl"),
                        help="JSON-lines file the records are appended to")
    parser.add_argument("--commit", default="unknown", help="moebench commit to record")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.micro_batches < 1 or args.seq_len < 2:
        parser.error("--steps >= 1, --warmup >= 0, --micro-batches >= 1, --seq-len >= 2")

    check_reference_flops()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: the peer runs on the GPU machine")

    proxies = list(PROXIES) if args.proxy == "all" else [args.proxy]
    modes = ["eager", "compile"] if args.mode == "both" else [args.mode]
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
          f"transformers {transformers.__version__}, {torch.cuda.get_device_name(0)}; "
          f"proxies {proxies}, modes {modes}, {args.micro_batches} x {args.seq_len} tokens per step, "
          f"{args.warmup} warm-up + {args.steps} timed steps -> {args.output}", flush=True)

    out_dir = os.path.dirname(args.output)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)

    failures = 0
    for proxy in proxies:
        for mode in modes:
            try:
                rec = measure(proxy, mode, args)
            except SetupError:
                raise  # misconfigured peer: stop here
            except Exception as e:
                rec = base_record(proxy, mode, args)
                if is_oom(e):
                    rec["error"] = f"out of memory: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                else:
                    traceback.print_exc()
                    rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    failures += 1
            free_memory()
            with open(args.output, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(human_line(rec), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
