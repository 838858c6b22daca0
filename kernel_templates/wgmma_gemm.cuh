// The Hopper (sm_90a) tensor-core family: out = z + s * sigmoid(z), z = x * w^T + b.
//
// Structure of one block (a CTA), per DESIGN.md and research/perf-anchors.md:
// - warpgroup 0 is the producer: one thread issues TMA loads of x and w tiles into a ring of
//   kStages shared-memory stages; each stage completes on a "full" mbarrier (transaction
//   bytes), and is reused once every consumer has arrived on its "empty" mbarrier.
// - warpgroups 1..kConsumers are consumers: each owns tile_m / kConsumers rows of the tile
//   and runs wgmma on the stage (fp32 accumulators in registers), then applies the fused
//   epilogue to the accumulators and stores out once; z never goes to memory.
// - register reallocation (setmaxnreg) moves registers from the producer, which needs few, to
//   the consumers, which hold the accumulators.
// - persistent: a grid of at most one block per SM walks the output tiles (tile += gridDim.x),
//   so the producer prefetches the next tile while the consumers finish the last; the order
//   of tiles (raster, group) decides which operand tiles neighbouring blocks share in L2.
// - stream-K (persistent 2): the same persistent grid, but the blocks split the tiles'
//   k-blocks evenly between them (WorkSchedule), passing the partial sums of split tiles
//   through a workspace the host provides: no idle SMs when the tiles do not fill the GPU.
//
// Operand kinds (hopper_args.cuh): bf16 and fp16 (policy half), TF32 (policy high: fp32 x and
// w, rounded to TF32 by TMA itself on the way into shared memory, because the tensor cores
// would truncate them), and 3xTF32 (policy highest): w is prepared once as big + small TF32 halves
// (fusetune_prepare_weight below); each consumer splits its x
// fragments into big + small in registers and issues three products per k-step, small*big +
// big*small + big*big, dropping small*small (about 2^-22 relative). Tensor-core accumulation
// is not exact fp32 over long sums, so every kPromote k-blocks the wgmma accumulator is added
// into a separate fp32 accumulator and restarted (DESIGN.md: without this, 8.4e-6 > 2e-6).
//
// Tails: TMA fills out-of-bounds rows and k-columns with zeros, which add nothing to the
// products; the epilogue predicates its stores on m and n. The host must encode the tensor
// maps as hopper_args.cuh says; TMA needs the rows of x and w 16-byte aligned (k * element
// size a multiple of 16), which the search space declares as a shape constraint.
//
// Device code only; compiles under NVRTC (no headers beyond this directory) and nvcc, for
// sm_90a (wgmma, setmaxnreg).
#pragma once

#include "hopper_args.cuh"
#include "wgmma_ops.cuh"

namespace fusetune {
namespace wgmma {

/// Every stage holds 128 bytes of k per row: the width of the 128-byte TMA/wgmma swizzle, so
/// each row of a tile is exactly one swizzle row and a tile is whole 8-row (1024-byte) atoms.
constexpr int kTileKBytes = 128;
/// Bytes of k one wgmma consumes (16 bf16/fp16 or 8 TF32 elements): 4 wgmma k-steps per stage.
constexpr int kMmaKBytes = 32;
constexpr int kKSteps = kTileKBytes / kMmaKBytes;
constexpr int kWarpgroupThreads = 128;

template <int kOperand>
struct OperandTraits {
  static constexpr int kElementBytes = (kOperand == kOperandBf16 || kOperand == kOperandFp16) ? 2 : 4;
  static constexpr int kTileK = kTileKBytes / kElementBytes;               ///< elements of k per stage
  static constexpr int kWeightTiles = kOperand == kOperandTf32x3 ? 2 : 1;  ///< w tiles per stage (big, small)
};

// ---- PTX wrappers: shared-memory addresses, mbarriers, TMA, wgmma synchronisation ----

__device__ __forceinline__ unsigned shared_address(const void* pointer) {
  return static_cast<unsigned>(__cvta_generic_to_shared(pointer));
}

__device__ __forceinline__ void mbarrier_init(unsigned barrier, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(barrier), "r"(count) : "memory");
}

/// Makes the initialised barriers visible to the async proxy (TMA) before first use.
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

__device__ __forceinline__ void mbarrier_arrive_expect_tx(unsigned barrier, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(barrier), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbarrier_arrive(unsigned barrier) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(barrier) : "memory");
}

/// Waits until the barrier's phase with parity `parity` has completed.
__device__ __forceinline__ void mbarrier_wait(unsigned barrier, unsigned parity) {
  unsigned done = 0;
  do {
    asm volatile(
        "{\n.reg .pred ready;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 ready, [%1], %2;\n"
        "selp.u32 %0, 1, 0, ready;\n}\n"
        : "=r"(done)
        : "r"(barrier), "r"(parity)
        : "memory");
  } while (!done);
}

/// TMA: the box at (inner, outer) of the tensor `map` into shared memory at `destination`,
/// completing `bytes` of transaction on `barrier`.
__device__ __forceinline__ void tma_load_2d(unsigned destination, const TensorMapParam* map, unsigned barrier,
                                            int inner, int outer) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          destination),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(inner), "r"(outer), "r"(barrier)
      : "memory");
}

/// TMA multicast: the box lands at the same shared-memory offset in every block of the
/// cluster named by `mask`, and completes its bytes on the barrier at `barrier`'s offset in each.
__device__ __forceinline__ void tma_load_2d_multicast(unsigned destination, const TensorMapParam* map, unsigned barrier,
                                                      int inner, int outer, unsigned short mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%2, %3}], [%4], %5;" ::"r"(destination),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(inner), "r"(outer), "r"(barrier), "h"(mask)
      : "memory");
}

/// Arrives on the barrier at shared address `barrier` of block `rank` of the cluster, with the
/// arrive's default semantics (release at CTA scope): what it orders is this block's own
/// wgmma reads of the stage before the peer's TMA overwrites it. An explicit
/// `.release.cluster` made every 2-block cluster kernel 2.5x slower on the H100 (bench/RESULTS.md).
__device__ __forceinline__ void mbarrier_arrive_cluster(unsigned barrier, unsigned rank) {
  asm volatile(
      "{\n.reg .b32 remote;\n"
      "mapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}\n" ::"r"(barrier),
      "r"(rank)
      : "memory");
}

__device__ __forceinline__ unsigned cluster_rank() {
  unsigned rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
  return rank;
}

/// Every thread of every block of the cluster: barrier with release/acquire semantics.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;" ::: "memory");
}

/// TMA store: the box at shared address `source` to the tensor `map` at (inner, outer), as one
/// bulk async-group of this thread (commit_bulk_group closes it). Out-of-bounds parts of the
/// box are not written.
__device__ __forceinline__ void tma_store_2d(const TensorMapParam* map, unsigned source, int inner, int outer) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];" ::"l"(
                   reinterpret_cast<unsigned long long>(map)),
               "r"(inner), "r"(outer), "r"(source)
               : "memory");
}
__device__ __forceinline__ void commit_bulk_group() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
/// Waits until at most kPending of this thread's bulk groups still read their shared memory.
template <int kPending>
__device__ __forceinline__ void wait_bulk_group_reads() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(kPending) : "memory");
}
/// Waits until all of this thread's bulk groups are complete.
__device__ __forceinline__ void wait_bulk_groups() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }
/// Makes this thread's generic-proxy shared-memory writes visible to the async proxy (TMA).
__device__ __forceinline__ void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
/// Barrier `id` (1..15; 0 is __syncthreads) among `threads` threads.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

__device__ __forceinline__ void prefetch_tensor_map(const TensorMapParam* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<unsigned long long>(map)) : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}

/// Keeps the compiler from moving accesses of accumulators across wgmma issue and wait
/// (the hardware writes them asynchronously, behind the compiler's back).
template <int kCount>
__device__ __forceinline__ void fence_registers(float (&values)[kCount]) {
#pragma unroll
  for (int i = 0; i < kCount; ++i) asm volatile("" : "+f"(values[i])::"memory");
}

template <int kRegisters>
__device__ __forceinline__ void release_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kRegisters));
}
template <int kRegisters>
__device__ __forceinline__ void claim_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kRegisters));
}

/// wgmma shared-memory matrix descriptor of a K-major tile stored as TMA's 128-byte swizzle
/// writes it: rows of 128 bytes, 8-row atoms 1024 bytes apart (stride byte offset), leading
/// byte offset unused for swizzled K-major layouts (1 by convention), swizzle mode 1 = 128B.
/// The high word is the same for every tile. The low word is the start address / 16 plus the
/// leading byte offset in bit 16 (shared addresses are below 2^18, so the address field never
/// reaches it): the mainloop builds one low word per stage and adds constant offsets / 16 to it,
/// which ptxas folds into one add per descriptor.
constexpr unsigned kDescriptorHigh = (1024u >> 4) | (1u << 30);
__device__ __forceinline__ unsigned descriptor_low(unsigned address) { return (address >> 4) + (1u << 16); }
__device__ __forceinline__ unsigned long long matrix_descriptor(unsigned low) {
  return (static_cast<unsigned long long>(kDescriptorHigh) << 32) | low;
}

