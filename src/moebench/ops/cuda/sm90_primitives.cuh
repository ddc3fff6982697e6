#pragma once
// Hopper (sm_90a) building blocks as thin PTX wrappers: mbarriers, TMA tensor
// loads and reduce-adds, wgmma shared-memory descriptors and the wgmma
// instruction itself, register reallocation and named barriers. Used by grouped_gemm_sm90.cu,
// flash_attention_forward_sm90.cu and flash_attention_backward_sm90.cu.
// Device code only; every wrapper says which ordering it provides.
//
// Vocabulary: a shared-memory address is a 32-bit `.shared::cta` address
// (from __cvta_generic_to_shared). An mbarrier is 8 bytes of shared memory.
#include <cuda.h>  // CUtensorMap (the type only; the driver is reached through the runtime)

#include <cstdint>

namespace moebench::ops::cuda::sm90 {

__device__ __forceinline__ std::uint32_t shared_address(const void* pointer) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(pointer));
}

// ---- mbarrier ----

// Initialises a barrier that completes a phase after `arrivals` arrive calls
// (plus, when expected, all transaction bytes). One thread, before any use.
__device__ __forceinline__ void mbarrier_init(std::uint32_t barrier, std::uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(barrier), "r"(arrivals) : "memory");
}

// Makes the initialisations above visible to the other threads and to the
// async proxy (the TMA unit completes transactions on these barriers).
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// One arrival plus `bytes` transaction bytes that the TMA copies issued next
// against this barrier will complete (the producer's arrival of a stage).
__device__ __forceinline__ void mbarrier_arrive_expect_tx(std::uint32_t barrier, std::uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(barrier), "r"(bytes)
               : "memory");
}

// One plain arrival (release: this thread's prior reads of the stage are
// ordered before the producer's next write to it).
__device__ __forceinline__ void mbarrier_arrive(std::uint32_t barrier) {
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(barrier) : "memory");
}

__device__ __forceinline__ bool mbarrier_try_wait(std::uint32_t barrier, std::uint32_t parity) {
  std::uint32_t done = 0;
  asm volatile(
      "{\n"
      "  .reg .pred complete;\n"
      "  mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 complete, [%1], %2;\n"
      "  selp.u32 %0, 1, 0, complete;\n"
      "}\n"
      : "=r"(done)
      : "r"(barrier), "r"(parity)
      : "memory");
  return done != 0;
}

// Spins until the phase with parity `parity` has completed (acquire: the TMA
// writes that completed it are visible afterwards). A fresh barrier is in
// phase 0, and waiting for parity 1 returns at once: "the phase before 0 is
// complete", which lets a producer pass its first lap over empty slots.
// Watchdog: a wait longer than 2^35 cycles (~17 s) is a pipeline bug (a
// phase or transaction-byte mismatch); it traps (the launch fails with an
// illegal-instruction / launch-failure error) rather than hanging the GPU.
// Only the slow path reads the clock.
__device__ __forceinline__ void mbarrier_wait(std::uint32_t barrier, std::uint32_t parity) {
  if (mbarrier_try_wait(barrier, parity)) return;
  const long long start = clock64();
  while (!mbarrier_try_wait(barrier, parity)) {
    if (clock64() - start > (1LL << 35)) asm volatile("trap;");  // no printf: a call would serialize wgmma
  }
}

// As mbarrier_wait, for warpgroups that raised their registers with
// setmaxnreg (warpgroup_claim_registers). Seen with nvcc 13.0: a `trap`
// anywhere in such a region makes ptxas allocate it under the kernel's entry
// cap instead (168 registers at 384 threads), which spilled and serialised
// the wgmmas of the attention forward. So this watchdog ends the thread
// (exit) after 2^35 cycles instead: its results are then wrong and the
// other side of the pipeline, waiting in mbarrier_wait, traps in turn; no
// hang either way.
__device__ __forceinline__ void mbarrier_wait_or_exit(std::uint32_t barrier, std::uint32_t parity) {
  if (mbarrier_try_wait(barrier, parity)) return;
  const long long start = clock64();
  while (!mbarrier_try_wait(barrier, parity)) {
    if (clock64() - start > (1LL << 35)) asm volatile("exit;");
  }
}

// ---- TMA (bulk tensor copies global -> shared) ----

