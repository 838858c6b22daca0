// FFMA family: exact-fp32 SIMT GEMM (FFMA, no tensor cores) with the fused epilogue,
// out = z + s * sigmoid(z), z = x * w^T + b. The exact family and the fallback for any GPU:
// with vec = 1 a config is correct for every m, n, k >= 1 and 4-byte aligned pointers.
// A generated source instantiates fusetune::ffma::fused_linear<knobs...> inside its kernel.
#pragma once

#include "fused_epilogue.cuh"
#include "fused_linear_args.cuh"

namespace fusetune {
namespace ffma {

// -------------------------------------------------------------------------------------------
// Knobs: the template parameters of fused_linear, in this order (search_spaces/ffma.json,
// "template_args"). The static_asserts in fused_linear repeat each constraint.
//
// kTileM, kTileN (tile_m, tile_n): rows and columns of out computed by one thread group.
//   Bigger tiles read x and w from L2 fewer times (bytes per FFMA ~ 1/kTileM + 1/kTileN);
//   smaller ones give small shapes more groups. Powers of two >= 32: the shared-memory pitch
//   kTile + 4 is then 4 mod 32 words, which keeps the transposing copies bank-conflict free.
// kTileK (tile_k): depth along k of one shared-memory stage; 8, 16 or 32 (the copies give a
//   group of lanes one 32-byte sector of a row). Deeper stages amortise the per-stage barrier
//   and address updates over more FFMA, at the cost of shared memory (and, for vec > 1, of
//   staging registers).
// kThreadM, kThreadN (thread_m, thread_n): accumulators per thread along m and n (register
//   blocking), multiples of 4 (float4 fragments). Each k-step a thread reads
//   kThreadM / 4 + kThreadN / 4 float4 from shared memory for kThreadM * kThreadN FFMA.
//   Shared memory delivers at most 128 bytes per clock per SM: at FFMA peak (128 lanes per
//   clock) 8x8 would need all of it, 8x16 three quarters (fewer where lanes share a float4,
//   see kWarpM). Bigger is denser until registers run out: kThreadM * kThreadN accumulators
//   plus 2 * (kThreadM + kThreadN) fragment registers.
// kWarpM (warp_m): threads of a warp along m; 32 / kWarpM are along n. A warp covers
//   (kWarpM * kThreadM) x (32 / kWarpM * kThreadN) of out, which must tile the group's tile.
//   A fragment read touches kWarpM distinct float4 of x and 32 / kWarpM of w; lanes reading
//   the same float4 share a shared-memory wavefront, so the warp's shape sets the
//   shared-memory traffic and the width of its output stores.
// kVec (vec): how tiles get from global to shared memory.
//   1: 4-byte cp.async (sm_80+), transposed on the fly, kStages stages in flight, no
//      registers held; any k, 4-byte aligned x and w: the universal fallback.
//   2, 4: 8- or 16-byte loads into registers (issued a tile ahead), then transposing
//      stores; fewer instructions per float, but staging registers. Needs k % vec == 0 and
//      x, w aligned to 4 * vec bytes (a vector lies wholly inside or wholly past k).
// kStages (stages): shared-memory stages of a group. vec = 1: 2 .. 4, so that tiles
//   t+1 .. t+kStages-1 are in flight while tile t is computed. vec > 1: exactly 2 (tile t+1
//   is in flight in registers).
// kGroups (groups): independent thread groups per block, each computing its own tile with
//   its own shared memory and its own named barrier (1 .. 15). The generated kernel's
//   __launch_bounds__(threads) caps registers per thread at about 64K / threads, so more
//   groups trade registers for resident warps (latency hiding) while each barrier still
//   spans one tile's warps. The groups of a block take consecutive tiles along m, which
//   share their w tile (also in L1).
// kOrder (order): the order of a k-step's kThreadM * kThreadN FFMA, which ptxas keeps, and
//   with it how many operands it can take from the register reuse cache instead of the
//   register banks.
//   0: row by row (acc[0][0], acc[0][1], ... acc[1][0], ...).
//   1: column pairs (j, j+1), and for each pair every row i, forward on even pairs and
//      backward on odd ones: acc[i][j], acc[i][j+1], so b[j], b[j+1] and each a[i] are
//      read back to back. cuBLAS's SGEMM issues its FFMA in this order (its SASS marks 1.42
//      reuse operands per FFMA, against 0.84 for order 0 in our 8x16 thread tile).
//   Each accumulator still sums its k in order, so both orders give bit-identical results.
//
// Derived: group threads = (kTileM / kThreadM) * (kTileN / kThreadN), a multiple of 32;
// threads = kGroups * group threads; dynamic shared memory =
// 4 * kGroups * kStages * kTileK * (kTileM + 4 + kTileN + 4) bytes;
// grid = (ceil(ceil(m / kTileM) * ceil(n / kTileN) / kGroups), 1, 1).
// Tile t = blockIdx.x * kGroups + group covers rows (t % tiles_m) * kTileM and columns
// (t / tiles_m) * kTileN, tiles_m = ceil(m / kTileM): m fastest, so the blocks running
// together share the same few w tiles (w, n x k, is the large operand here) in L2.
// -------------------------------------------------------------------------------------------

namespace detail {

__device__ __forceinline__ int min_int(int a, int b) { return a < b ? a : b; }

/// Address of a shared-memory object in the .shared window, as cp.async takes it.
__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

/// 4-byte asynchronous copy global -> shared (sm_80+). 4-byte copies exist only in the
/// L1-allocating .ca form; the lanes that share a sector hit the same L1 line.
__device__ __forceinline__ void copy_async4(unsigned dst, const float* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}

/// As copy_async4, but copies src_bytes (0 or 4) and zero-fills the rest.
__device__ __forceinline__ void copy_async4_zfill(unsigned dst, const float* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}

/// 16-byte shared-memory load at a 32-bit .shared address. Plain C++ loads from the dynamic
/// shared memory compile under NVRTC 13.0 (not under nvcc) to 64-bit addresses, and ptxas then
/// schedules the fragment loads differently: on the H100 at 1024x8192x8192, the tuner's best
/// config with these 32-bit loads and stores ran 1.1-1.3% faster than the best with 64-bit ones
/// (bench/RESULTS.md, session 14). volatile keeps them in order with the barriers.
__device__ __forceinline__ float4 load_shared4(unsigned address) {
  float4 v;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(address));
  return v;
}

/// 4-byte shared-memory store at a 32-bit .shared address (see load_shared4).
__device__ __forceinline__ void store_shared(unsigned address, float v) {
  asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(address), "f"(v) : "memory");
}

__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

/// Waits until at most kPending of this thread's committed copy groups are in flight.
template <int kPending>
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

/// Barrier over the kThreads threads of thread group `group` (0 .. kGroups-1), on named
/// barrier group + 1 (barrier 0 is __syncthreads'). Barrier ids must be immediates for
/// ptxas to reserve only the ones used, hence the binary search over compile-time ids;
/// `group` is uniform within a warp.
template <int kThreads, int kFirst, int kCount>
__device__ __forceinline__ void group_barrier(int group) {
  if constexpr (kCount == 1) {
    asm volatile("bar.sync %0, %1;\n" ::"n"(kFirst + 1), "n"(kThreads) : "memory");
  } else {
    constexpr int kHalf = kCount / 2;
    if (group < kFirst + kHalf) {
      group_barrier<kThreads, kFirst, kHalf>(group);
    } else {
      group_barrier<kThreads, kFirst + kHalf, kCount - kHalf>(group);
    }
  }
}

/// Loads kVec consecutive floats (one aligned vector) through the read-only path.
template <int kVec>
__device__ __forceinline__ void load_vector(float (&v)[kVec], const float* p) {
  if constexpr (kVec == 4) {
    const float4 t = __ldg(reinterpret_cast<const float4*>(p));
    v[0] = t.x;
    v[1] = t.y;
    v[2] = t.z;
    v[3] = t.w;
  } else if constexpr (kVec == 2) {
    const float2 t = __ldg(reinterpret_cast<const float2*>(p));
    v[0] = t.x;
    v[1] = t.y;
  } else {
    v[0] = __ldg(p);
  }
}

/// Moves kRows x kTileK tiles of a K-major operand (rows of x, or rows of w) from global
/// memory into shared memory TRANSPOSED, as S[k][row] with a pitch of kRows + 4 floats, so
/// that the compute loop reads 4 consecutive rows at one k as one float4.
///
/// Each row of a tile is kTileK / 8 sectors of 8 floats (32 bytes) = kLanes = 8 / kVec
/// vectors. Vector e = tid + p * kThreads of the tile is (row, sector, lane) with
/// lane = e % kLanes, row = (e / kLanes) % kRows, sector = (e / kLanes) / kRows, i.e. it
/// starts at k = 8 * sector + kVec * lane. So a warp reads one whole sector from each of
/// 32 / kLanes rows, and its stores of one float of each vector write words
/// k * (kRows + 4) + row with banks 4 * kVec * lane + row (mod 32): all 32 distinct.
/// A thread's vectors lie in kRowsPerThread rows, kRowStep = kThreads / kLanes apart, at
/// kSectorsPerThread sectors of each.
///
/// kVec == 1 copies with cp.async straight into shared memory (issue_async); kVec > 1 loads
/// into `staged` registers (load) and stores them later (store).
/// Rows past the operand's end are clamped to its last row: they only feed rows or columns of
/// out that are never stored, and clamping keeps every address valid without a predicate.
/// Vectors past k (only in the last, partial tile) become zeros, adding nothing to a sum.
/// Addresses: a byte pointer to the next tile (at this thread's k) plus row * ld * 4, a
/// 32x32->64-bit multiply-add (ld * 4 < 2^32 for ld < 2^30).
template <int kRows, int kTileK, int kThreads, int kVec>
struct TileCopy {
  static constexpr int kPitch = kRows + 4;
  static constexpr int kLanes = 8 / kVec;
  static constexpr int kRowStep = kThreads / kLanes;
  static constexpr int kSectors = kTileK / 8;
  static constexpr int kRowsPerThread = kRows >= kRowStep ? kRows / kRowStep : 1;
  /// Where one pass has more row slots than the tile has rows, threads split the sectors.
  static constexpr int kSectorStep = kRows >= kRowStep ? 1 : kRowStep / kRows;
  static constexpr int kSectorsPerThread = (kSectors + kSectorStep - 1) / kSectorStep;
  static constexpr int kStaged = kVec > 1 ? kRowsPerThread* kSectorsPerThread* kVec : 1;
  static_assert(kRows % kRowStep == 0 || kRowStep % kRows == 0, "powers of two");