/// fp32 rounded to TF32 (10 mantissa bits, round to nearest, ties away), as fp32 bits.
__device__ __forceinline__ unsigned round_to_tf32(float value) {
  unsigned bits;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(value));
  return bits;
}

// ---- element conversions (raw bits: no cuda_bf16.h / cuda_fp16.h needed under NVRTC) ----

/// The two fp16 halves of `packed` as fp32, the lower half first.
__device__ __forceinline__ void unpack_f16x2(unsigned packed, float& first, float& second) {
  asm("{\n.reg .f16 low, high;\n"
      "mov.b32 {low, high}, %2;\n"
      "cvt.f32.f16 %0, low;\n"
      "cvt.f32.f16 %1, high;\n}\n"
      : "=f"(first), "=f"(second)
      : "r"(packed));
}

/// first and second rounded once to the 16-bit type kOperand and packed, first in the lower half.
template <int kOperand>
__device__ __forceinline__ unsigned pack_pair(float first, float second) {
  unsigned packed;  // cvt packs its first source into the upper half
  if constexpr (kOperand == kOperandBf16)
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(second), "f"(first));
  else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(second), "f"(first));
  return packed;
}

/// Stores (first, second) at `address` (global or shared memory) as two consecutive elements
/// of the output type, in one store: `address` is aligned for the pair.
template <int kOperand>
__device__ __forceinline__ void store_aligned_pair(void* address, float first, float second) {
  if constexpr (kOperand == kOperandBf16 || kOperand == kOperandFp16)
    *static_cast<unsigned*>(address) = pack_pair<kOperand>(first, second);
  else
    *static_cast<float2*>(address) = make_float2(first, second);
}

/// store_aligned_pair into shared memory, at a shared-window address (shared_address()).
template <int kOperand>
__device__ __forceinline__ void store_shared_pair(unsigned address, float first, float second) {
  if constexpr (kOperand == kOperandBf16 || kOperand == kOperandFp16)
    asm volatile("st.shared.b32 [%0], %1;" ::"r"(address), "r"(pack_pair<kOperand>(first, second)) : "memory");
  else
    asm volatile("st.shared.v2.f32 [%0], {%1, %2};" ::"r"(address), "f"(first), "f"(second) : "memory");
}

/// Stores out[index] (and out[index + 1] when `pair`), rounding to the output type once.
template <int kOperand>
__device__ __forceinline__ void store_elements(void* base, long long index, float first, float second, bool pair,
                                               bool aligned_pair) {
  if (pair && aligned_pair) {
    store_aligned_pair<kOperand>(static_cast<unsigned char*>(base) + index * OperandTraits<kOperand>::kElementBytes,
                                 first, second);
  } else if constexpr (kOperand == kOperandBf16 || kOperand == kOperandFp16) {
    const unsigned packed = pack_pair<kOperand>(first, second);
    unsigned short* out = static_cast<unsigned short*>(base) + index;
    out[0] = static_cast<unsigned short>(packed & 0xffff);
    if (pair) out[1] = static_cast<unsigned short>(packed >> 16);
  } else {
    float* out = static_cast<float*>(base) + index;
    out[0] = first;
    if (pair) out[1] = second;
  }
}

// ---- the tile scheduler ----

/// Output tile (row, column) of the t-th tile in launch order. raster 0: bands of kGroup
/// tile-rows, each walked down its rows first, then across; raster 1: bands of kGroup
/// tile-columns walked across first. Blocks running at the same time then share operand
/// tiles: raster 0 shares w tiles, raster 1 shares x tiles.
template <int kRaster, int kGroup>
__device__ __forceinline__ void tile_coordinates(int t, int tiles_m, int tiles_n, int& tile_row, int& tile_col) {
  const int major = kRaster == 0 ? tiles_m : tiles_n;  // the banded dimension
  const int minor = kRaster == 0 ? tiles_n : tiles_m;
  const int band_tiles = kGroup * minor;
  const int band = t / band_tiles;
  const int first = band * kGroup;
  const int width = min(kGroup, major - first);
  const int local = t - band * band_tiles;
  const int along_major = first + local % width;
  const int along_minor = local / width;
  tile_row = kRaster == 0 ? along_major : along_minor;
  tile_col = kRaster == 0 ? along_minor : along_major;
}

// ---- the columns of the tiles ----

/// Where the tile columns of out start and how wide they are.
/// - kTrim 0: ceil(n / kTileN) columns of kTileN (the last one cut off at n).
/// - kTrim > 0: one column more than that (or as many as narrow columns alone need, if fewer),
///   so that the tile count can fill the last wave of SMs. The columns are kTileN - kTrim
///   wide, except the last `wide` ones, kTileN wide, as many as it takes to reach n. At the
///   headline shape (n = 8192, kTileN 256, kTrim 8): 32 columns of 248 and one of 256, 264
///   tiles of 128 rows, two per SM on 132 SMs, where 256 tiles of 128 x 256 leave 8 SMs idle
///   through the second wave. The block still loads the w rows of a whole kTileN column; the
///   narrow part is what the second split_n consumer computes and stores (kTileN / 2 - kTrim
///   columns). The host's grid (the search space's grid_x) counts the columns the same way.
template <int kTileN, int kTrim>
struct TileColumns {
  static constexpr int kNarrow = kTileN - kTrim;
  int count;         ///< tile columns
  int narrow_count;  ///< the first narrow_count of them are kNarrow wide

  __device__ __forceinline__ explicit TileColumns(int n) {
    count = (n + kTileN - 1) / kTileN;
    narrow_count = 0;
    if constexpr (kTrim > 0) {
      count = min(count + 1, (n + kNarrow - 1) / kNarrow);
      const int missing = n - count * kNarrow;  // columns of out that narrow columns alone leave out
      narrow_count = count - (missing <= 0 ? 0 : (missing + kTrim - 1) / kTrim);
    }
  }
  __device__ __forceinline__ int start(int column) const {
    if constexpr (kTrim == 0) return column * kTileN;
    return column < narrow_count ? column * kNarrow : narrow_count * kNarrow + (column - narrow_count) * kTileN;
  }
  /// (A constant false for kTrim 0, so the narrow paths fold away there.)
  __device__ __forceinline__ bool narrow(int column) const { return kTrim > 0 && column < narrow_count; }
};

// ---- the work of one block ----

/// The work of one block as segments: k-blocks [kb_begin, kb_end) of one output tile.
/// - kPersistent 0 and 1 (data-parallel): whole tiles first_tile, first_tile + tile_step, ...
///   in the order of tile_coordinates.
/// - kPersistent 2 (stream-K): every SM does the same number of k-blocks whatever the tile
///   count: at the headline shape, 256 tiles on 132 SMs leave 8 SMs idle through the second
///   wave of a data-parallel grid (3% of the time), none here. The price: the partial sums of
///   each tile split between blocks go through global memory once (see "stream-K" below).
///   The tiles are cut into stripes of S = min(kGroup, tile-rows) tiles that share an operand
///   tile (raster 0: the S tile-rows of one band in one column, which share w; raster 1: S
///   tile-columns of one row, sharing x), and the blocks into teams of S, member i of a team
///   always computing the i-th tile of a stripe. The stripes' k-blocks, laid end to end, are
///   cut into one equal range (to a k-block) per team. So the blocks of a team read each
///   k-block of the shared operand at the same time, once from DRAM; without teams every
///   block read its own w at its own k offset, and the kernel ran 1.4-2.5x slower than the
///   data-parallel one (bench/RESULTS.md, session 7). The host launches whole teams:
///   (sm_count / S) * S blocks.
template <int kPersistent, int kRaster, int kGroup>
struct WorkSchedule {
  int tiles_m, tiles_n, k_blocks;
  int tile, tile_step;  // data-parallel: the next tile, and the stride between a block's tiles
  // stream-K
  int team_size, team, teams, member, stripes;
  long long next_k, end_k;  // the rest of this team's range
  long long stripe_end_k;   // the end of the stripe of the last segment returned

  __device__ __forceinline__ WorkSchedule(int tiles_m_, int tiles_n_, int k_blocks_, int first_tile, int tile_step_)
      : tiles_m(tiles_m_), tiles_n(tiles_n_), k_blocks(k_blocks_), tile(first_tile), tile_step(tile_step_) {
    if constexpr (kPersistent == 2) {
      team_size = min(kGroup, major());
      teams = gridDim.x / team_size;
      team = blockIdx.x / team_size;
      member = blockIdx.x % team_size;
      stripes = (major() + team_size - 1) / team_size * minor();
      next_k = team < teams ? range_begin(team) : 0;  // blocks past the last whole team idle
      end_k = team < teams ? range_begin(team + 1) : 0;
    }
  }

  __device__ __forceinline__ int major() const { return kRaster == 0 ? tiles_m : tiles_n; }  // banded
  __device__ __forceinline__ int minor() const { return kRaster == 0 ? tiles_n : tiles_m; }

  /// Stream-K: the first k-block (stripe after stripe) of team `which`'s range; `teams` gives
  /// the total. The first total % teams teams take one k-block more.
  __device__ __forceinline__ long long range_begin(int which) const {
    const long long total = static_cast<long long>(stripes) * k_blocks;
    const long long share = total / teams, extra = total % teams;
    return which * share + min(static_cast<long long>(which), extra);
  }