// The tensor map is a __grid_constant__ kernel parameter; its generic
// address is what the instruction takes.
__device__ __forceinline__ void prefetch_tensor_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<std::uint64_t>(map)) : "memory");
}

// Copies the box at coordinates (c0 innermost, c1) into shared memory at
// `destination` (1024-byte aligned for the 128-byte swizzle) and completes
// the box's bytes on `barrier`. Elements outside the tensor arrive as zeros
// and still count as transaction bytes.
__device__ __forceinline__ void tma_load_2d(std::uint32_t destination, const CUtensorMap* map, std::uint32_t barrier,
                                            int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::"r"(
          destination),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(barrier), "r"(c0), "r"(c1)
      : "memory");
}
__device__ __forceinline__ void tma_load_3d(std::uint32_t destination, const CUtensorMap* map, std::uint32_t barrier,
                                            int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
      "[%2];\n" ::"r"(destination),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(barrier), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

// As tma_load_2d/3d, for 4-D maps (attention's [B, S, H, D] tensors: c0 the
// head-dim column, c1 the head, c2 the sequence position, c3 the batch).
__device__ __forceinline__ void tma_load_4d(std::uint32_t destination, const CUtensorMap* map, std::uint32_t barrier,
                                            int c0, int c1, int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2];\n" ::"r"(destination),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(barrier), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

// ---- TMA reduce-add (shared -> global, bulk async-groups) ----

// Copies the box in shared memory at `source` (laid out as the map's swizzle
// says, 1024-byte aligned for the 128-byte swizzle) to the tensor at
// coordinates (c0 innermost .. c2). Elements outside the tensor are skipped.
// The issuing thread must first make the box's generic stores visible to the
// async proxy (fence_proxy_async_shared in every writer, then a barrier), then
// commit and later wait (bulk_wait_group_read) before the box is reused, or
// (bulk_wait_group) before the block exits.
__device__ __forceinline__ void tma_store_3d(const CUtensorMap* map, std::uint32_t source, int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
          reinterpret_cast<std::uint64_t>(map)),
      "r"(source), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

// Copies the box in shared memory at `source` (laid out as the map's swizzle
// says) to the tensor at coordinates (c0 innermost .. c3). Elements outside
// the tensor are skipped. Same ordering duties as tma_store_3d.
__device__ __forceinline__ void tma_store_4d(const CUtensorMap* map, std::uint32_t source, int c0, int c1, int c2,
                                             int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(
          reinterpret_cast<std::uint64_t>(map)),
      "r"(source), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

// Closes this thread's bulk operations issued so far into one bulk async-group.
__device__ __forceinline__ void bulk_commit_group() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }

// Waits until at most `kPending` of this thread's bulk async-groups have not
// finished READING their shared-memory source (the source may then be
// overwritten; the global writes may still be in flight).
template <int kPending>
__device__ __forceinline__ void bulk_wait_group_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
}

// Waits until at most `kPending` of this thread's bulk async-groups are still
// running at all (their global writes done too).
template <int kPending>
__device__ __forceinline__ void bulk_wait_group() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Orders this thread's earlier generic-proxy shared-memory writes before
// later async-proxy accesses (wgmma operand reads, TMA reads and writes) of
// the same bytes. Needed after ordinary stores into a tile that wgmma or a
// TMA reduce reads next, then a barrier among the writers.
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// ---- wgmma ----

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
//   bits  0-13  start address >> 4
//   bits 16-29  leading-dimension byte offset >> 4 (LBO)
//   bits 32-45  stride-dimension byte offset >> 4 (SBO)
//   bits 49-51  base offset: 0, every swizzle atom we point into starts on a
//               1024-byte boundary (address bits 7-9 are the atom's row)
//   bits 62-63  swizzle: 1 = 128-byte
// With the 128-byte swizzle an "atom" is 8 rows of 128 bytes (1024 bytes),
// the 16-byte chunk c of row r stored at chunk c ^ (r % 8): exactly what TMA
// writes with CU_TENSOR_MAP_SWIZZLE_128B and a 128-byte inner box.
//   K-major (rows along M or N, 64 bf16 of K per row): SBO = 1024, the step
//     between 8-row groups along M/N; LBO unused (the instruction's 16 K
//     values lie inside one 128-byte row), 1 by convention. Step K by 16
//     elements by adding 32 bytes to the start address.
//   MN-major (rows along K, 64 bf16 of M/N per row): SBO = 1024, the step
//     between 8-row groups along K; LBO = the step between 64-element blocks
//     along M/N. Step K by 16 by adding 16 rows = 2048 bytes.
__device__ __forceinline__ std::uint64_t make_smem_descriptor_128b(std::uint32_t address, std::uint32_t lbo_bytes,
                                                                   std::uint32_t sbo_bytes) {
  return static_cast<std::uint64_t>((address & 0x3FFFF) >> 4) |
         (static_cast<std::uint64_t>((lbo_bytes & 0x3FFFF) >> 4) << 16) |
         (static_cast<std::uint64_t>((sbo_bytes & 0x3FFFF) >> 4) << 32) | (std::uint64_t{1} << 62);
}