  float staged[kStaged];         ///< vec > 1: the next tile, in flight
  const char* next;              ///< the next tile's byte address at row 0, this thread's k
  unsigned row[kRowsPerThread];  ///< this thread's rows (clamped)
  int k_first;                   ///< k of this thread's first vector within a tile
  int store_offset;              ///< S index (in floats) of that vector's first float

  __device__ __forceinline__ TileCopy(const float* base, int rows, int row0, int tid) {
    const int r0 = (tid / kLanes) % kRows;
    const int sector0 = (tid / kLanes) / kRows;  // 0 unless kRowStep > kRows
    k_first = sector0 * 8 + (tid % kLanes) * kVec;
#pragma unroll
    for (int d = 0; d < kRowsPerThread; ++d) {
      row[d] = static_cast<unsigned>(min_int(row0 + r0 + d * kRowStep, rows - 1));
    }
    next = reinterpret_cast<const char*>(base + k_first);
    store_offset = k_first * kPitch + r0;
  }

  /// Whether this thread's sector s lies inside the tile (always, unless threads split the
  /// sectors and this thread has fewer of them).
  __device__ __forceinline__ bool has_sector(int s) const {
    return kSectorStep == 1 || k_first + s * kSectorStep * 8 < kTileK;
  }

  /// kVec == 1: copies the next tile into the stage at shared address `stage`, then moves on
  /// to the tile after it. ld_bytes = 4 * k. kCheckK: the tile may extend past k
  /// (k_left = k - its first k); `any` is a valid address for the zero-filling copies.
  template <bool kCheckK>
  __device__ __forceinline__ void issue_async(unsigned stage, unsigned ld_bytes, int k_left, const float* any) {
#pragma unroll
    for (int d = 0; d < kRowsPerThread; ++d) {
      const float* src = reinterpret_cast<const float*>(next + static_cast<unsigned long long>(row[d]) * ld_bytes);
#pragma unroll
      for (int s = 0; s < kSectorsPerThread; ++s) {
        const int k_off = s * kSectorStep * 8;  // relative to k_first
        if (!has_sector(s)) continue;
        const unsigned to = stage + static_cast<unsigned>((store_offset + k_off * kPitch + d * kRowStep) * 4);
        if (kCheckK) {
          const bool inside = k_first + k_off < k_left;
          copy_async4_zfill(to, inside ? src + k_off : any, inside ? 4 : 0);
        } else {
          copy_async4(to, src + k_off);
        }
      }
    }
    next += kTileK * 4;
  }