  /// The next segment of this block, or false when its work is done.
  __device__ __forceinline__ bool next(int& tile_row, int& tile_col, int& kb_begin, int& kb_end) {
    if constexpr (kPersistent == 2) {
      while (next_k < end_k) {
        const int stripe = static_cast<int>(next_k / k_blocks);
        kb_begin = static_cast<int>(next_k - static_cast<long long>(stripe) * k_blocks);
        kb_end = static_cast<int>(min(static_cast<long long>(k_blocks), kb_begin + (end_k - next_k)));
        next_k += kb_end - kb_begin;
        stripe_end_k = static_cast<long long>(stripe + 1) * k_blocks;
        const int along_major = stripe / minor() * team_size + member;  // the stripe's band, then this member
        const int along_minor = stripe % minor();
        if (along_major >= major()) continue;  // the last band is narrower: no tile for this member
        tile_row = kRaster == 0 ? along_major : along_minor;
        tile_col = kRaster == 0 ? along_minor : along_major;
        return true;
      }
      return false;
    } else {
      if (tile >= tiles_m * tiles_n) return false;
      tile_coordinates<kRaster, kGroup>(tile, tiles_m, tiles_n, tile_row, tile_col);
      kb_begin = 0;
      kb_end = k_blocks;
      tile += tile_step;
      return true;
    }
  }
};

// ---- stream-K: partial sums of split tiles through global memory ----
//
// Only a team's first segment can start inside a stripe (kb_begin > 0): each block of the team
// is then a contributor and passes its sums on through its own slot of args.partials, one per
// block. The segment that starts the stripe (kb_begin 0) is the last of its team's range, so it
// runs last of the tile's segments: that block finishes the tile. It waits for the same member
// of each later team whose range begins inside the stripe, adds its slot, and applies the
// epilogue. Contributors did their part at the very start of their ranges, so the finisher
// seldom waits. Blocks never wait for a block with a lower index, and the grid is at most one
// block per SM, so all blocks a finisher waits for are running or done.

/// Writes one consumer thread's sums of a 64-row slice: float4 chunk q of thread t at q * 128 + t
/// (each store instruction of a warp writes 512 consecutive bytes).
template <int kCount>
__device__ __forceinline__ void store_partial(float* slot, const float (&values)[kCount], int thread) {
  float4* chunks = reinterpret_cast<float4*>(slot);
#pragma unroll
  for (int i = 0; i < kCount; i += 4)
    chunks[(i / 4) * kWarpgroupThreads + thread] = make_float4(values[i], values[i + 1], values[i + 2], values[i + 3]);
}

/// Adds a slot written by store_partial. The loads bypass L1 (ld.global.cg): another SM wrote
/// the slot, and this SM's L1 may hold the lines from an earlier launch.
template <int kCount>
__device__ __forceinline__ void add_partial(float (&values)[kCount], const float* slot, int thread) {
  const float4* chunks = reinterpret_cast<const float4*>(slot);
#pragma unroll
  for (int i = 0; i < kCount; i += 4) {
    const float4 chunk = __ldcg(chunks + (i / 4) * kWarpgroupThreads + thread);
    values[i] += chunk.x;
    values[i + 1] += chunk.y;
    values[i + 2] += chunk.z;
    values[i + 3] += chunk.w;
  }
}

/// Raises a flag with release semantics at GPU scope: the warpgroup's writes of the slot,
/// ordered before this thread by a barrier, are visible to whoever acquires the flag.
__device__ __forceinline__ void raise_flag(int* flag) {
  asm volatile("st.release.gpu.global.b32 [%0], %1;" ::"l"(flag), "r"(1) : "memory");
}

/// Waits until the flag is raised (acquire at GPU scope). The host zeroes the flags before
/// every launch (LoadedKernel::launch), so a raised flag is always this launch's.
__device__ __forceinline__ void wait_for_flag(const int* flag) {
  int raised = 0;
  do {
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(raised) : "l"(flag) : "memory");
  } while (!raised);
}

// ---- the epilogue ----

/// fused_epilogue (fused_epilogue.cuh) of two elements of one row, (acc0, acc1) with their
/// biases, with the special-function unit (MUFU) instead of IEEE expf and division, which cost
/// tens of instructions per element: the epilogue runs while this block's tensor cores wait.
/// (MUFU issues 16 results per clock per SM: 2048 clocks, about 1.3 us, of a bf16 128x256 tile's 2.3 us
/// epilogue on the H100; the rest is the bias, the other arithmetic and the stores.)
/// - bf16 / fp16 and TF32 outputs: out = z + s sigmoid(z) = (z + s/2) + (s/2) tanh(z/2), one
///   tanh.approx.f32 per element and three fma. The biases arrive halved (TileBias), so
///   h = z/2 = fma(acc, 1/2, bias/2) and z + s/2 = fma(h, 2, s/2). Halving and doubling are
///   exact (above 2^-125 in magnitude), so h = round(acc + bias) / 2 and the outputs are bit
///   for bit those of z = acc + bias, then z/2: one operation per element fewer (bf16 0.2%
///   faster in the probe on the H100, bench/RESULTS.md session 16). The error, at most 2^-11
///   relative in tanh, is below the rounding of a 16-bit output, and TF32's operands (10-bit
///   mantissas) dominate that policy's error. (tanh.approx.f16x2 does not halve the MUFU work: on sm_90 ptxas issues
///   one MUFU.TANH.F16 per half, and the f16 conversions and clamps around it cost more
///   instructions than it saved; bench/RESULTS.md, session 9.)
/// - 3xTF32 (policy highest, 2e-6): ex2.approx and rcp.approx, two MUFU operations per
///   element, a few ulp each: a few 1e-7 relative in sigmoid.
/// Saturation and NaN behave as in fused_epilogue: tanh(+-inf) = +-1, so z = -inf gives
/// -inf + s/2 - s/2 = -inf and large negative z gives z (+ s/2 - s/2); z < -88.7 gives
/// exp2 = inf and rcp(inf) = 0 exactly; large z gives sigmoid 1; NaN gives NaN.
/// bias0 and bias1 are TileBias::get's: halved but for 3xTF32.
template <int kOperand>
__device__ __forceinline__ void fast_fused_epilogue(float acc0, float acc1, float bias0, float bias1, float scale,
                                                    float& out0, float& out1) {
  if constexpr (kOperand != kOperandTf32x3) {
    const float half_scale = 0.5f * scale;
    const float half0 = fmaf(acc0, 0.5f, bias0), half1 = fmaf(acc1, 0.5f, bias1);  // z / 2
    float tanh0, tanh1;
    asm("tanh.approx.f32 %0, %1;" : "=f"(tanh0) : "f"(half0));
    asm("tanh.approx.f32 %0, %1;" : "=f"(tanh1) : "f"(half1));
    out0 = fmaf(half_scale, tanh0, fmaf(half0, 2.0f, half_scale));
    out1 = fmaf(half_scale, tanh1, fmaf(half1, 2.0f, half_scale));
  } else {
    const float z0 = acc0 + bias0, z1 = acc1 + bias1;
    float exp0, exp1, sigmoid0, sigmoid1;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(exp0) : "f"(z0 * -1.4426950408889634f));
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(exp1) : "f"(z1 * -1.4426950408889634f));
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(sigmoid0) : "f"(1.0f + exp0));
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(sigmoid1) : "f"(1.0f + exp1));
    out0 = fmaf(scale, sigmoid0, z0);
    out1 = fmaf(scale, sigmoid1, z1);
  }
}

/// The bias of the columns one consumer thread stores in one tile: wgmma's accumulator layout
/// gives thread `lane` the column pairs tile_col0 + 8 q + 2 (lane % 4) (+ 1), q < kTileN / 8.
/// Columns at or past n, or no bias at all, read as 0.
/// - 16-bit biases are loaded into registers when the consumer starts the tile, before its
///   products, packed one register per pair (16 for a 128-column tile): the loads' latency
///   hides behind the mainloop instead of sitting in the epilogue, which the tensor cores
///   wait for. Measured on the H100: the epilogue's bias loads and arithmetic were 4% of the
///   bf16 kernel; preloading (with a cheaper sigmoid) took 2-4% off it.
/// - fp32 biases are read when the epilogue needs them (read-only loads the compiler may
///   hoist): preloaded, two registers per pair, they made 3xTF32 5% slower and spilled TF32
///   128x256. Their latency costs TF32's epilogue about 1 of its 5-6 us per tile; the rest is
///   the stores (bench/RESULTS.md, session 9).
template <int kOperand, int kTileN>
struct TileBias {
  static constexpr bool kPacked = OperandTraits<kOperand>::kElementBytes == 2;
  static constexpr int kPairs = kTileN / 8;
  /// TF32 slices at most 128 columns wide (tile_n 128, or split_n) also load their fp32 biases
  /// before the products: 32 registers, which 256-wide slices (64) and 3xTF32 (its promoted
  /// sums) cannot spare (spills, bench/RESULTS.md session 5).
  static constexpr bool kPreloaded32 = kOperand == kOperandTf32 && kTileN <= 128;
  /// What get() multiplies the fp32 biases it reads from global memory by (see get).
  static constexpr float kReadScale = kOperand == kOperandTf32x3 ? 1.0f : 0.5f;
  unsigned pairs[kPacked ? kPairs : 1];         ///< 16-bit: pair q, first column in the low half
  float pairs32[kPreloaded32 ? kPairs : 1][2];  ///< preloaded TF32: pair q
  const float* bias32;                          ///< fp32: the bias, or null
  int col0, n;
  bool aligned;  ///< the bias pointer is aligned for one load per pair