// Must precede the first wgmma of a batch whenever the accumulator registers
// were touched by other instructions (zeroing, the previous epilogue) or the
// operands were written in shared memory since the last one.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }

// Closes the wgmma ops issued so far into one group that wait_group counts.
__device__ __forceinline__ void wgmma_commit_group() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

// Waits until at most `kPending` committed groups are still running: their
// accumulators are final and their shared-memory operands no longer read.
template <int kPending>
__device__ __forceinline__ void wgmma_wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}

// Pins the accumulator registers at this point of the instruction stream, so
// the compiler can neither read them before wgmma_wait_group nor write them
// after wgmma_fence (the async instruction owns them in between).
template <int kCount>
__device__ __forceinline__ void fence_registers(float (&d)[kCount]) {
#pragma unroll
  for (int i = 0; i < kCount; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// d[64 x 256] (fp32, one warpgroup, 128 registers per thread) += A[64 x 16] @
// B[16 x 256], both bf16 from shared memory through descriptors. Always
// accumulates (scale-d true): the caller zeroes d before a tile.
// kTransposeA / kTransposeB: 0 = K-major, 1 = MN-major (M-major A, N-major B).
// Register i of thread t holds row 16*(warp % 4) + (lane / 4) + 8*((i / 2) % 2)
// and column 8*(i / 4) + 2*(lane % 4) + (i % 2).
template <int kTransposeA, int kTransposeB>
__device__ __forceinline__ void wgmma_m64n256k16_bf16(float (&d)[128], std::uint64_t descriptor_a,
                                                      std::uint64_t descriptor_b) {
  asm volatile(
      "{\n"
      ".reg .pred accumulate;\n"
      "setp.ne.b32 accumulate, %132, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
      "}, "
      "%128, %129, accumulate, 1, 1, %130, %131;\n"  // scale-d predicate, scale-a = scale-b = 1
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]),
        "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]),
        "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]),
        "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(descriptor_a), "l"(descriptor_b), "n"(kTransposeA), "n"(kTransposeB), "r"(1));
}

// Same pinning for register operands of other types (the A fragments of a
// register-A wgmma: the hardware reads them until wgmma_wait_group says it is
// done, so they must stay live and unmodified until then).
template <int kCount>
__device__ __forceinline__ void fence_registers(std::uint32_t (&r)[kCount]) {
#pragma unroll
  for (int i = 0; i < kCount; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// d[64 x 128] (fp32, one warpgroup, 64 registers per thread) (+)= A[64 x 16]
// @ B[16 x 128], A and B bf16 from shared memory through descriptors.
// accumulate = 0 overwrites d (scale-d false: no zeroing needed), else adds.
// kTransposeA / kTransposeB as for m64n256k16. Register i of thread t holds
// row 16*(warp % 4) + (lane / 4) + 8*((i / 2) % 2), column 8*(i / 4) +
// 2*(lane % 4) + (i % 2).
template <int kTransposeA, int kTransposeB>
__device__ __forceinline__ void wgmma_m64n128k16_bf16(float (&d)[64], std::uint64_t descriptor_a,
                                                      std::uint64_t descriptor_b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred accumulate;\n"
      "setp.ne.b32 accumulate, %68, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, "
      "%64, %65, accumulate, 1, 1, %66, %67;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(descriptor_a), "l"(descriptor_b), "n"(kTransposeA), "n"(kTransposeB), "r"(accumulate));
}

// As wgmma_m64n128k16_bf16 with A from registers: a[4] holds this thread's
// bf16 pairs of the 64 x 16 A tile in the m16n8k16 A-fragment layout of its
// warp's 16 rows (warp % 4): a[0] (row lane/4, k 2*(lane%4) + {0,1}),
// a[1] (row lane/4 + 8, same k), a[2] (row lane/4, k + 8), a[3] (row lane/4
// + 8, k + 8), low half = lower k. That is exactly what an fp32 accumulator
// of this shape holds for columns 16j..16j+15 (registers 8j..8j+7, packed in
// pairs), so scores turn into the A operand of the next product in place.
// Only B can be transposed (kTransposeB: 0 = K-major, 1 = N-major). The
// registers of `a` are read asynchronously: keep them unmodified (and pinned
// with fence_registers) until wgmma_wait_group covers this instruction.
template <int kTransposeB>
__device__ __forceinline__ void wgmma_m64n128k16_bf16_register_a(float (&d)[64], const std::uint32_t (&a)[4],
                                                                 std::uint64_t descriptor_b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred accumulate;\n"
      "setp.ne.b32 accumulate, %70, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, "
      "{%64, %65, %66, %67}, %68, accumulate, 1, 1, %69;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descriptor_b), "n"(kTransposeB), "r"(accumulate));
}

// ---- additions for flash_attention_backward_sm90.cu ----

// Adds the fp32 box in shared memory at `source` into the 4-D tensor at
// coordinates (c0 innermost .. c3): the L2 does the read-add-write, the
// kernel never reads the destination (the attention backward's fp32
// accumulators [B, S, H, D]: c0 the head-dim column, c1 the head, c2 the
// sequence position, c3 the batch). Elements outside the tensor are skipped;
// same ordering duties as tma_store_3d.
__device__ __forceinline__ void tma_reduce_add_4d(const CUtensorMap* map, std::uint32_t source, int c0, int c1,
                                                  int c2, int c3) {
  asm volatile(
      "cp.reduce.async.bulk.tensor.4d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(
          reinterpret_cast<std::uint64_t>(map)),
      "r"(source), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

// d[64 x 64] (fp32, 32 registers per thread) (+)= A[64 x 16] @ B[16 x 64],
// both bf16 from shared memory; accumulate = 0 overwrites. Transposes and the
// register layout as for m64n128k16 (register i: row 16*(warp % 4) +
// (lane / 4) + 8*((i / 2) % 2), column 8*(i / 4) + 2*(lane % 4) + (i % 2)).
template <int kTransposeA, int kTransposeB>
__device__ __forceinline__ void wgmma_m64n64k16_bf16(float (&d)[32], std::uint64_t descriptor_a,
                                                     std::uint64_t descriptor_b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred accumulate;\n"
      "setp.ne.b32 accumulate, %36, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, "
      "%32, %33, accumulate, 1, 1, %34, %35;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(descriptor_a), "l"(descriptor_b), "n"(kTransposeA), "n"(kTransposeB), "r"(accumulate));
}

// As wgmma_m64n128k16_bf16_register_a with N = 192 (96 accumulator
// registers per thread, same layout): the MLA key gradient dK += dS^T Q.
template <int kTransposeB>
__device__ __forceinline__ void wgmma_m64n192k16_bf16_register_a(float (&d)[96], const std::uint32_t (&a)[4],
                                                                 std::uint64_t descriptor_b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred accumulate;\n"
      "setp.ne.b32 accumulate, %102, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95"
      "}, "
      "{%96, %97, %98, %99}, %100, accumulate, 1, 1, %101;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descriptor_b), "n"(kTransposeB), "r"(accumulate));
}

// ---- registers and barriers ----

// Warpgroup-wide register reallocation; takes effect only when the kernel has
// a register cap at entry (__launch_bounds__(threads, 1)). All 128 threads of
// the warpgroup execute it.
template <int kRegisters>
__device__ __forceinline__ void warpgroup_release_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <int kRegisters>
__device__ __forceinline__ void warpgroup_claim_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}

// Hardware named barrier `id` (1..15; 0 is __syncthreads) over `threads`
// threads, a multiple of 32.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Arrives at named barrier `id` without waiting: with named_barrier_sync by
// the other side, a one-way signal (`threads` counts both sides).
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace moebench::ops::cuda::sm90