  /// kVec > 1: loads the next tile into `staged`, then moves on to the tile after it.
  template <bool kCheckK>
  __device__ __forceinline__ void load(unsigned ld_bytes, int k_left) {
#pragma unroll
    for (int d = 0; d < kRowsPerThread; ++d) {
      const float* src = reinterpret_cast<const float*>(next + static_cast<unsigned long long>(row[d]) * ld_bytes);
#pragma unroll
      for (int s = 0; s < kSectorsPerThread; ++s) {
        const int k_off = s * kSectorStep * 8;
        float(&v)[kVec] = *reinterpret_cast<float(*)[kVec]>(&staged[(d * kSectorsPerThread + s) * kVec]);
        if (has_sector(s) && (!kCheckK || k_first + k_off < k_left)) {
          load_vector<kVec>(v, src + k_off);
        } else {
#pragma unroll
          for (int c = 0; c < kVec; ++c) v[c] = 0.0f;
        }
      }
    }
    next += kTileK * 4;
  }

  /// kVec > 1: stores `staged` transposed into the stage S (kTileK x kPitch floats) at .shared
  /// address `stage`.
  __device__ __forceinline__ void store(unsigned stage) const {
#pragma unroll
    for (int d = 0; d < kRowsPerThread; ++d) {
#pragma unroll
      for (int s = 0; s < kSectorsPerThread; ++s) {
        if (!has_sector(s)) continue;
#pragma unroll
        for (int c = 0; c < kVec; ++c) {
          store_shared(
              stage + 4u * static_cast<unsigned>(store_offset + (s * kSectorStep * 8 + c) * kPitch + d * kRowStep),
              staged[(d * kSectorsPerThread + s) * kVec + c]);
        }
      }
    }
  }
};

}  // namespace detail