  __device__ __forceinline__ void load(const HopperLinearArgs& args, int tile_col0, int lane) {
    col0 = tile_col0 + 2 * (lane % 4);
    n = args.n;
    aligned = reinterpret_cast<unsigned long long>(args.bias) % (2 * OperandTraits<kOperand>::kElementBytes) == 0;
    bias32 = static_cast<const float*>(args.bias);
    if constexpr (kPacked) {
      const unsigned short* bias = static_cast<const unsigned short*>(args.bias);
#pragma unroll
      for (int q = 0; q < kPairs; ++q) {
        const int col = col0 + 8 * q;
        if (!bias) {
          pairs[q] = 0;
        } else if (aligned && col + 1 < n) {
          pairs[q] = __ldg(reinterpret_cast<const unsigned*>(bias + col));
        } else {
          const unsigned low = col < n ? __ldg(bias + col) : 0u, high = col + 1 < n ? __ldg(bias + col + 1) : 0u;
          pairs[q] = low | (high << 16);
        }
      }
    }
    if constexpr (kPreloaded32) {
#pragma unroll
      for (int q = 0; q < kPairs; ++q) load32(q, pairs32[q][0], pairs32[q][1]);
    }
  }

  /// Halves the preloaded biases once per tile, after the products (right after the loads it
  /// would wait for them there, before the tile's first wgmma: 2% slower, bench/RESULTS.md
  /// session 16). bf16 pairs take a packed multiply by 1/2 each, exact but for biases below
  /// 2^-125 in magnitude, which bf16 keeps as subnormals; fp16's subnormals start at 2^-14, so
  /// fp16 halves after unpacking, in fp32 (get); preloaded TF32 biases are fp32 already.
  __device__ __forceinline__ void halve() {
    if constexpr (kOperand == kOperandBf16) {
#pragma unroll
      for (int q = 0; q < kPairs; ++q) asm("mul.rn.bf16x2 %0, %0, %1;" : "+r"(pairs[q]) : "r"(0x3f003f00u));
    }
    if constexpr (kPreloaded32) {
#pragma unroll
      for (int q = 0; q < kPairs; ++q) {
        pairs32[q][0] *= 0.5f;
        pairs32[q][1] *= 0.5f;
      }
    }
  }

  /// fp32 bias of pair q, read from global memory.
  __device__ __forceinline__ void load32(int q, float& first, float& second) const {
    const int col = col0 + 8 * q;
    first = second = 0.0f;
    if (bias32 && aligned && col + 1 < n) {
      const float2 both = __ldg(reinterpret_cast<const float2*>(bias32 + col));
      first = both.x;
      second = both.y;
    } else if (bias32) {
      if (col < n) first = __ldg(bias32 + col);
      if (col + 1 < n) second = __ldg(bias32 + col + 1);
    }
  }

  /// The bias of pair q as fp32, as fast_fused_epilogue takes it: halved, but for 3xTF32.
  /// bf16 and preloaded TF32 biases must have been halved (halve()); fp16 and the TF32 biases
  /// read here are halved here.
  __device__ __forceinline__ void get(int q, float& first, float& second) const {
    if constexpr (kOperand == kOperandBf16) {
      first = __uint_as_float(pairs[q] << 16);
      second = __uint_as_float(pairs[q] & 0xffff0000u);
    } else if constexpr (kOperand == kOperandFp16) {
      unpack_f16x2(pairs[q], first, second);
      first *= 0.5f;
      second *= 0.5f;
    } else if constexpr (kPreloaded32) {
      first = pairs32[q][0];
      second = pairs32[q][1];
    } else {
      load32(q, first, second);
      first *= kReadScale;
      second *= kReadScale;
    }
  }
};

/// The epilogue of a slice wholly inside out, from registers: rows `row` and row + 8 of this
/// thread (store_slice), with no bounds checks. The biases of 8 column pairs are read before
/// their stores (fp32 biases from global memory: issued together, their latencies overlap).
/// kWide: out's rows start on 16-byte boundaries, and every store writes 16 bytes of a row.
/// wgmma leaves each thread 2 adjacent columns of every 8-column group, so lanes of a quad swap
/// columns first: for fp32, the lanes of a pair (lane ^ 1) swap one pair of each two groups, so
/// that of groups q and q + 1 the even lane holds 4 adjacent columns of q and the odd lane 4 of
/// q + 1; 16-bit outputs then swap again across lane ^ 2, so that each lane holds all 8 columns
/// of one of 4 groups. Fewer, wider stores: 8-byte fp32 and 4-byte 16-bit stores made the TF32
/// and bf16 epilogues slower (bench/RESULTS.md, session 11).
template <int kOperand, int kTileN, bool kWide>
__device__ __forceinline__ void store_interior(const HopperLinearArgs& args, const float (&acc)[kTileN / 2],
                                               const TileBias<kOperand, kTileN>& bias, long long offset,
                                               long long offset8, int tile_col0, int lane) {
  constexpr bool kPacked = TileBias<kOperand, kTileN>::kPacked;
  constexpr int kChunkPairs = 8;
  constexpr int kGroupsPerStep = kPacked ? 4 : 2;  // 8-column groups that one round of 16-byte stores covers
  static_assert((kTileN / 8) % kChunkPairs == 0, "whole chunks of column pairs");
  const bool odd = lane % 2, high = lane % 4 >= 2;
#pragma unroll
  for (int chunk = 0; chunk < kTileN / 8; chunk += kChunkPairs) {
    float biases[kChunkPairs][2];
#pragma unroll
    for (int q = 0; q < kChunkPairs; ++q) bias.get(chunk + q, biases[q][0], biases[q][1]);
#pragma unroll
    for (int q = 0; q < kChunkPairs; q += kGroupsPerStep) {
      // group[g]: columns (c, c + 1) of row, then of row + 8, for groups chunk + q + g.
      float group[kGroupsPerStep][4];
#pragma unroll
      for (int g = 0; g < kGroupsPerStep; ++g) {
        const int i = 4 * (chunk + q + g);
        fast_fused_epilogue<kOperand>(acc[i], acc[i + 1], biases[q + g][0], biases[q + g][1], args.scale, group[g][0],
                                      group[g][1]);
        fast_fused_epilogue<kOperand>(acc[i + 2], acc[i + 3], biases[q + g][0], biases[q + g][1], args.scale,
                                      group[g][2], group[g][3]);
      }
      const int col = tile_col0 + 8 * (chunk + q) + 2 * (lane % 4);  // this thread's column of group q
      if constexpr (kWide && kPacked) {
        unsigned* const out = static_cast<unsigned*>(args.out);  // 2 elements per word
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          // Round 1 (lane ^ 1), for groups (0, 1) and (2, 3): the even lane keeps the first
          // group of each two and gets its partner's columns of it (the 2 after its own); the
          // odd lane keeps the second and gets its partner's (the 2 before its own).
          unsigned four[2][2];  // four[h]: 4 adjacent columns of group 2 h + odd, from column 4 high
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const unsigned first = pack_pair<kOperand>(group[2 * h][2 * r], group[2 * h][2 * r + 1]);
            const unsigned second = pack_pair<kOperand>(group[2 * h + 1][2 * r], group[2 * h + 1][2 * r + 1]);
            const unsigned kept = odd ? second : first;
            const unsigned received = __shfl_xor_sync(0xffffffffu, odd ? first : second, 1);
            four[h][0] = odd ? received : kept;
            four[h][1] = odd ? kept : received;
          }
          // Round 2 (lane ^ 2): the low lane keeps four[0] and gets its partner's columns 4-7 of
          // that group; the high lane keeps four[1] and gets its partner's columns 0-3.
          unsigned kept[2], received[2];
#pragma unroll
          for (int v = 0; v < 2; ++v) {
            kept[v] = high ? four[1][v] : four[0][v];
            received[v] = __shfl_xor_sync(0xffffffffu, high ? four[0][v] : four[1][v], 2);
          }
          const int group_col = tile_col0 + 8 * (chunk + q + odd + 2 * high);
          *reinterpret_cast<uint4*>(out + ((r ? offset8 : offset) + group_col) / 2) =
              high ? make_uint4(received[0], received[1], kept[0], kept[1])
                   : make_uint4(kept[0], kept[1], received[0], received[1]);
        }
      } else if constexpr (kWide) {
        // fp32: the even lane keeps group q and gets its partner's columns of q (the 2 after
        // its own); the odd lane keeps q + 1 and gets its partner's (the 2 before its own).
        float kept[4], received[4];
#pragma unroll
        for (int v = 0; v < 4; ++v) {
          kept[v] = odd ? group[1][v] : group[0][v];
          received[v] = __shfl_xor_sync(0xffffffffu, odd ? group[0][v] : group[1][v], 1);
        }
        const int first_col = col + 6 * odd;  // odd: 2 columns before its own in group q + 1
        float* const out = static_cast<float*>(args.out);
        *reinterpret_cast<float4*>(out + offset + first_col) =
            odd ? make_float4(received[0], received[1], kept[0], kept[1])
                : make_float4(kept[0], kept[1], received[0], received[1]);
        *reinterpret_cast<float4*>(out + offset8 + first_col) =
            odd ? make_float4(received[2], received[3], kept[2], kept[3])
                : make_float4(kept[2], kept[3], received[2], received[3]);
      } else {
#pragma unroll
        for (int g = 0; g < kGroupsPerStep; ++g) {
          store_elements<kOperand>(args.out, offset + col + 8 * g, group[g][0], group[g][1], true, true);
          store_elements<kOperand>(args.out, offset8 + col + 8 * g, group[g][2], group[g][3], true, true);
        }
      }
    }
  }
}

