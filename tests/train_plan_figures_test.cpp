// The figures `moebench plan` and the TFLOP/s log are built on: model FLOPs
// per iteration (model-zoo.md's formula), parameter counts and the per-GPU
// memory estimate, checked against numbers worked out by hand below.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "moebench/config/flag_map.h"
#include "moebench/config/model_config.h"
#include "moebench/config/parallel_config.h"
#include "moebench/train/flops.h"
#include "moebench/train/memory_estimate.h"
#include "moebench/train/optimizer_precision.h"
#include "moebench/train/parameter_count.h"

namespace moebench::train {
namespace {

using config::FlagMap;
using config::ModelConfig;
using config::ParallelConfig;
using Strings = std::vector<std::string>;

ModelConfig model_from(const Strings& tokens, int tp = 1) {
  return config::model_config_from_flags(FlagMap::parse_arguments(tokens), tp);
}

// The zoo's architectures (model-zoo.md), with the layer count of the test.
ModelConfig mixtral_8x7b(int layers) {
  return model_from({"--num-layers", std::to_string(layers), "--hidden-size", "4096", "--ffn-hidden-size", "14336",
                     "--num-attention-heads", "32", "--group-query-attention", "--num-query-groups", "8",
                     "--kv-channels", "128", "--seq-length", "4096", "--swiglu", "--vocab-size", "32000",
                     "--make-vocab-size-divisible-by", "128", "--num-experts", "8", "--moe-ffn-hidden-size",
                     "14336", "--moe-router-topk", "2"});
}

ModelConfig deepseek_v2_lite(int layers) {
  const std::string freq = "([0]+[1]*" + std::to_string(layers - 1) + ")";
  return model_from({"--num-layers", std::to_string(layers), "--hidden-size", "2048", "--ffn-hidden-size", "10944",
                     "--num-attention-heads", "16", "--multi-latent-attention", "--kv-lora-rank", "512",
                     "--qk-head-dim", "128", "--qk-pos-emb-head-dim", "64", "--v-head-dim", "128", "--kv-channels",
                     "128", "--qk-layernorm", "--seq-length", "4096", "--swiglu", "--vocab-size", "102400",
                     "--make-vocab-size-divisible-by", "3200", "--num-experts", "64", "--moe-ffn-hidden-size",
                     "1408", "--moe-shared-expert-intermediate-size", "2816", "--moe-layer-freq", freq,
                     "--moe-router-topk", "6"});
}

ModelConfig qwen2_57b(int layers) {
  return model_from({"--num-layers", std::to_string(layers), "--hidden-size", "3584", "--ffn-hidden-size", "2560",
                     "--num-attention-heads", "28", "--group-query-attention", "--num-query-groups", "4",
                     "--kv-channels", "128", "--add-qkv-bias", "--seq-length", "4096", "--swiglu", "--vocab-size",
                     "151936", "--make-vocab-size-divisible-by", "1187", "--num-experts", "64",
                     "--moe-ffn-hidden-size", "2560", "--moe-shared-expert-intermediate-size", "20480",
                     "--moe-shared-expert-gate", "--moe-router-topk", "8"});
}

ModelConfig deepseek_v3(int mtp_layers) {
  return model_from({"--num-layers", "61", "--hidden-size", "7168", "--ffn-hidden-size", "18432",
                     "--num-attention-heads", "128", "--multi-latent-attention", "--q-lora-rank", "1536",
                     "--kv-lora-rank", "512", "--qk-head-dim", "128", "--qk-pos-emb-head-dim", "64", "--v-head-dim",
                     "128", "--kv-channels", "128", "--qk-layernorm", "--seq-length", "4096", "--swiglu",
                     "--vocab-size", "129280", "--make-vocab-size-divisible-by", "3232", "--num-experts", "256",
                     "--moe-ffn-hidden-size", "2048", "--moe-shared-expert-intermediate-size", "2048",
                     "--moe-layer-freq", "([0]*3+[1]*58)", "--moe-router-topk", "8", "--moe-router-num-groups", "8",
                     "--moe-router-group-topk", "4", "--mtp-num-layers", std::to_string(mtp_layers)});
}

void expect_relative(double actual, double expected, double tolerance) {
  EXPECT_NEAR(actual / expected, 1.0, tolerance) << "actual " << actual << ", expected " << expected;
}

// ---------------------------------------------------------------------------
// FLOPs. F = B * s * 6 * [h*(MLP) + A * layers + h * V_padded]; B = 8, s = 4096,
// so B * s * 6 = 196,608 for every proxy.

TEST(PlanFlops, Mixtral8x7bTwoLayers) {
  // h 4096, q = 128*32 = 4096, k = v = 128*8 = 1024.
  // A = h*(q+k+v) + q*s + q*h = 4096*6144 + 4096*4096 + 4096*4096
  //   = 25,165,824 + 16,777,216 + 16,777,216 = 58,720,256 per layer; x2 = 117,440,512
  // MLP: h * 3*moe_ffn*topk*n_moe = 4096 * (3*14336*2*2) = 4096 * 172,032 = 704,643,072
  // output: h*V = 4096 * 32000 = 131,072,000 (32000 is a multiple of 128: no padding)
  // sum 953,155,584; F = 196,608 * 953,155,584 = 187,398,013,059,072 = 187.4 TFLOP
  const ModelConfig m = mixtral_8x7b(2);
  EXPECT_EQ(m.padded_vocab_size, 32000);
  EXPECT_DOUBLE_EQ(attention_flops_term(m), 58'720'256.0);
  EXPECT_DOUBLE_EQ(flops_per_iteration(m, 8), 187'398'013'059'072.0);
  expect_relative(flops_per_iteration(m, 8), 187.4e12, 1e-3);
}

TEST(PlanFlops, DeepSeekV2LiteFourLayersFirstDense) {
  // MLA without q-LoRA: h 2048, 16 heads, qk 128, rope 64, v 128, kv_lora 512.
  //   q_term   = h*heads*(qk+rope)           = 2048*16*192          =  6,291,456
  //   kv       = kv_lora*(h + heads*(qk+v) + 1) = 512*(2048+4096+1)  =  3,146,240
  //   h*rope   = 2048*64                                             =    131,072
  //   out      = heads*v*h = 16*128*2048                             =  4,194,304
  //   scores   = s*heads*(qk+rope)/2 = 4096*16*192/2                 =  6,291,456
  //   context  = s*heads*v/2 = 4096*16*128/2                         =  4,194,304
  //   A = 24,248,832 per layer; x4 = 96,995,328
  // MLP: 1 dense, 3 MoE: h*(3*10944*1 + 3*1408*6*3 + 3*2816*3)
  //   = 2048*(32,832 + 76,032 + 25,344) = 2048*134,208 = 274,857,984
  // output: 2048*102400 = 209,715,200 (102400 = 32 x 3200)
  // sum 581,568,512; F = 196,608 * 581,568,512 = 114,341,022,007,296 = 114.3 TFLOP
  const ModelConfig m = deepseek_v2_lite(4);
  EXPECT_EQ(m.num_dense_layers(), 1);
  EXPECT_EQ(m.num_moe_layers(), 3);
  EXPECT_DOUBLE_EQ(attention_flops_term(m), 24'248'832.0);
  EXPECT_DOUBLE_EQ(flops_per_iteration(m, 8), 114'341'022'007'296.0);
  expect_relative(flops_per_iteration(m, 8), 114.3e12, 1e-3);
}

TEST(PlanFlops, Qwen2_57bTwoLayers) {
  // h 3584, q = 128*28 = 3584, k = v = 128*4 = 512.
  // A = 3584*(3584+512+512) + 3584*4096 + 3584*3584
  //   = 16,515,072 + 14,680,064 + 12,845,056 = 44,040,192; x2 = 88,080,384
  // MLP: h*(3*2560*8*2 + 3*20480*2) = 3584*(122,880 + 122,880) = 880,803,840
  // output: 3584*151936 = 544,538,624 (151936 = 128 x 1187: no padding)
  // sum 1,513,422,848; F = 196,608 * 1,513,422,848 = 297,551,039,299,584 = 297.6 TFLOP
  const ModelConfig m = qwen2_57b(2);
  EXPECT_EQ(m.padded_vocab_size, 151936);
  EXPECT_DOUBLE_EQ(attention_flops_term(m), 44'040'192.0);
  EXPECT_DOUBLE_EQ(flops_per_iteration(m, 8), 297'551'039'299'584.0);
  expect_relative(flops_per_iteration(m, 8), 297.6e12, 1e-3);
}

TEST(PlanFlops, LinearInBatchAndCountsMtpOutput) {
  const ModelConfig m = mixtral_8x7b(2);
  EXPECT_DOUBLE_EQ(flops_per_iteration(m, 16), 2 * flops_per_iteration(m, 8));
  // One MTP layer adds another h * V_padded per token: 196,608 * 4096 * 32000 per 8 sequences.
  ModelConfig with_mtp = m;
  with_mtp.mtp_num_layers = 1;
  EXPECT_DOUBLE_EQ(flops_per_iteration(with_mtp, 8) - flops_per_iteration(m, 8), 196'608.0 * 4096 * 32000);
}

TEST(PlanFlops, QLoraTerm) {
  // DeepSeek-V3's attention with q_lora 1536, h 7168, 128 heads:
  //   q_term = 1536*(7168 + 128*192 + 1) = 1536*31,745 = 48,760,320
  //   kv     = 512*(7168 + 128*256 + 1) = 512*39,937   = 20,447,744
  //   h*rope = 7168*64 = 458,752; out = 128*128*7168 = 117,440,512
  //   scores = 4096*128*192/2 = 50,331,648; context = 4096*128*128/2 = 33,554,432
  //   A = 270,993,408
  EXPECT_DOUBLE_EQ(attention_flops_term(deepseek_v3(1)), 270'993'408.0);
}

// ---------------------------------------------------------------------------
// Parameters.

TEST(PlanParameters, Mixtral8x7b) {
  // Per layer: attention = norm 4096 + qkv 4096*6144 + out 4096*4096
  //   = 4,096 + 25,165,824 + 16,777,216 = 41,947,136;
  //   MLP dense part = norm 4096 + router 4096*8 = 36,864;
  //   experts = 8 * 3*4096*14336 = 1,409,286,144.
  // dense = 32*(41,947,136 + 36,864) + final norm 4096 = 1,343,492,096
  // experts = 32 * 1,409,286,144 = 45,097,156,608
  // embedding = output = 4096*32000 = 131,072,000
  // total = 46,702,792,704 = 46.70 B
  const ParameterCount p = model_parameters(mixtral_8x7b(32));
  EXPECT_DOUBLE_EQ(p.dense, 1'343'492'096.0);
  EXPECT_DOUBLE_EQ(p.experts, 45'097'156'608.0);
  EXPECT_DOUBLE_EQ(p.embedding, 131'072'000.0);
  EXPECT_DOUBLE_EQ(p.output, 131'072'000.0);
  EXPECT_DOUBLE_EQ(p.total(), 46'702'792'704.0);
  // Active: 2 of 8 experts: 45,097,156,608 / 4 = 11,274,289,152; total 12.88 B.
  EXPECT_DOUBLE_EQ(active_parameters(mixtral_8x7b(32)).total(), 46'702'792'704.0 - 45'097'156'608.0 * 3 / 4);
}

TEST(PlanParameters, DeepSeekV2Lite) {
  // Attention (MLA, no q-LoRA): norm 2048 + q 2048*16*192 (6,291,456) + kv down 2048*(512+64)
  //   (1,179,648) + kv norm 512 + kv up 512*16*256 (2,097,152) + out 16*128*2048 (4,194,304)
  //   = 13,765,120.
  // Layer 0 MLP: norm 2048 + 3*2048*10944 = 67,241,984.
  // MoE layer, dense part: norm 2048 + router 2048*64 + shared 3*2048*2816 = 17,434,624;
  //   experts 64 * 3*2048*1408 = 553,648,128.
  // dense = 27*13,765,120 + 67,241,984 + 26*17,434,624 + 2048 = 892,202,496
  // experts = 26*553,648,128 = 14,394,851,328; embedding = output = 2048*102400 = 209,715,200
  // total = 15,706,484,224 = 15.71 B; active (6 of 64 experts): 2,661,150,208 = 2.66 B
  const ModelConfig m = deepseek_v2_lite(27);
  const ParameterCount p = model_parameters(m);
  EXPECT_DOUBLE_EQ(p.dense, 892'202'496.0);
  EXPECT_DOUBLE_EQ(p.experts, 14'394'851'328.0);
  EXPECT_DOUBLE_EQ(p.embedding, 209'715'200.0);
  EXPECT_DOUBLE_EQ(p.total(), 15'706'484'224.0);
  expect_relative(p.total(), 15.71e9, 5e-4);
  const ParameterCount active = active_parameters(m);
  EXPECT_DOUBLE_EQ(active.experts, 14'394'851'328.0 * 6 / 64);
  EXPECT_DOUBLE_EQ(active.total(), 2'661'150'208.0);
  expect_relative(active.total(), 2.66e9, 1e-3);
  // One layer of each kind.
  EXPECT_DOUBLE_EQ(layer_parameters(m, 0).total(), 13'765'120.0 + 67'241'984.0);
  EXPECT_DOUBLE_EQ(layer_parameters(m, 1).dense, 13'765'120.0 + 17'434'624.0);
  EXPECT_DOUBLE_EQ(layer_parameters(m, 1).experts, 553'648'128.0);
}

TEST(PlanParameters, DeepSeekV3WithAndWithoutMtp) {
  // Attention with q-LoRA 1536: norm 7168 + q (7168*1536 + 1536 + 1536*128*192)
  //   + kv (7168*576 + 512 + 512*128*256) + out 128*128*7168 = 187,114,496.
  // 3 dense layers (MLP 3*7168*18432) and 58 MoE layers (256 experts of 3*7168*2048,
  // shared 3*7168*2048, router 7168*256): 671,026,404,352 without MTP, the published ~671 B.
  // The MTP layer adds 2 norms + 2h->h projection (3h + 2h^2) and a MoE layer: 11,610,067,968.
  const ParameterCount without = model_parameters(deepseek_v3(0));
  EXPECT_DOUBLE_EQ(without.total(), 671'026'404'352.0);
  expect_relative(without.total(), 671e9, 1e-3);
  const ParameterCount with = model_parameters(deepseek_v3(1));
  EXPECT_DOUBLE_EQ(with.total() - without.total(), 11'610'067'968.0);
  expect_relative(with.total(), 682.6e9, 1e-4);
}

TEST(PlanParameters, StagesAddUpToTheModel) {
  // PP 4 over 8 Mixtral layers, TP 2, EP 4: each stage's share times the splits
  // gives the model back.
  const ModelConfig m = mixtral_8x7b(8);
  ParallelConfig p;
  p.world_size = 64, p.tensor = 2, p.pipeline = 4, p.expert = 4, p.expert_tensor = 1;
  const std::vector<ParameterCount> stages = parameters_per_stage(m, p);
  ASSERT_EQ(stages.size(), 4u);
  double dense = 0, experts = 0;
  for (const auto& s : stages) dense += s.dense * 2, experts += s.experts * 4;
  const ParameterCount whole = model_parameters(m);
  EXPECT_DOUBLE_EQ(dense, whole.dense);
  EXPECT_DOUBLE_EQ(experts, whole.experts);
  EXPECT_DOUBLE_EQ(stages[0].embedding, whole.embedding / 2);
  EXPECT_EQ(stages[1].embedding, 0);
  EXPECT_DOUBLE_EQ(stages[3].output, whole.output / 2);
  EXPECT_EQ(stages[0].output, 0);
}

// ---------------------------------------------------------------------------
// Memory, on a model small enough to count by hand:
// 2 MoE layers, h 64, 4 heads of 16 (MHA), 4 experts of ffn 32 top-2, vocab 256, seq 32.
//   attention: norm 64 + qkv 64*192 + out 64*64 = 16,448
//   MLP dense part: norm 64 + router 64*4 = 320;  experts 4 * 3*64*32 = 24,576
//   dense = 2*(16,448 + 320) + final norm 64 = 33,600; experts = 49,152
//   embedding = output = 64*256 = 16,384
ModelConfig small_moe() {
  return model_from({"--num-layers", "2", "--hidden-size", "64", "--num-attention-heads", "4", "--kv-channels", "16",
                     "--seq-length", "32", "--swiglu", "--ffn-hidden-size", "128", "--vocab-size", "256",
                     "--num-experts", "4", "--moe-ffn-hidden-size", "32", "--moe-router-topk", "2"});
}

ParallelConfig small_parallel(int world, int pp, int ep, int gbs) {
  ParallelConfig p;
  p.world_size = world, p.pipeline = pp, p.expert = ep, p.expert_tensor = 1, p.global_batch = gbs;
  return p;
}

TEST(PlanMemory, SmallModelParameterCounts) {
  const ParameterCount p = model_parameters(small_moe());
  EXPECT_DOUBLE_EQ(p.dense, 33'600.0);
  EXPECT_DOUBLE_EQ(p.experts, 49'152.0);
  EXPECT_DOUBLE_EQ(p.embedding, 16'384.0);
  EXPECT_DOUBLE_EQ(p.output, 16'384.0);
}

TEST(PlanMemory, DistributedOptimizerShardsDenseOverDpAndExpertsOverExpertDp) {
  // World 8, EP 4: a rank holds dense 33,600 + embedding/output 32,768 = 66,368 and
  // 49,152/4 = 12,288 expert parameters; 78,656 in all.
  // DP = 8, expert DP = 8 / EP 4 = 2. 12 bytes per parameter (fp32 main, m, v).
  //   replicated:  78,656 * 12 = 943,872
  //   distributed: (66,368/8 + 12,288/2) * 12 = (8,296 + 6,144) * 12 = 173,280
  ParallelConfig p = small_parallel(8, 1, 4, 8);
  EXPECT_EQ(p.data_parallel(), 8);
  EXPECT_EQ(p.expert_data_parallel(), 2);
  MemoryEstimate plain = estimate_memory(small_moe(), p, {});
  EXPECT_DOUBLE_EQ(plain.weights, 78'656.0 * 2);
  EXPECT_DOUBLE_EQ(plain.gradients, 78'656.0 * 4);
  EXPECT_DOUBLE_EQ(plain.optimizer_replicated, 943'872.0);
  EXPECT_DOUBLE_EQ(plain.optimizer_distributed, 173'280.0);
  EXPECT_DOUBLE_EQ(plain.optimizer, 943'872.0);
  p.distributed_optimizer = true;
  MemoryEstimate sharded = estimate_memory(small_moe(), p, {});
  EXPECT_DOUBLE_EQ(sharded.optimizer, 173'280.0);
  EXPECT_DOUBLE_EQ(sharded.weights, plain.weights);
  EXPECT_DOUBLE_EQ(plain.total() - sharded.total(), 943'872.0 - 173'280.0);

  // World 16: DP 16, expert DP 4: (66,368/16 + 12,288/4) * 12 = (4,148 + 3,072) * 12 = 86,640
  p.world_size = 16;
  EXPECT_DOUBLE_EQ(estimate_memory(small_moe(), p, {}).optimizer, 86'640.0);
}

TEST(PlanMemory, PrecisionAwareOptimizerStoresMomentsInBf16) {
  // The rank of the test above: 78,656 parameters, DP 8, expert DP 2. Optimizer
  // bytes per parameter: fp32 main 4 + m + v, with m and v 4 (fp32) or 2 (bf16).
  //   both bf16 (8):  replicated 78,656 * 8 = 629,248; distributed (8,296 + 6,144) * 8 = 115,520
  //   m fp32, v bf16 (10): replicated 786,560
  ParallelConfig p = small_parallel(8, 1, 4, 8);
  OptimizerPrecision both;
  both.exp_avg = both.exp_avg_sq = DType::BF16;
  const MemoryEstimate plain = estimate_memory(small_moe(), p, {});
  const MemoryEstimate lean = estimate_memory(small_moe(), p, {}, both);
  EXPECT_DOUBLE_EQ(lean.optimizer_replicated, 629'248.0);
  EXPECT_DOUBLE_EQ(lean.optimizer_distributed, 115'520.0);
  EXPECT_DOUBLE_EQ(lean.optimizer, 629'248.0);
  EXPECT_DOUBLE_EQ(lean.weights, plain.weights);
  EXPECT_DOUBLE_EQ(lean.gradients, plain.gradients);
  EXPECT_DOUBLE_EQ(lean.activations, plain.activations);
  // 2 (bf16 weights) + 4 (fp32 grads) + 8 = 14 bytes per parameter, against 18.
  EXPECT_DOUBLE_EQ((plain.weights + plain.gradients + plain.optimizer) / 78'656.0, 18.0);
  EXPECT_DOUBLE_EQ((lean.weights + lean.gradients + lean.optimizer) / 78'656.0, 14.0);
  OptimizerPrecision second;
  second.exp_avg_sq = DType::BF16;
  EXPECT_DOUBLE_EQ(estimate_memory(small_moe(), p, {}, second).optimizer, 786'560.0);
  p.distributed_optimizer = true;
  EXPECT_DOUBLE_EQ(estimate_memory(small_moe(), p, {}, both).optimizer, 115'520.0);
}

TEST(PlanMemory, Qwen2ProxyFitsOneH100WithBf16Moments) {
  // The single-GPU proxy: 2 layers, TP = PP = EP = 1, MBS 1, GBS 8: 5.112 B
  // parameters, all on the one GPU. At 18 bytes per parameter it needs 97.1 GB;
  // with bf16 moments (14 bytes) 76.7 GB, which fits 80 GB.
  const ModelConfig m = qwen2_57b(2);
  const ParallelConfig p = small_parallel(1, 1, 1, 8);
  const double parameters = model_parameters(m).total();
  expect_relative(parameters, 5.112e9, 1e-3);
  OptimizerPrecision both;
  both.exp_avg = both.exp_avg_sq = DType::BF16;
  const MemoryEstimate plain = estimate_memory(m, p, {});
  const MemoryEstimate lean = estimate_memory(m, p, {}, both);
  EXPECT_DOUBLE_EQ(lean.optimizer, parameters * 8);
  EXPECT_DOUBLE_EQ(plain.total() - lean.total(), parameters * 4);
  expect_relative(plain.total(), 97.14e9, 1e-3);
  expect_relative(lean.total(), 76.70e9, 1e-3);
  EXPECT_GT(plain.total(), 80e9);
  EXPECT_LT(lean.total(), 80e9);
}

TEST(PlanMemory, ActivationsByHand) {
  // Per token of a MoE layer (bf16 elements, fp32 elements):
  //   attention: norm in/out 2h + q + k + v + context = 128 + 64 + 128 + 64 = 384
  //   MoE: norm in/out 2h + top-2 * (input h + fc1 2f + act f + fc2 h) = 128 + 2*(128 + 96) = 576
  //   (960 bf16 = 1,920 bytes) + fp32 softmax lse 4 heads + router 2*4 = 12 (48 bytes) = 1,968 bytes
  const ModelConfig m = small_moe();
  EXPECT_DOUBLE_EQ(layer_activation_bytes_per_token(m, 0), 1'968.0);
  // One microbatch of 32 tokens, one stage: 2 layers * 1,968 * 32 = 125,952
  //   + final norm and logits 32*(2*64 + 256)*2 = 24,576  ->  150,528
  ParallelConfig p = small_parallel(8, 1, 4, 8);
  MemoryEstimate e = estimate_memory(m, p, {});
  EXPECT_DOUBLE_EQ(e.activations_per_microbatch, 150'528.0);
  EXPECT_DOUBLE_EQ(e.microbatches_in_flight, 1.0);
  EXPECT_DOUBLE_EQ(e.activations, 150'528.0);
}

TEST(PlanMemory, FullRecomputeLowersActivations) {
  // Full recompute keeps each layer's input (h bf16 per token) and one layer's full set:
  //   2 * 64*2*32 + 1,968*32 + 24,576 = 8,192 + 62,976 + 24,576 = 95,744
  const ModelConfig m = small_moe();
  ParallelConfig p = small_parallel(8, 1, 4, 8);
  MemoryEstimate plain = estimate_memory(m, p, {});
  RecomputeConfig full;
  full.full = true;
  full.layers = 1;
  MemoryEstimate recomputed = estimate_memory(m, p, full);
  EXPECT_DOUBLE_EQ(recomputed.activations_per_microbatch, 95'744.0);
  EXPECT_LT(recomputed.activations, plain.activations);
  EXPECT_DOUBLE_EQ(recomputed.optimizer, plain.optimizer);  // nothing else changes
  EXPECT_DOUBLE_EQ(recomputed.weights, plain.weights);
  // And from flags.
  RecomputeConfig from_flags = recompute_config_from_flags(
      FlagMap::parse_arguments({"--recompute-granularity", "full", "--recompute-num-layers", "2"}));
  EXPECT_TRUE(from_flags.full);
  EXPECT_EQ(from_flags.layers, 2);
  EXPECT_FALSE(recompute_config_from_flags(FlagMap::parse_arguments({"--recompute-granularity", "selective"})).full);
}

TEST(PlanMemory, WgradMicrobatchesKeepTheExpertOperandsOfNMinusOneMicrobatches) {
  // A routed row keeps fc2's dout (h) and act (f) and fc1's dfc1 (2f) and input (h):
  // 2*64 + 3*32 = 224 bf16 elements, 448 bytes. A microbatch of 32 tokens routes
  // 2 copies of each: 64 rows, 28,672 bytes per MoE layer, 57,344 for both layers.
  // GBS 8 on one rank: 8 microbatches per step.
  const ModelConfig plain_model = small_moe();
  ParallelConfig p = small_parallel(1, 1, 1, 8);
  const MemoryEstimate plain = estimate_memory(plain_model, p, {});
  EXPECT_DOUBLE_EQ(plain.kept_wgrad_operands, 0.0);
  for (auto [n, kept] : {std::pair{1, 0}, {2, 1}, {3, 2}, {8, 7}, {100, 7}}) {
    ModelConfig m = plain_model;
    m.moe.wgrad_microbatches = n;
    const MemoryEstimate e = estimate_memory(m, p, {});
    EXPECT_EQ(e.kept_wgrad_microbatches, kept) << "N " << n;
    EXPECT_DOUBLE_EQ(e.kept_wgrad_operands, kept * 57'344.0) << "N " << n;
    EXPECT_DOUBLE_EQ(e.total() - plain.total(), kept * 57'344.0) << "N " << n;
    EXPECT_DOUBLE_EQ(e.activations, plain.activations) << "N " << n;
  }
  ModelConfig m = plain_model;
  m.moe.wgrad_microbatches = 2;
  // Only MoE layers keep operands: with a dense first layer, one layer's 28,672.
  m.moe.is_moe_layer = {false, true};
  EXPECT_DOUBLE_EQ(estimate_memory(m, p, {}).kept_wgrad_operands, 28'672.0);
  // TP 2 (sequence parallel) splits the routed rows as it splits the activations: 32 per rank.
  m.moe.is_moe_layer = {true, true};
  p = small_parallel(2, 1, 1, 8);
  p.tensor = 2;
  EXPECT_DOUBLE_EQ(estimate_memory(m, p, {}).kept_wgrad_operands, 28'672.0);
  // EP 2 moves rows between ranks but keeps their number per rank on average.
  p = small_parallel(2, 1, 2, 8);
  EXPECT_DOUBLE_EQ(estimate_memory(m, p, {}).kept_wgrad_operands, 57'344.0);
}

TEST(PlanMemory, MicrobatchesInFlightFor1F1B) {
  // 8 layers on PP 4 (2 per stage), world 8: DP 2. Stage s keeps min(PP - s, microbatches)
  // in flight. With one microbatch every stage keeps one, and the last stage (with the
  // logits: 125,952 + 24,576 = 150,528 bytes) is the largest; with more, stage 0 is.
  ModelConfig m = small_moe();
  m.num_layers = 8;
  m.moe.is_moe_layer.assign(8, true);
  for (auto [gbs, microbatches, stage, in_flight] :
       {std::tuple{2, 1, 3, 1.0}, {4, 2, 0, 2.0}, {6, 3, 0, 3.0}, {16, 8, 0, 4.0}}) {
    ParallelConfig p = small_parallel(8, 4, 2, gbs);
    ASSERT_EQ(p.num_microbatches(), microbatches);
    MemoryEstimate e = estimate_memory(m, p, {});
    EXPECT_EQ(e.stage, stage) << "GBS " << gbs;
    EXPECT_DOUBLE_EQ(e.microbatches_in_flight, std::min<double>(4 - e.stage, microbatches)) << "GBS " << gbs;
    EXPECT_DOUBLE_EQ(e.microbatches_in_flight, in_flight) << "GBS " << gbs;
    EXPECT_DOUBLE_EQ(e.activations, e.activations_per_microbatch * e.microbatches_in_flight);
    // 2 layers * 1,968 bytes * 32 tokens, plus the logits on the last stage.
    EXPECT_DOUBLE_EQ(e.activations_per_microbatch, stage == 3 ? 150'528.0 : 125'952.0) << "GBS " << gbs;
  }
  // Interleaving (VPP 2) adds (PP-1)/(PP*VPP) = 3/8 of a stage: 4 * 1.375 = 5.5 with enough microbatches.
  ParallelConfig p = small_parallel(8, 4, 2, 16);
  p.virtual_stages = 2;
  m.num_layers = 16;
  m.moe.is_moe_layer.assign(16, true);
  EXPECT_DOUBLE_EQ(estimate_memory(m, p, {}).microbatches_in_flight, 5.5);
}

}  // namespace
}  // namespace moebench::train