/// Computes kGroups kTileM x kTileN tiles (see kGroups) of
/// out = z + scale * sigmoid(z), z = x * w^T + bias, for args as in FusedLinearArgs (fp32).
/// Launch: kGroups * kThreads threads and the dynamic shared memory given above (16-byte
/// aligned). Below, tid is a thread's index within its group.
///
/// A group's shared memory holds kStages stages; stage s is Xs[kTileK][kTileM + 4] followed
/// by Ws[kTileK][kTileN + 4] (the x and w tiles, transposed: S[k][row]).
///
/// Pipeline, per tile t (stage t % kStages): first, the copies of a later tile go out
/// (vec = 1: tile t+kStages-1 by cp.async into the stage tile t-1 used; vec > 1: tile t+1
/// into registers). Then the k-steps of t run, each reading the fragments of the next
/// k-step while it computes (fragments are double-buffered in registers). Before the last
/// k-step, tile t+1 is made visible (vec = 1: wait for its copies; vec > 1: the registers
/// were stored into stage (t+1) % 2 over the two k-steps before) and one group barrier
/// publishes it, so the last k-step overlaps the first fragment reads of tile t+1. A stage
/// is overwritten only after the barrier of the tile following its last reader: every read
/// of it came before that barrier. After the last tile these steps still run, on a stage
/// nobody reads any more (see tile_body).
///
/// Thread layout: warp = tid / 32 sits at (warp % kWarpsM, warp / kWarpsM) in the group's
/// kWarpsM x kWarpsN grid of warp tiles; lane at (lane / kWarpN, lane % kWarpN) in the warp's
/// kWarpM x kWarpN grid. A thread's kThreadM rows are kThreadM / 4 runs of 4 consecutive
/// rows; run i starts at row warp_m * kWarpTileM + i * (4 * kWarpM) + lane_m * 4 (columns
/// likewise with n), so one float4 read per run gives its 4 rows at one k, and a warp's read
/// of run i is kWarpM consecutive float4 (shared by the lanes of equal lane_m). Output
/// columns come in runs of 4, stored as one float4 where n and out allow it.
template <int kTileM, int kTileN, int kTileK, int kThreadM, int kThreadN, int kWarpM, int kVec, int kStages,
          int kGroups, int kOrder = 0>