/// Applies the fused epilogue to one consumer's accumulators of a 64-row slice and stores
/// out from registers. wgmma's accumulator layout: thread (warp w, lane l) holds, for i in
/// [0, kTileN / 2), row 16 w + l / 4 + 8 ((i / 2) % 2), column 8 (i / 4) + 2 (l % 4) + i % 2.
/// Slices wholly inside out with even n (all but the edge tiles') store with no bounds checks
/// (store_interior); the edge slices check each element. kWidth < kTileN: the slice's first
/// kWidth columns only (a narrow tile of TileColumns), through the checked path.
template <int kOperand, int kTileN, int kWidth = kTileN>
__device__ __forceinline__ void store_slice(const HopperLinearArgs& args, const float (&acc)[kTileN / 2],
                                            const TileBias<kOperand, kTileN>& bias, int slice_row0, int tile_col0,
                                            int thread) {
  const int warp = thread / 32, lane = thread % 32;
  const int row = slice_row0 + 16 * warp + lane / 4;  // and row + 8
  const long long offset = static_cast<long long>(row) * args.n;
  const long long offset8 = offset + 8ll * args.n;
  const bool interior =
      kWidth == kTileN && slice_row0 + 64 <= args.m && tile_col0 + kTileN <= args.n && args.n % 2 == 0;
  if (interior) {
    // A loop with no bounds checks at all (a branch per pair in the loop below made the TF32
    // kernel 4% slower). Rows that start on 16-byte boundaries (n a multiple of 4 fp32 or 8
    // 16-bit elements, out 16-byte aligned) take the wide stores.
    if (args.n % (16 / OperandTraits<kOperand>::kElementBytes) == 0 &&
        reinterpret_cast<unsigned long long>(args.out) % 16 == 0)
      store_interior<kOperand, kTileN, true>(args, acc, bias, offset, offset8, tile_col0, lane);
    else
      store_interior<kOperand, kTileN, false>(args, acc, bias, offset, offset8, tile_col0, lane);
    return;
  }
  const bool row_ok = row < args.m, row8_ok = row + 8 < args.m;
  const bool aligned_pair = args.n % 2 == 0;  // out rows start on pair boundaries
#pragma unroll
  for (int i = 0; i < kWidth / 2; i += 4) {
    // acc[i], acc[i + 1]: (row, col), (row, col + 1); acc[i + 2], acc[i + 3]: the same columns of row + 8.
    const int col = tile_col0 + 8 * (i / 4) + 2 * (lane % 4);
    float bias0, bias1, out0, out1, out2, out3;
    bias.get(i / 4, bias0, bias1);
    fast_fused_epilogue<kOperand>(acc[i], acc[i + 1], bias0, bias1, args.scale, out0, out1);
    fast_fused_epilogue<kOperand>(acc[i + 2], acc[i + 3], bias0, bias1, args.scale, out2, out3);
    if (col < args.n) {
      const bool pair = col + 1 < args.n;
      if (row_ok) store_elements<kOperand>(args.out, offset + col, out0, out1, pair, aligned_pair);
      if (row8_ok) store_elements<kOperand>(args.out, offset8 + col, out2, out3, pair, aligned_pair);
    }
  }
}

/// The TMA-store epilogue's staging: per consumer warpgroup, kStoreBuffers (a knob) buffers of
/// 64 rows (one wgmma slice) x 128 bytes of out each (64 bf16 / fp16 or 32 fp32 columns),
/// 128-byte swizzled as the out map says (hopper_args.cuh). Warp w writes rows 16 w to 16 w + 15,
/// 2 KB from 2 KB * w: one kStoreBoxRows-row box of the out map, on a 1024-byte swizzle atom.
constexpr int kStoreBoxBytes = 64 * 128;
static_assert(kStoreBoxRows == 16, "one out box per warp of a 64-row slice");

/// The epilogue of one consumer's 64-row slice through shared memory and TMA stores
/// (args.out_tma): for each 128-byte-wide box of the slice, each warp writes the fused outputs
/// of its 16 rows into a staging buffer and its lane 0 hands them to TMA, which writes them to
/// out (clipped at m and n) while the warp goes on: to the next box, then to the next tile's
/// products. Warps sync only with themselves: with one TMA store per warpgroup, two barriers
/// of all 128 threads per box cost bf16 0.3-0.4% in the probe (bench/RESULTS.md, session 16). Measured on
/// the H100 (bench/RESULTS.md): this path took 1.5% off the bf16 kernel against register
/// stores, but made fp32 outputs (twice the boxes) slower. `boxes_issued` counts this
/// consumer's boxes so far (the same in all its threads): a warp writes a buffer again only
/// once TMA has read its part of the box issued from it kStoreBuffers boxes ago (lane 0's bulk
/// groups are the warp's).
/// kWidth < kTileN: the slice's first kWidth columns only (a narrow tile of TileColumns). Its
/// last box is moved left to end at column kWidth, so it overlaps the box before it (8 columns
/// at kWidth 120), which both write with the same values: TMA stores whole boxes, and a box
/// reaching past kWidth would overwrite the next tile's columns.
template <int kOperand, int kTileN, int kStoreBuffers, int kWidth = kTileN>
__device__ __forceinline__ void store_slice_tma(const HopperLinearArgs& args, const float (&acc)[kTileN / 2],
                                                const TileBias<kOperand, kTileN>& bias, int slice_row0, int tile_col0,
                                                int thread, unsigned char* staging, int& boxes_issued) {
  constexpr int kElementBytes = OperandTraits<kOperand>::kElementBytes;
  constexpr int kBoxCols = 128 / kElementBytes;
  constexpr int kGroupsPerBox = kBoxCols / 8;  // accumulator quads (8 columns each) per box
  constexpr int kBoxes = (kWidth + kBoxCols - 1) / kBoxCols;
  static_assert(kWidth % 8 == 0 && kWidth >= kBoxCols && kWidth <= kTileN, "whole quads, at least one box");
  constexpr int kLastQuad = kWidth / 8 - kGroupsPerBox;  // the first quad of a box that ends at kWidth
  const int warp = thread / 32, lane = thread % 32;
  const int row = 16 * warp + lane / 4;  // row of the box, and row + 8: the same swizzle (row % 8)
  // st.shared on 32-bit addresses: generic stores cost 64-bit address arithmetic, and ptxas
  // puts a MEMBAR before the proxy fence that follows them.
  const unsigned staging_address = shared_address(staging);
#pragma unroll
  for (int box = 0; box < kBoxes; ++box) {
    const int first_quad = box * kGroupsPerBox < kLastQuad ? box * kGroupsPerBox : kLastQuad;
    const int box_col0 = tile_col0 + first_quad * 8;
    if (box_col0 >= args.n) break;  // the same for the whole warpgroup
    const unsigned buffer_address = staging_address + (boxes_issued % kStoreBuffers) * kStoreBoxBytes;
    if (boxes_issued >= kStoreBuffers && lane == 0) wait_bulk_group_reads<kStoreBuffers - 1>();
    __syncwarp();  // the warp's part of the buffer is free
#pragma unroll
    for (int q = 0; q < kGroupsPerBox; ++q) {
      const int i = 4 * (first_quad + q);
      const int col_in_box = 8 * q + 2 * (lane % 4);
      float bias0, bias1, out0, out1, out2, out3;
      bias.get(i / 4, bias0, bias1);
      fast_fused_epilogue<kOperand>(acc[i], acc[i + 1], bias0, bias1, args.scale, out0, out1);
      fast_fused_epilogue<kOperand>(acc[i + 2], acc[i + 3], bias0, bias1, args.scale, out2, out3);
      // 16-byte chunk c of a row is stored at chunk c ^ (row % 8): the 8 rows a warp writes
      // at once land in 8 different chunks, so the writes are free of bank conflicts.
      const int byte_in_row = col_in_box * kElementBytes;
      const int offset = ((byte_in_row / 16) ^ (row % 8)) * 16 + byte_in_row % 16;
      const unsigned row_address = buffer_address + row * 128 + offset;
      store_shared_pair<kOperand>(row_address, out0, out1);
      store_shared_pair<kOperand>(row_address + 8 * 128, out2, out3);
    }
    fence_async_shared();
    __syncwarp();  // the warp's rows of the box are written
    if (lane == 0) {
      tma_store_2d(&args.out_map, buffer_address + warp * kStoreBoxRows * 128, box_col0,
                   slice_row0 + kStoreBoxRows * warp);
      commit_bulk_group();
    }
    ++boxes_issued;
  }
}

