#include "moebench/config/flag_registry.h"

#include <algorithm>
#include <array>
#include <vector>

#include "moebench/core/error.h"

namespace moebench::config {
namespace {

using K = FlagKind;

// Grouped as Megatron-LM's arguments.py groups them.
constexpr std::array kFlags = {
    // distributed
    FlagSpec{"--tensor-model-parallel-size", K::Int, "tensor parallel size (TP)"},
    FlagSpec{"--pipeline-model-parallel-size", K::Int, "pipeline parallel size (PP)"},
    FlagSpec{"--expert-model-parallel-size", K::Int, "expert parallel size (EP)"},
    FlagSpec{"--expert-tensor-parallel-size", K::Int, "tensor parallel size inside experts"},
    FlagSpec{"--context-parallel-size", K::Int, "context parallel size (CP)"},
    FlagSpec{"--num-virtual-stages-per-pipeline-rank", K::Int, "virtual pipeline stages per rank (VPP)"},
    FlagSpec{"--num-layers-per-virtual-pipeline-stage", K::Int, "layers per virtual pipeline stage"},
    FlagSpec{"--decoder-first-pipeline-num-layers", K::Int, "layers on the first pipeline stage (uneven PP)"},
    FlagSpec{"--decoder-last-pipeline-num-layers", K::Int, "layers on the last pipeline stage (uneven PP)"},
    FlagSpec{"--account-for-embedding-in-pipeline-split", K::Bool, "count the embedding as a layer when splitting"},
    FlagSpec{"--account-for-loss-in-pipeline-split", K::Bool, "count the loss as a layer when splitting"},
    FlagSpec{"--sequence-parallel", K::Bool, "sequence parallel with tensor parallel"},
    FlagSpec{"--use-distributed-optimizer", K::Bool, "shard optimizer states over data parallel ranks"},
    FlagSpec{"--overlap-grad-reduce", K::Bool, "overlap gradient reduction with the backward"},
    FlagSpec{"--ddp-bucket-size", K::Int, "elements per data-parallel gradient-reduction bucket"},
    FlagSpec{"--overlap-param-gather", K::Bool, "overlap parameter all-gather with the forward"},
    FlagSpec{"--distributed-backend", K::String, "nccl or gloo"},
    FlagSpec{"--distributed-timeout-minutes", K::Int, "collective timeout"},
    FlagSpec{"--tp-comm-overlap", K::Bool, "overlap tensor parallel communication"},
    FlagSpec{"--moe-extended-ep", K::Bool, "extended expert parallelism"},
    // transformer architecture
    FlagSpec{"--num-layers", K::Int, "transformer layers"},
    FlagSpec{"--hidden-size", K::Int, "hidden size"},
    FlagSpec{"--ffn-hidden-size", K::Int, "dense MLP hidden size"},
    FlagSpec{"--num-attention-heads", K::Int, "attention heads"},
    FlagSpec{"--group-query-attention", K::Bool, "grouped-query attention"},
    FlagSpec{"--num-query-groups", K::Int, "key/value groups for GQA"},
    FlagSpec{"--kv-channels", K::Int, "attention head dimension"},
    FlagSpec{"--seq-length", K::Int, "sequence length"},
    FlagSpec{"--max-position-embeddings", K::Int, "maximum positions"},
    FlagSpec{"--position-embedding-type", K::String, "rope or none"},
    FlagSpec{"--use-rotary-position-embeddings", K::Bool, "rotary position embeddings"},
    FlagSpec{"--rotary-percent", K::Float, "fraction of the head dimension that is rotated"},
    FlagSpec{"--rotary-base", K::Float, "rotary base (theta)"},
    FlagSpec{"--rotary-scaling-factor", K::Float, "YaRN scaling factor"},
    FlagSpec{"--rotary-seq-len-interpolation-factor", K::Float, "linear position interpolation"},
    FlagSpec{"--rope-type", K::String, "rope or yarn (multi-latent attention)"},
    FlagSpec{"--original-max-position-embeddings", K::Int, "YaRN original context length"},
    FlagSpec{"--beta-fast", K::Float, "YaRN beta fast"},
    FlagSpec{"--beta-slow", K::Float, "YaRN beta slow"},
    FlagSpec{"--mscale", K::Float, "YaRN mscale"},
    FlagSpec{"--mscale-all-dim", K::Float, "YaRN mscale all dim"},
    FlagSpec{"--no-rope-fusion", K::Bool, "disable the fused RoPE kernel"},
    FlagSpec{"--normalization", K::String, "RMSNorm or LayerNorm"},
    FlagSpec{"--norm-epsilon", K::Float, "normalization epsilon"},
    FlagSpec{"--swiglu", K::Bool, "SwiGLU MLP"},
    FlagSpec{"--untie-embeddings-and-output-weights", K::Bool, "separate output layer"},
    FlagSpec{"--disable-bias-linear", K::Bool, "no bias in linear layers"},
    FlagSpec{"--add-qkv-bias", K::Bool, "bias on the q/k/v projections only"},
    FlagSpec{"--qk-layernorm", K::Bool, "RMSNorm on q and k (per head; MLA: on the LoRA latents)"},
    FlagSpec{"--attention-dropout", K::Float, "attention dropout"},
    FlagSpec{"--hidden-dropout", K::Float, "hidden dropout"},
    FlagSpec{"--init-method-std", K::Float, "standard deviation of the weight initialisation"},
    FlagSpec{"--attention-backend", K::String, "auto, flash, fused, unfused or local"},
    FlagSpec{"--attention-softmax-in-fp32", K::Bool, "softmax in fp32"},
    FlagSpec{"--no-masked-softmax-fusion", K::Bool, "disable the fused masked softmax"},
    FlagSpec{"--no-bias-swiglu-fusion", K::Bool, "disable the fused bias-SwiGLU"},
    FlagSpec{"--no-bias-dropout-fusion", K::Bool, "disable the fused bias-dropout-add"},
    FlagSpec{"--cross-entropy-loss-fusion", K::Bool, "fused cross-entropy"},
    FlagSpec{"--cross-entropy-fusion-impl", K::String, "native or te"},
    FlagSpec{"--use-flash-attn", K::Bool, "flash attention"},
    FlagSpec{"--transformer-impl", K::String, "transformer_engine or local"},
    FlagSpec{"--use-mcore-models", K::Bool, "Megatron-Core models (always on here)"},
    FlagSpec{"--multi-latent-attention", K::Bool, "DeepSeek's multi-latent attention"},
    FlagSpec{"--q-lora-rank", K::Int, "query LoRA rank (MLA)"},
    FlagSpec{"--kv-lora-rank", K::Int, "key/value LoRA rank (MLA)"},
    FlagSpec{"--qk-head-dim", K::Int, "q/k head dimension without RoPE (MLA)"},
    FlagSpec{"--qk-pos-emb-head-dim", K::Int, "q/k RoPE head dimension (MLA)"},
    FlagSpec{"--v-head-dim", K::Int, "value head dimension (MLA)"},
    FlagSpec{"--mtp-num-layers", K::Int, "multi-token prediction layers"},
    FlagSpec{"--mtp-loss-scaling-factor", K::Float, "multi-token prediction loss weight"},
    // mixture of experts
    FlagSpec{"--num-experts", K::Int, "routed experts"},
    FlagSpec{"--moe-ffn-hidden-size", K::Int, "routed expert hidden size"},
    FlagSpec{"--moe-layer-freq", K::String, "MoE layer pattern, e.g. 1 or ([0]+[1]*26)"},
    FlagSpec{"--moe-router-topk", K::Int, "experts per token"},
    FlagSpec{"--moe-router-load-balancing-type", K::String, "aux_loss, seq_aux_loss or none"},
    FlagSpec{"--moe-aux-loss-coeff", K::Float, "load-balancing loss coefficient"},
    FlagSpec{"--moe-z-loss-coeff", K::Float, "router z-loss coefficient"},
    FlagSpec{"--moe-router-score-function", K::String, "softmax or sigmoid"},
    FlagSpec{"--moe-router-pre-softmax", K::Bool, "softmax before top-k"},
    FlagSpec{"--moe-router-enable-expert-bias", K::Bool, "aux-loss-free expert bias"},
    FlagSpec{"--moe-router-bias-update-rate", K::Float, "expert bias update rate"},
    FlagSpec{"--moe-router-num-groups", K::Int, "expert groups for group-limited routing"},
    FlagSpec{"--moe-router-group-topk", K::Int, "groups kept by group-limited routing"},
    FlagSpec{"--moe-router-topk-scaling-factor", K::Float, "scale of the routing probabilities"},
    FlagSpec{"--moe-router-dtype", K::String, "fp32 or fp64 router"},
    FlagSpec{"--moe-router-force-load-balancing", K::Bool, "route tokens round-robin (benchmarks)"},
    FlagSpec{"--moe-token-dispatcher-type", K::String, "allgather, alltoall or flex"},
    FlagSpec{"--moe-grouped-gemm", K::Bool, "experts as one grouped GEMM"},
    FlagSpec{"--moe-permute-fusion", K::Bool, "fused permute/unpermute"},
    FlagSpec{"--moe-wgrad-microbatches", K::Int,
             "moebench: routed experts' weight gradients of N micro-batches computed together (1: Megatron's)"},
    FlagSpec{"--moe-expert-capacity-factor", K::Float, "capacity factor (token dropping)"},
    FlagSpec{"--moe-pad-expert-input-to-capacity", K::Bool, "pad expert inputs to the capacity"},
    FlagSpec{"--moe-token-drop-policy", K::String, "probs or position"},
    FlagSpec{"--moe-shared-expert-intermediate-size", K::Int, "shared expert hidden size"},
    FlagSpec{"--moe-shared-expert-overlap", K::Bool, "overlap shared experts with dispatch"},
    FlagSpec{"--moe-shared-expert-gate", K::Bool, "sigmoid gate on the shared expert (Qwen2)"},
    FlagSpec{"--moe-per-layer-logging", K::Bool, "log router statistics per layer"},
    FlagSpec{"--moe-layer-recompute", K::Bool, "recompute MoE layers"},
    FlagSpec{"--moe-enable-deepep", K::Bool, "DeepEP dispatcher (flex)"},
    FlagSpec{"--moe-use-legacy-grouped-gemm", K::Bool, "legacy grouped GEMM"},
    // training
    FlagSpec{"--micro-batch-size", K::Int, "micro batch size (MBS)"},
    FlagSpec{"--global-batch-size", K::Int, "global batch size (GBS)"},
    FlagSpec{"--train-iters", K::Int, "training iterations"},
    FlagSpec{"--train-samples", K::Int, "training samples"},
    FlagSpec{"--exit-duration-in-mins", K::Int, "stop after this many minutes"},
    FlagSpec{"--exit-interval", K::Int, "stop at an iteration multiple of this"},
    FlagSpec{"--seed", K::Int, "random seed"},
    FlagSpec{"--bf16", K::Bool, "bf16 mixed precision"},
    FlagSpec{"--device", K::String, "moebench: cpu or cuda (default: cuda when a GPU is present)"},
    FlagSpec{"--fp16", K::Bool, "fp16 mixed precision"},
    FlagSpec{"--fp8-format", K::String, "e4m3 or hybrid"},
    FlagSpec{"--fp8-recipe", K::String, "delayed, tensorwise, blockwise or mxfp8"},
    FlagSpec{"--fp8-param-gather", K::Bool, "keep fp8 parameters"},
    FlagSpec{"--recompute-granularity", K::String, "full or selective"},
    FlagSpec{"--recompute-method", K::String, "uniform or block"},
    FlagSpec{"--recompute-num-layers", K::Int, "layers recomputed"},
    FlagSpec{"--recompute-modules", K::Strings, "modules recomputed (selective)"},
    FlagSpec{"--manual-gc", K::Bool, "manual garbage collection"},
    FlagSpec{"--manual-gc-interval", K::Int, "manual garbage collection interval"},
    FlagSpec{"--empty-unused-memory-level", K::Int, "free cached memory"},
    FlagSpec{"--check-for-nan-in-loss-and-grad", K::Bool, "stop on NaN"},
    FlagSpec{"--no-check-for-nan-in-loss-and-grad", K::Bool, "skip iterations with NaN instead of stopping"},
    // optimizer and learning rate
    FlagSpec{"--optimizer", K::String, "adam"},
    FlagSpec{"--lr", K::Float, "peak learning rate"},
    FlagSpec{"--min-lr", K::Float, "minimum learning rate"},
    FlagSpec{"--lr-decay-style", K::String, "constant, linear or cosine"},
    FlagSpec{"--lr-decay-iters", K::Int, "iterations of decay"},
    FlagSpec{"--lr-decay-samples", K::Int, "samples of decay"},
    FlagSpec{"--lr-warmup-iters", K::Int, "iterations of warmup"},
    FlagSpec{"--lr-warmup-samples", K::Int, "samples of warmup"},
    FlagSpec{"--lr-warmup-fraction", K::Float, "fraction of decay used for warmup"},
    FlagSpec{"--lr-warmup-init", K::Float, "learning rate at the start of warmup"},
    FlagSpec{"--weight-decay", K::Float, "decoupled weight decay"},
    FlagSpec{"--adam-beta1", K::Float, "Adam beta1"},
    FlagSpec{"--adam-beta2", K::Float, "Adam beta2"},
    FlagSpec{"--adam-eps", K::Float, "Adam epsilon"},
    FlagSpec{"--clip-grad", K::Float, "gradient clipping by global norm"},
    FlagSpec{"--use-precision-aware-optimizer", K::Bool, "allow optimizer state dtypes other than fp32"},
    FlagSpec{"--exp-avg-dtype", K::String, "Adam's m stored in fp32 or bf16 (precision-aware optimizer)"},
    FlagSpec{"--exp-avg-sq-dtype", K::String, "Adam's v stored in fp32 or bf16 (precision-aware optimizer)"},
    FlagSpec{"--main-grads-dtype", K::String, "main gradients: fp32 (bf16 is not supported yet)"},
    FlagSpec{"--main-params-dtype", K::String, "main weights: fp32 (fp16 is not supported yet)"},
    // data
    FlagSpec{"--data-path", K::Strings, "dataset prefixes, optionally weighted"},
    FlagSpec{"--mock-data", K::Bool, "synthetic data"},
    FlagSpec{"--split", K::String, "train,valid,test proportions"},
    FlagSpec{"--eod-mask-loss", K::Bool, "no loss on tokens that follow an end-of-document token"},
    FlagSpec{"--data-cache-path", K::String, "where sample indices are cached"},
    FlagSpec{"--tokenizer-type", K::String, "HuggingFaceTokenizer, Llama2Tokenizer or NullTokenizer"},
    FlagSpec{"--tokenizer-model", K::String, "tokenizer file or directory"},
    FlagSpec{"--vocab-size", K::Int, "vocabulary size (NullTokenizer)"},
    FlagSpec{"--make-vocab-size-divisible-by", K::Int, "pad the vocabulary to a multiple"},
    FlagSpec{"--num-workers", K::Int, "data loader workers"},
    FlagSpec{"--dataloader-type", K::String, "single or cyclic"},
    FlagSpec{"--no-create-attention-mask-in-dataloader", K::Bool, "causal mask implied"},
    FlagSpec{"--no-mmap-bin-files", K::Bool, "read .bin files without mmap"},
    // logging, evaluation, profiling
    FlagSpec{"--log-interval", K::Int, "iterations between log lines"},
    FlagSpec{"--log-throughput", K::Bool, "log TFLOP/s and tokens/s"},
    FlagSpec{"--log-timers-to-tensorboard", K::Bool, "timers in TensorBoard"},
    FlagSpec{"--log-memory-to-tensorboard", K::Bool, "memory in TensorBoard"},
    FlagSpec{"--log-validation-ppl-to-tensorboard", K::Bool, "validation perplexity in TensorBoard"},
    FlagSpec{"--log-num-zeros-in-grad", K::Bool, "count zero gradients"},
    FlagSpec{"--log-params-norm", K::Bool, "log the parameter norm"},
    FlagSpec{"--timing-log-level", K::Int, "timer detail"},
    FlagSpec{"--tensorboard-dir", K::String, "TensorBoard event directory"},
    FlagSpec{"--wandb-project", K::String, "Weights & Biases project"},
    FlagSpec{"--wandb-exp-name", K::String, "Weights & Biases run name"},
    FlagSpec{"--wandb-save-dir", K::String, "Weights & Biases directory"},
    FlagSpec{"--eval-interval", K::Int, "iterations between evaluations"},
    FlagSpec{"--eval-iters", K::Int, "iterations per evaluation"},
    FlagSpec{"--profile", K::Bool, "profile steps between start and end"},
    FlagSpec{"--profile-step-start", K::Int, "first profiled iteration"},
    FlagSpec{"--profile-step-end", K::Int, "last profiled iteration"},
    FlagSpec{"--profile-ranks", K::Strings, "ranks that profile"},
    FlagSpec{"--profile-trace", K::String, "write a Chrome/Perfetto trace here (moebench)"},
    FlagSpec{"--output-dir", K::String, "where run writes config, metrics and logs (moebench)"},
    // checkpointing
    FlagSpec{"--save", K::String, "checkpoint directory to save to"},
    FlagSpec{"--load", K::String, "checkpoint directory to load from"},
    FlagSpec{"--save-interval", K::Int, "iterations between checkpoints"},
    FlagSpec{"--no-save-optim", K::Bool, "do not save optimizer state"},
    FlagSpec{"--no-save-rng", K::Bool, "do not save RNG state"},
    FlagSpec{"--no-load-optim", K::Bool, "do not load optimizer state"},
    FlagSpec{"--no-load-rng", K::Bool, "do not load RNG state"},
    FlagSpec{"--finetune", K::Bool, "load weights only and reset iteration"},
    FlagSpec{"--auto-detect-ckpt-format", K::Bool, "detect the checkpoint format"},
    FlagSpec{"--ckpt-format", K::String, "checkpoint format"},
    FlagSpec{"--ckpt-convert-save", K::String, "convert the loaded checkpoint and save here"},
    FlagSpec{"--ckpt-convert-format", K::String, "format of the converted checkpoint"},
    FlagSpec{"--dist-ckpt-strictness", K::String, "strictness when loading"},
    FlagSpec{"--ckpt-fully-parallel-load", K::Bool, "parallel checkpoint loading"},
    FlagSpec{"--use-checkpoint-args", K::Bool, "take architecture from the checkpoint"},
};

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::span<const FlagSpec> known_flags() { return kFlags; }

const FlagSpec* find_flag(std::string_view name) {
  for (const auto& spec : kFlags)
    if (spec.name == name) return &spec;
  return nullptr;
}

std::string nearest_flag(std::string_view name) {
  const FlagSpec* best = &kFlags[0];
  size_t best_distance = edit_distance(name, best->name);
  for (const auto& spec : kFlags) {
    size_t d = edit_distance(name, spec.name);
    if (d < best_distance) best = &spec, best_distance = d;
  }
  return std::string(best->name);
}

const FlagSpec& require_flag(std::string_view name) {
  if (const FlagSpec* spec = find_flag(name)) return *spec;
  throw Error("unknown flag '" + std::string(name) + "'; did you mean '" + nearest_flag(name) +
              "'? (`moebench flags` lists every known flag)");
}

}  // namespace moebench::config