__device__ __forceinline__ void fused_linear(const FusedLinearArgs& args) {
  constexpr int kThreads = (kTileM / kThreadM) * (kTileN / kThreadN);  // of one group
  constexpr int kWarpN = 32 / kWarpM;
  constexpr int kWarpTileM = kWarpM * kThreadM;
  constexpr int kWarpTileN = kWarpN * kThreadN;
  constexpr int kWarpsM = kTileM / kWarpTileM;
  constexpr int kPitchX = kTileM + 4;
  constexpr int kPitchW = kTileN + 4;
  constexpr int kStageFloats = kTileK * (kPitchX + kPitchW);
  static_assert(kTileM >= 32 && (kTileM & (kTileM - 1)) == 0, "tile_m: power of two >= 32");
  static_assert(kTileN >= 32 && (kTileN & (kTileN - 1)) == 0, "tile_n: power of two >= 32");
  static_assert(kTileK == 8 || kTileK == 16 || kTileK == 32, "tile_k: 8, 16 or 32");
  static_assert(kThreadM % 4 == 0 && kThreadN % 4 == 0, "thread_m, thread_n: multiples of 4");
  static_assert(32 % kWarpM == 0, "warp_m divides 32");
  static_assert(kTileM % kWarpTileM == 0 && kTileN % kWarpTileN == 0, "warp tiles tile the group's tile");
  static_assert(kThreads % 32 == 0, "whole warps");
  static_assert(kVec == 1 || kVec == 2 || kVec == 4, "vec: 1, 2 or 4");
  static_assert(kVec == 1 ? kStages >= 2 && kStages <= 4 : kStages == 2, "stages: 2 .. 4 for vec 1, 2 for vec 2 and 4");
  static_assert(kGroups >= 1 && kGroups <= 15, "groups: 1 .. 15 (named barriers 1 .. 15)");
  static_assert(kOrder == 0 || kOrder == 1, "order: 0 (rows) or 1 (column pairs, rows serpentine)");

  const float* x = static_cast<const float*>(args.x);
  const float* w = static_cast<const float*>(args.w);
  const int m = args.m;
  const int n = args.n;
  const int k = args.k;
  const int group = kGroups == 1 ? 0 : static_cast<int>(threadIdx.x) / kThreads;
  const int tid = kGroups == 1 ? static_cast<int>(threadIdx.x) : static_cast<int>(threadIdx.x) % kThreads;
  const int tiles_m = (m + kTileM - 1) / kTileM;
  const int tile = static_cast<int>(blockIdx.x) * kGroups + group;
  if (kGroups > 1 && tile >= tiles_m * ((n + kTileN - 1) / kTileN)) return;  // whole group
  const int block_m0 = (tile % tiles_m) * kTileM;
  const int block_n0 = (tile / tiles_m) * kTileN;

  // Dynamic shared memory, declared as float4 for its 16-byte alignment; this group's part.
  extern __shared__ float4 fusetune_ffma_smem_v4[];
  float* const smem = reinterpret_cast<float*>(fusetune_ffma_smem_v4) + group * kStages * kStageFloats;
  const unsigned smem_base = detail::shared_address(smem);  // the same, as a .shared address
  // Barrier over this group's threads only.
  auto group_barrier = [&]() {
    if constexpr (kGroups == 1) {
      __syncthreads();
    } else {
      detail::group_barrier<kThreads, 0, kGroups>(group);
    }
  };

  detail::TileCopy<kTileM, kTileK, kThreads, kVec> copy_x(x, m, block_m0, tid);
  detail::TileCopy<kTileN, kTileK, kThreads, kVec> copy_w(w, n, block_n0, tid);
  const unsigned ld_bytes = static_cast<unsigned>(k) * 4u;  // row pitch of x and w
  const int num_tiles = (k + kTileK - 1) / kTileK;
  const bool k_tail = k % kTileK != 0;  // the last tile extends past k

  // vec = 1: issues the cp.async copies of tile t (in order, once each) into stage s.
  auto issue_tile = [&](int t, int s) {
    const unsigned stage = smem_base + static_cast<unsigned>(s * kStageFloats * 4);
    const unsigned stage_w = stage + static_cast<unsigned>(kTileK * kPitchX * 4);
    if (k_tail && t == num_tiles - 1) {
      copy_x.template issue_async<true>(stage, ld_bytes, k - t * kTileK, x);
      copy_w.template issue_async<true>(stage_w, ld_bytes, k - t * kTileK, w);
    } else {
      copy_x.template issue_async<false>(stage, ld_bytes, 0, x);
      copy_w.template issue_async<false>(stage_w, ld_bytes, 0, w);
    }
  };
  // vec > 1: loads tile t (in order, once each) into registers; stores them into stage s.
  auto load_tile = [&](int t) {
    if (k_tail && t == num_tiles - 1) {
      copy_x.template load<true>(ld_bytes, k - t * kTileK);
      copy_w.template load<true>(ld_bytes, k - t * kTileK);
    } else {
      copy_x.template load<false>(ld_bytes, 0);
      copy_w.template load<false>(ld_bytes, 0);
    }
  };

  // This thread's first fragment column in Xs and in Ws (see the layout above).
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int frag_m = (warp % kWarpsM) * kWarpTileM + (lane / kWarpN) * 4;
  const int frag_n = (warp / kWarpsM) * kWarpTileN + (lane % kWarpN) * 4;

  // Fragments of k-step kk of stage s: a[kThreadM] from Xs, b[kThreadN] from Ws.
  auto load_fragments = [&](float(&a)[kThreadM], float(&b)[kThreadN], int s, int kk) {
    const unsigned xs = smem_base + 4u * static_cast<unsigned>(s * kStageFloats + kk * kPitchX + frag_m);
    const unsigned ws =
        smem_base + 4u * static_cast<unsigned>(s * kStageFloats + kTileK * kPitchX + kk * kPitchW + frag_n);
#pragma unroll
    for (int i = 0; i < kThreadM / 4; ++i) {
      const float4 v = detail::load_shared4(xs + 16u * (i * kWarpM));
      a[4 * i + 0] = v.x;
      a[4 * i + 1] = v.y;
      a[4 * i + 2] = v.z;
      a[4 * i + 3] = v.w;
    }
#pragma unroll
    for (int j = 0; j < kThreadN / 4; ++j) {
      const float4 v = detail::load_shared4(ws + 16u * (j * kWarpN));
      b[4 * j + 0] = v.x;
      b[4 * j + 1] = v.y;
      b[4 * j + 2] = v.z;
      b[4 * j + 3] = v.w;
    }
  };

  float acc[kThreadM][kThreadN];
#pragma unroll
  for (int i = 0; i < kThreadM; ++i) {
#pragma unroll
    for (int j = 0; j < kThreadN; ++j) acc[i][j] = 0.0f;
  }
  float a[2][kThreadM];
  float b[2][kThreadN];

  // Prologue: tile 0 (and, for vec = 1, tiles 1 .. kStages-2) on its way; tile 0 visible.
  if constexpr (kVec == 1) {
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < num_tiles) issue_tile(s, s);
      detail::copy_async_commit();  // one group per tile slot, empty past the end
    }
    detail::copy_async_wait<kStages - 2>();
  } else {
    load_tile(0);
    copy_x.store(smem_base);
    copy_w.store(smem_base + kTileK * kPitchX * 4);
  }
  group_barrier();
  load_fragments(a[0], b[0], 0, 0);

  int stage = 0;  // tile t's stage
  // One tile's k-steps. Only the copies of later tiles test whether those tiles exist. What
  // runs inside the k-steps (vec > 1: the stores of the staged tile; the barrier; the next
  // tile's first fragments) also runs after the last tile, on stale registers and a stage that
  // nobody reads any more, so that the k-steps are one branch-free block for ptxas to schedule.
  // H100, 1024x8192x8192, the tuner's finals (bench/RESULTS.md, session 14): the best vec 4
  // config ran 3.4% faster than with those steps tested at run time, the best vec 1 config
  // 1.8% faster than with the last tile peeled off, the earlier way to the same block.
  auto tile_body = [&](const int t) {
    const int next_stage = stage + 1 == kStages ? 0 : stage + 1;
    if constexpr (kVec == 1) {
      // Tile t+kStages-1 goes to the stage of tile t-1, whose reads all preceded the barrier
      // of iteration t-1. Groups committed after this: kStages + t, tile t+1 being the
      // (t+2)-th, hence the wait for all but kStages-2 below.
      if (t + kStages - 1 < num_tiles) {
        issue_tile(t + kStages - 1, stage == 0 ? kStages - 1 : stage - 1);
      }
      detail::copy_async_commit();
    } else {
      if (t + 1 < num_tiles) load_tile(t + 1);
    }
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      // vec > 1: the staged tile t+1 goes to its stage in two halves, two and one k-steps
      // before the barrier, so that its stores do not all queue up with the fragment reads
      // right after the barrier (the loads had kTileK - 3 k-steps to arrive).
      if constexpr (kVec > 1) {
        if (kk == kTileK - 3) copy_x.store(smem_base + next_stage * kStageFloats * 4);
        if (kk == kTileK - 2) copy_w.store(smem_base + (next_stage * kStageFloats + kTileK * kPitchX) * 4);
      }
      if (kk == kTileK - 1) {
        if constexpr (kVec == 1) detail::copy_async_wait<kStages - 2>();
        group_barrier();
      }
      // Fragments for the next k-step: this tile's kk + 1, or the next tile's first.
      if (kk + 1 < kTileK) {
        load_fragments(a[(kk + 1) % 2], b[(kk + 1) % 2], stage, kk + 1);
      } else {
        load_fragments(a[(kk + 1) % 2], b[(kk + 1) % 2], next_stage, 0);
      }
      const float(&a_k)[kThreadM] = a[kk % 2];
      const float(&b_k)[kThreadN] = b[kk % 2];
      if constexpr (kOrder == 0) {
#pragma unroll
        for (int i = 0; i < kThreadM; ++i) {
#pragma unroll
          for (int j = 0; j < kThreadN; ++j) acc[i][j] = fmaf(a_k[i], b_k[j], acc[i][j]);
        }
      } else {
#pragma unroll
        for (int j = 0; j < kThreadN; j += 2) {
#pragma unroll
          for (int step = 0; step < kThreadM; ++step) {
            const int i = (j / 2) % 2 == 0 ? step : kThreadM - 1 - step;  // serpentine
            acc[i][j] = fmaf(a_k[i], b_k[j], acc[i][j]);
            acc[i][j + 1] = fmaf(a_k[i], b_k[j + 1], acc[i][j + 1]);
          }
        }
      }
    }
    stage = next_stage;
  };
  for (int t = 0; t < num_tiles; ++t) tile_body(t);

  // Epilogue: z = acc + bias, out = z + scale * sigmoid(z), straight from registers.
  // Thread element (i, j) is out[row0 + (i / 4) * 4 * kWarpM + i % 4][col0 + (j / 4) * 4 *
  // kWarpN + j % 4]. Rows and columns past m, n are computed but not stored.
  const float* bias = static_cast<const float*>(args.bias);
  float* out = static_cast<float*>(args.out);
  const float scale = args.scale;
  const int row0 = block_m0 + frag_m;
  const int col0 = block_n0 + frag_n;
  // float4 stores need n % 4 == 0 (every row starts 16-byte aligned) and an aligned out;
  // col0 is a multiple of 4, so a run of 4 columns is then wholly inside n or outside it.
  const bool vector_store = n % 4 == 0 && (reinterpret_cast<unsigned long long>(out) & 15ull) == 0;

  float bias_frag[kThreadN];
#pragma unroll
  for (int j = 0; j < kThreadN; ++j) {
    const int col = col0 + (j / 4) * 4 * kWarpN + j % 4;
    bias_frag[j] = (bias != nullptr && col < n) ? __ldg(bias + col) : 0.0f;
  }

#pragma unroll
  for (int i = 0; i < kThreadM; ++i) {
    const int row = row0 + (i / 4) * 4 * kWarpM + i % 4;
    if (row >= m) continue;
    float* out_row = out + static_cast<long long>(row) * n;
#pragma unroll
    for (int j4 = 0; j4 < kThreadN / 4; ++j4) {
      const int col = col0 + j4 * 4 * kWarpN;
      float v[4];
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        v[jj] = fused_epilogue(acc[i][4 * j4 + jj], bias_frag[4 * j4 + jj], scale);
      }
      if (vector_store) {
        if (col < n) {
          float4 v4;
          v4.x = v[0];
          v4.y = v[1];
          v4.z = v[2];
          v4.w = v[3];
          *reinterpret_cast<float4*>(out_row + col) = v4;
        }
      } else {
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) {
          if (col + jj < n) out_row[col + jj] = v[jj];
        }
      }
    }
  }
}

}  // namespace ffma
}  // namespace fusetune