// ---- 3xTF32: x fragments from shared memory, split into big and small ----

/// Loads the TF32 A fragment of wgmma k-step `step` for this thread from a 128B-swizzled
/// fp32 tile (rows of 128 bytes; 16-byte chunk c of row r stored at chunk c ^ (r % 8)) and
/// splits it: a = big + small, both rounded to TF32. Fragment layout (per warp, rows 16 w..):
/// a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4) with g = lane / 4, t = lane % 4.
__device__ __forceinline__ void load_split_fragment(const unsigned char* slice, int step, int thread,
                                                    unsigned (&big)[4], unsigned (&small)[4]) {
  const int warp = thread / 32, lane = thread % 32;
  const int row = 16 * warp + lane / 4;  // row % 8 == (row + 8) % 8: one swizzle for a0..a3
  const int swizzle = row % 8;
  const int byte_in_chunk = 4 * (lane % 4);
  const int chunk_lo = (2 * step) ^ swizzle, chunk_hi = (2 * step + 1) ^ swizzle;
  const float values[4] = {
      *reinterpret_cast<const float*>(slice + row * 128 + chunk_lo * 16 + byte_in_chunk),
      *reinterpret_cast<const float*>(slice + (row + 8) * 128 + chunk_lo * 16 + byte_in_chunk),
      *reinterpret_cast<const float*>(slice + row * 128 + chunk_hi * 16 + byte_in_chunk),
      *reinterpret_cast<const float*>(slice + (row + 8) * 128 + chunk_hi * 16 + byte_in_chunk),
  };
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    big[i] = round_to_tf32(values[i]);
    small[i] = round_to_tf32(values[i] - __uint_as_float(big[i]));
  }
}

// ---- the kernel body ----

/// The products of one k-block (bf16 / fp16 / TF32, both operands from shared memory): for
/// each of its kKSteps k-steps, one m64 x kN wgmma per 64-row slice. a_low and b_low are the
/// descriptor low words of the stage's x rows and w rows of this consumer; `accumulate` false
/// starts the sums (the tile's first k-block). kN may be narrower than the accumulator array
/// (kRegs = 64, kN = 120: a narrow tile of TileColumns).
template <int kOperand, int kN, int kSlices, int kRegs>
__device__ __forceinline__ void issue_k_block(float (&acc)[kSlices][kRegs], unsigned a_low, unsigned b_low,
                                              bool accumulate) {
#pragma unroll
  for (int step = 0; step < kKSteps; ++step) {
#pragma unroll
    for (int j = 0; j < kSlices; ++j)
      wgmma_ss<kOperand, kN>(acc[j], matrix_descriptor(a_low + (j * 64 * kTileKBytes + step * kMmaKBytes) / 16),
                             matrix_descriptor(b_low + step * kMmaKBytes / 16), accumulate || step > 0);
  }
}

/// The body of `fusetune_kernel` for one config (see the search space for each knob):
/// kTileM x kTileN output tile per block, kStages shared-memory stages, kConsumers consumer
/// warpgroups, persistent tile loop or one tile per block, tile order (kRaster, kGroup), and
/// for 3xTF32 the promotion interval kPromote in k-blocks; kClusterM blocks along m form a
/// cluster (the kernel must be declared __cluster_dims__(kClusterM, 1, 1)) that shares each w
/// tile: every block loads 1 / kClusterM of it and TMA multicasts it to all, so w is read from
/// L2 once per cluster instead of once per block. kPingpong 0: the consumers split each tile's
/// rows (cooperative); 1: each consumer owns whole tiles, taking turns, so one consumer's
/// epilogue runs while the other's products keep the tensor cores busy. kStoreBuffers 0: the
/// epilogue stores from registers; n > 0: through n staging buffers per consumer and TMA stores
/// (store_slice_tma) when the host passes an out map (args.out_tma), else from registers.
/// kPersistent 2 is stream-K (WorkSchedule): the host passes the workspace in args.partials and
/// args.partial_flags. kSplitN 0: cooperative consumers split the tile's rows, so each reads its
/// x rows and the whole w tile (one m64 x tile_n wgmma per k-step); 1: they split its columns,
/// so each reads all x rows and its half of the w tile (two m64 x tile_n / 2 wgmma per k-step,
/// the arrangement of cuBLAS's bf16 kernel at the headline shape). kTrim > 0: the tile columns
/// are kTrim narrower but one more (TileColumns), and the second consumer of a narrow tile
/// computes kTileN / 2 - kTrim columns.
template <int kOperand, int kTileM, int kTileN, int kStages, int kConsumers, int kPersistent, int kRaster, int kGroup,
          int kPromote, int kClusterM = 1, int kPingpong = 0, int kStoreBuffers = 0, int kSplitN = 0, int kTrim = 0>
__device__ __forceinline__ void fused_linear(const HopperLinearArgs& args) {
  using Traits = OperandTraits<kOperand>;
  // The part of a tile each consumer computes: all of it (pingpong), its rows (cooperative,
  // kSplitN 0), or its columns (cooperative, kSplitN 1: all rows as two m64 slices, against
  // its own part of the w tile).
  constexpr int kConsumerRows = kPingpong || kSplitN ? kTileM : kTileM / kConsumers;
  constexpr int kConsumerN = kSplitN ? kTileN / kConsumers : kTileN;
  constexpr int kStageUsers = kPingpong ? 1 : kConsumers;  // consumer warpgroups reading each stage
  // wgmma groups a consumer leaves pending when it releases a stage (bf16, TF32, fp16; 3xTF32
  // always waits for all, as its A registers are rewritten each k-block). Two cooperative
  // consumers release each k-block's stage as soon as their own products of it are done (0):
  // the other consumer's products keep the tensor cores busy meanwhile, and TMA gets one more
  // stage to fill ahead. Alone (one consumer, or pingpong's turns), a consumer keeps one
  // k-block queued (1) and releases the previous one's stage. Measured on the H100
  // (bench/RESULTS.md, session 12), 0 against 1: bf16 128x256 0.2-0.9% faster, TF32 the same.
  constexpr int kPending = kConsumers == 2 && !kPingpong ? 0 : 1;
  constexpr int kSlices = kConsumerRows / 64;  // wgmma is 64 rows tall
  constexpr bool kSplit = kOperand == kOperandTf32x3;
  static_assert(kConsumerRows % 64 == 0 && kSlices >= 1 && kSlices <= 2, "each consumer owns 64 or 128 rows");
  static_assert(kTileN % 64 == 0 && kTileN <= 256, "tile_n is 64, 128, 192 or 256");
  static_assert(!kSplitN || (kConsumers == 2 && !kPingpong && kConsumerN % 64 == 0),
                "split_n: two cooperative consumers, each 64 or 128 columns wide (tile_n 128 or 256)");
  static_assert(!kSplit || kPromote >= 1, "3xTF32 promotes its accumulator every kPromote k-blocks");
  static_assert(kPersistent >= 0 && kPersistent <= 2, "persistent is 0, 1 or 2 (stream-K)");
  static_assert(kPersistent != 2 || (kClusterM == 1 && !kPingpong), "stream-K runs without clusters and pingpong");
  static_assert(kClusterM == 1 || kClusterM == 2, "clusters of 1 or 2 blocks along m");
  static_assert(!kPingpong || kConsumers == 2, "pingpong takes two consumers");
  static_assert(kStoreBuffers >= 0, "store_buffers is 0 (stores from registers) or the staging buffers' count");
  static_assert(
      kTrim == 0 || (kTrim == 8 && kSplitN && kConsumerN == 128 && kPersistent == 1 && kClusterM == 1 && !kSplit),
      "trim: 8 columns off the second of two split_n halves of 128 (wgmma N 120), data-parallel persistent, "
      "no clusters, no 3xTF32");
  constexpr int kStagingBytesPerConsumer = kStoreBuffers * kStoreBoxBytes;
  constexpr int kTileABytes = kTileM * kTileKBytes;
  constexpr int kTileBBytes = kTileN * kTileKBytes;
  constexpr int kStageBytes = kTileABytes + Traits::kWeightTiles * kTileBBytes;
  constexpr int kSharedRows = kTileN / kClusterM;  // rows of each w tile one block loads for its cluster
  static_assert(kSharedRows % 8 == 0, "each block's share of a w tile is whole 8-row swizzle atoms");

  // Shared memory: [A stages][B stages][B small stages (3xTF32)][epilogue staging, per
  // consumer][full barriers][empty barriers], the tiles and staging buffers 1024-byte aligned
  // as the 128-byte swizzle requires. The search spaces' smem_bytes must match this layout.
  extern __shared__ unsigned char shared_raw[];
  unsigned char* shared = reinterpret_cast<unsigned char*>((reinterpret_cast<unsigned long long>(shared_raw) + 1023) &
                                                           ~static_cast<unsigned long long>(1023));
  unsigned char* tiles_a = shared;
  unsigned char* tiles_b = shared + kStages * kTileABytes;
  unsigned char* tiles_b_small = tiles_b + kStages * kTileBBytes;  // 3xTF32 only
  unsigned char* staging = shared + kStages * kStageBytes;         // kStagingBytesPerConsumer per consumer
  unsigned long long* full = reinterpret_cast<unsigned long long*>(staging + kConsumers * kStagingBytesPerConsumer);
  unsigned long long* empty = full + kStages;
  // Pingpong: order[c] completes a phase each time the other consumer has issued its last
  // products of a tile. A consumer starts its tile only then, which keeps the two mainloops
  // in tile order and every full barrier at most one phase ahead of the consumer waiting on
  // it (a parity wait cannot tell phases two apart).
  unsigned long long* order = empty + kStages;

  // Read through a shuffle from lane 0, so that the compiler knows it is the same in every
  // lane of a warp: then everything derived from it (the consumer's descriptor base, stage
  // offsets) stays in uniform registers, and the descriptors of each wgmma are built there
  // rather than in vector registers and copied over (R2UR) one by one.
  const int warpgroup = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x / kWarpgroupThreads), 0);
  const int thread = threadIdx.x % kWarpgroupThreads;
  const unsigned rank = kClusterM > 1 ? cluster_rank() : 0;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(shared_address(&full[s]), 1);  // the producer's expect_tx arrival
      // One arrival per reading consumer warpgroup of every block of the cluster: a stage is refilled
      // (in all of them, by multicast) only once all of them are done with it.
      mbarrier_init(shared_address(&empty[s]), kStageUsers * kClusterM);
    }
    if constexpr (kPingpong)
      for (int c = 0; c < kConsumers; ++c) mbarrier_init(shared_address(&order[c]), 1);
    fence_barrier_init();
    prefetch_tensor_map(&args.x_map);
    prefetch_tensor_map(&args.w_map);
    if (kStoreBuffers > 0 && args.out_tma) prefetch_tensor_map(&args.out_map);
    if constexpr (kSplit) prefetch_tensor_map(&args.w_small_map);
  }
  // The peer's barriers must be initialised before any multicast or remote arrival.
  if constexpr (kClusterM > 1)
    cluster_sync();
  else
    __syncthreads();

  // The scheduler walks cluster tiles of (kClusterM * kTileM) x kTileN; block `rank` of the
  // cluster takes the rank-th kTileM rows. (A cluster tile may reach past m: TMA then loads
  // zeros and the stores are predicated off.)
  const int tiles_m = (args.m + kClusterM * kTileM - 1) / (kClusterM * kTileM);
  const TileColumns<kTileN, kTrim> columns(args.n);
  const int tiles_n = columns.count;
  const int tiles = tiles_m * tiles_n;
  const int k_blocks = (args.k + Traits::kTileK - 1) / Traits::kTileK;
  const int first_tile = blockIdx.x / kClusterM;
  const int tile_step = kPersistent ? gridDim.x / kClusterM : tiles;  // non-persistent: one tile per cluster

  if (warpgroup == 0) {
    // ---- producer: warp 0 walks the stages, its lane 0 issues every TMA load ----
    // (The whole warp walks, not one thread: lanes parked elsewhere, e.g. at the final cluster
    // barrier, would compete with the issuing lane for the warp's scheduling.)
    if constexpr (kConsumers == 2) release_registers<40>();
    if (thread < 32) {
      const bool issuer = thread == 0;
      int stage = 0;
      unsigned phase = 0;
      WorkSchedule<kPersistent, kRaster, kGroup> work(tiles_m, tiles_n, k_blocks, first_tile, tile_step);
      int tile_row, tile_col, kb_begin, kb_end;
      while (work.next(tile_row, tile_col, kb_begin, kb_end)) {
        const int row0 = (tile_row * kClusterM + static_cast<int>(rank)) * kTileM;
        const int shared_row0 = columns.start(tile_col) + static_cast<int>(rank) * kSharedRows;
        for (int kb = kb_begin; kb < kb_end; ++kb) {
          // A fresh barrier counts as having completed the phase before phase 0, so the
          // first pass over the ring does not wait.
          mbarrier_wait(shared_address(&empty[stage]), phase ^ 1);
          if (issuer) {
            const unsigned full_barrier = shared_address(&full[stage]);
            mbarrier_arrive_expect_tx(full_barrier, kStageBytes);  // own x tile + every share of w
            const int k0 = kb * Traits::kTileK;
            tma_load_2d(shared_address(tiles_a + stage * kTileABytes), &args.x_map, full_barrier, k0, row0);
            const unsigned b_share = shared_address(tiles_b + stage * kTileBBytes) + rank * kSharedRows * kTileKBytes;
            const unsigned b_small_share =
                shared_address(tiles_b_small + stage * kTileBBytes) + rank * kSharedRows * kTileKBytes;
            if constexpr (kClusterM == 1) {
              tma_load_2d(b_share, &args.w_map, full_barrier, k0, shared_row0);
              if constexpr (kSplit) tma_load_2d(b_small_share, &args.w_small_map, full_barrier, k0, shared_row0);
            } else {
              constexpr unsigned short kAllBlocks = (1u << kClusterM) - 1;
              tma_load_2d_multicast(b_share, &args.w_map, full_barrier, k0, shared_row0, kAllBlocks);
              if constexpr (kSplit)
                tma_load_2d_multicast(b_small_share, &args.w_small_map, full_barrier, k0, shared_row0, kAllBlocks);
            }
          }
          if (++stage == kStages) {
            stage = 0;
            phase ^= 1;
          }
        }
      }
    }
  } else {
    // ---- consumers ----
    if constexpr (kConsumers == 2) claim_registers<232>();
    const int consumer = warpgroup - 1;
    // The first row and column of the tile that this consumer computes.
    const int consumer_row0 = kPingpong || kSplitN ? 0 : consumer * kConsumerRows;
    const int consumer_col0 = kSplitN ? consumer * kConsumerN : 0;
    // Descriptor low words of stage 0 (see matrix_descriptor).
    const unsigned a_low0 = descriptor_low(shared_address(tiles_a) + consumer_row0 * kTileKBytes);
    const unsigned b_low0 = descriptor_low(shared_address(tiles_b) + consumer_col0 * kTileKBytes);
    const unsigned b_small_low0 = descriptor_low(shared_address(tiles_b_small) + consumer_col0 * kTileKBytes);
    // Releases a stage to the producer of every block of the cluster (one thread per warpgroup).
    auto release_stage = [&](int released) {
      if (thread != 0) return;
      if constexpr (kClusterM == 1) {
        mbarrier_arrive(shared_address(&empty[released]));
      } else {
#pragma unroll
        for (int peer = 0; peer < kClusterM; ++peer) mbarrier_arrive_cluster(shared_address(&empty[released]), peer);
      }
    };
    float acc[kSlices][kConsumerN / 2];
    float total[kSplit ? kSlices : 1][kSplit ? kConsumerN / 2 : 1];  // 3xTF32: the promoted fp32 sums
#pragma unroll
    for (int j = 0; j < kSlices; ++j)
#pragma unroll
      for (int i = 0; i < kConsumerN / 2; ++i) acc[j][i] = 0.0f;

    int stage = 0;
    unsigned phase = 0;
    int turn = 0;         // pingpong: tiles seen by this block so far; tile `turn` belongs to consumer turn % 2
    int order_waits = 0;  // pingpong: phases of order[consumer] waited for
    unsigned char* consumer_staging = staging + consumer * kStagingBytesPerConsumer;
    const int barrier_id = 1 + consumer;  // named barrier of this consumer warpgroup (stream-K's partial sums)
    int boxes_issued = 0;                 // TMA-store epilogue: boxes of out handed to TMA so far
    WorkSchedule<kPersistent, kRaster, kGroup> work(tiles_m, tiles_n, k_blocks, first_tile, tile_step);
    int tile_row, tile_col, kb_begin, kb_end;
    while (work.next(tile_row, tile_col, kb_begin, kb_end)) {
      if constexpr (kPingpong) {
        const int mine = turn++ % kConsumers == consumer;
        if (!mine) {
          // The other consumer's tile: skip its k-blocks in the ring.
          const int skipped = stage + (kb_end - kb_begin);
          stage = skipped % kStages;
          phase ^= (skipped / kStages) & 1;
          continue;
        }
        if (turn > 1) mbarrier_wait(shared_address(&order[consumer]), (order_waits++) & 1);
      }
      // The second split_n consumer of a narrow tile (TileColumns) computes kTrim fewer columns.
      const bool narrow = consumer == 1 && columns.narrow(tile_col);
      TileBias<kOperand, kConsumerN> bias;  // 16-bit and narrow TF32 slices: loaded now, before the products
      if (kb_begin == 0)
        bias.load(args, columns.start(tile_col) + consumer_col0, thread % 32);  // else a stream-K contributor
      if constexpr (kSplit) {
#pragma unroll
        for (int j = 0; j < kSlices; ++j)
#pragma unroll
          for (int i = 0; i < kConsumerN / 2; ++i) total[j][i] = 0.0f;
      }
      int previous_stage = -1;
      // narrow_block: this consumer computes kConsumerN - kTrim columns. Always a constant at
      // the calls below, so that each copy of the k-loop issues one kind of wgmma and has no
      // branch between them (a branch there made ptxas add warpgroup.arrive at its joins).
      auto k_block = [&](int kb, bool narrow_block) {
        mbarrier_wait(shared_address(&full[stage]), phase);
        // Descriptor low words of this stage's x rows (of this consumer) and w tile.
        const unsigned a_low = a_low0 + stage * (kTileABytes / 16);
        const unsigned b_low = b_low0 + stage * (kTileBBytes / 16);
        if constexpr (!kSplit) {
          // bf16 / fp16 / TF32: both operands from shared memory. (For TF32 the host encodes
          // the tensor maps with TMA's TF32 type, so TMA rounds x and w to TF32 on the way in:
          // the tensor cores would otherwise truncate them, see hopper_args.cuh.)
#pragma unroll
          for (int j = 0; j < kSlices; ++j) fence_registers(acc[j]);
          wgmma_fence();
          if (narrow_block)
            issue_k_block<kOperand, kConsumerN - kTrim>(acc, a_low, b_low, kb > kb_begin);
          else
            issue_k_block<kOperand, kConsumerN>(acc, a_low, b_low, kb > kb_begin);
          wgmma_commit();
#pragma unroll
          for (int j = 0; j < kSlices; ++j) fence_registers(acc[j]);
          // kPending 1: the previous k-block's group is done once at most this one is pending,
          // and its stage can be refilled while this one computes. 0: this k-block's own.
          wgmma_wait<kPending>();
          if constexpr (kPending == 0)
            release_stage(stage);
          else if (previous_stage >= 0)
            release_stage(previous_stage);
        } else {
          const unsigned b_small_low = b_small_low0 + stage * (kTileBBytes / 16);
          // The first k-block after a promotion overwrites acc.
          const bool restart = (kb - kb_begin) % kPromote == 0;
          // All fragments of the k-block first: wgmma reads its A registers asynchronously, so
          // none may be written between the fence and the wait.
          unsigned big[kSlices][kKSteps][4], small[kSlices][kKSteps][4];
          const unsigned char* a_tile =
              tiles_a + stage * kTileABytes + consumer_row0 * kTileKBytes;  // a_stage, generic
#pragma unroll
          for (int j = 0; j < kSlices; ++j)
#pragma unroll
            for (int step = 0; step < kKSteps; ++step)
              load_split_fragment(a_tile + j * 64 * kTileKBytes, step, thread, big[j][step], small[j][step]);
#pragma unroll
          for (int j = 0; j < kSlices; ++j) fence_registers(acc[j]);
          wgmma_fence();
#pragma unroll
          for (int step = 0; step < kKSteps; ++step) {
            const unsigned long long b_big = matrix_descriptor(b_low + step * kMmaKBytes / 16);
            const unsigned long long b_small = matrix_descriptor(b_small_low + step * kMmaKBytes / 16);
#pragma unroll
            for (int j = 0; j < kSlices; ++j) {
              // Small terms first: they are added to a smaller running sum.
              wgmma_rs_tf32<kConsumerN>(acc[j], small[j][step], b_big, !(restart && step == 0));
              wgmma_rs_tf32<kConsumerN>(acc[j], big[j][step], b_small, 1);
              wgmma_rs_tf32<kConsumerN>(acc[j], big[j][step], b_big, 1);
            }
          }
          wgmma_commit();
#pragma unroll
          for (int j = 0; j < kSlices; ++j) fence_registers(acc[j]);
          // The next k-block rewrites the A registers: wait for all of this k-block's products
          // (the other consumer keeps the tensor cores busy meanwhile).
          wgmma_wait<0>();
          release_stage(stage);
          if ((kb - kb_begin + 1) % kPromote == 0 || kb + 1 == kb_end) {
#pragma unroll
            for (int j = 0; j < kSlices; ++j)
#pragma unroll
              for (int i = 0; i < kConsumerN / 2; ++i) total[j][i] += acc[j][i];
          }
        }
        previous_stage = stage;
        if (++stage == kStages) {
          stage = 0;
          phase ^= 1;
        }
      };
      // Two k-blocks per iteration, the loop shape of the kernels measured in sessions 3 and 4.
      // (A single-k-block loop ran the pingpong configs 10% slower in one probe run, but with
      // the unroll back they stayed slow: the cause was not the loop, see bench/RESULTS.md.)
      if (narrow) {
        for (int kb = kb_begin; kb < kb_end; kb += 2) {
          k_block(kb, true);
          if (kb + 1 < kb_end) k_block(kb + 1, true);
        }
      } else {
        for (int kb = kb_begin; kb < kb_end; kb += 2) {
          k_block(kb, false);
          if (kb + 1 < kb_end) k_block(kb + 1, false);
        }
      }
      if constexpr (kPingpong)
        if (thread == 0) mbarrier_arrive(shared_address(&order[(consumer + 1) % kConsumers]));
      if constexpr (!kSplit) {
        wgmma_wait<0>();
        if constexpr (kPending > 0) release_stage(previous_stage);
      }
      if constexpr (kPersistent == 2) {
        // Stream-K: a segment that does not start the tile hands its sums on; one that starts
        // it but stops short waits for the rest from the blocks after it (see "stream-K" above).
        auto slot_of = [&](int block) {
          return args.partials + (static_cast<long long>(block) * kConsumers + consumer) * kConsumerRows * kConsumerN;
        };
        if (kb_begin > 0) {
          float* slot = slot_of(blockIdx.x);
#pragma unroll
          for (int j = 0; j < kSlices; ++j) {
            if constexpr (kSplit)
              store_partial(slot + j * 64 * kConsumerN, total[j], thread);
            else
              store_partial(slot + j * 64 * kConsumerN, acc[j], thread);
          }
          __threadfence();
          named_barrier_sync(barrier_id, kWarpgroupThreads);  // the whole slot is written
          if (thread == 0) raise_flag(&args.partial_flags[blockIdx.x * kConsumers + consumer]);
          continue;
        }
        for (int team = work.team + 1; team < work.teams && work.range_begin(team) < work.stripe_end_k; ++team) {
          if (work.range_begin(team) == work.range_begin(team + 1)) continue;  // an empty range: no part
          const int block = team * work.team_size + work.member;
          if (thread == 0) wait_for_flag(&args.partial_flags[block * kConsumers + consumer]);
          named_barrier_sync(barrier_id, kWarpgroupThreads);  // the block's slot is complete
          const float* slot = slot_of(block);
#pragma unroll
          for (int j = 0; j < kSlices; ++j) {
            if constexpr (kSplit)
              add_partial(total[j], slot + j * 64 * kConsumerN, thread);
            else
              add_partial(acc[j], slot + j * 64 * kConsumerN, thread);
          }
        }
      }
      const int row0 = (tile_row * kClusterM + static_cast<int>(rank)) * kTileM + consumer_row0;
      const int col0 = columns.start(tile_col) + consumer_col0;
      // Narrow tiles (see TileColumns) store the consumer's first kConsumerN - kTrim columns.
      constexpr int kNarrowN = kConsumerN - kTrim;
      auto epilogue = [&](const float(&result)[kConsumerN / 2], int slice_row0) {
        if constexpr (kStoreBuffers > 0) {
          if (args.out_tma) {
            if (narrow)
              store_slice_tma<kOperand, kConsumerN, kStoreBuffers, kNarrowN>(args, result, bias, slice_row0, col0,
                                                                             thread, consumer_staging, boxes_issued);
            else
              store_slice_tma<kOperand, kConsumerN, kStoreBuffers>(args, result, bias, slice_row0, col0, thread,
                                                                   consumer_staging, boxes_issued);
            return;
          }
        }
        if (narrow)
          store_slice<kOperand, kConsumerN, kNarrowN>(args, result, bias, slice_row0, col0, thread);
        else
          store_slice<kOperand, kConsumerN>(args, result, bias, slice_row0, col0, thread);
      };
      bias.halve();
#pragma unroll
      for (int j = 0; j < kSlices; ++j) {
        const int slice_row0 = row0 + j * 64;
        if (slice_row0 >= args.m) break;  // a cluster or consumer slice past m (the same for the warpgroup)
        if constexpr (kSplit)
          epilogue(total[j], slice_row0);
        else
          epilogue(acc[j], slice_row0);
      }
    }
    // The staging buffers must outlive TMA's reads of them, and out must be written before
    // the kernel ends (each warp's stores are its lane 0's bulk groups).
    if (kStoreBuffers > 0 && args.out_tma && thread % 32 == 0) wait_bulk_groups();
  }
  // No block may leave while a peer can still multicast into its shared memory or arrive on
  // its barriers.
  if constexpr (kClusterM > 1) cluster_sync();
}

}  // namespace wgmma
}  // namespace fusetune

/// The one-time weight preparation of 3xTF32 (WeightPrepArgs): prepared = [big | small]
/// with big = tf32(w) and small = tf32(w - big). Any grid; a grid-stride loop.
extern "C" __global__ void fusetune_prepare_weight(const fusetune::WeightPrepArgs args) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < args.count; i += stride) {
    const float w = args.w[i];
    const unsigned big = fusetune::wgmma::round_to_tf32(w);
    args.prepared[i] = __uint_as_float(big);
    args.prepared[args.count + i] = __uint_as_float(fusetune::wgmma::round_to_tf32(w - __uint_as_float(big)));
  }
}
