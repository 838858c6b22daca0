// FFMA family: exact-fp32 SIMT GEMM (FFMA, no tensor cores) with the fused epilogue,
// out = z + s * sigmoid(z), z = x * w^T + b. The exact family and the fallback for any GPU:
// every config is correct for every m, n, k >= 1, with no alignment need beyond 4-byte floats.
// A generated source instantiates fusetune::ffma::fused_linear<knobs...> inside its kernel.
#pragma once

#include "fused_epilogue.cuh"
#include "fused_linear_args.cuh"

namespace fusetune {
namespace ffma {

// -------------------------------------------------------------------------------------------
// Knobs: the template parameters of fused_linear, in this order (search_spaces/ffma.json,
// "template_args"). Every value is a power of two; the static_asserts in fused_linear repeat
// each constraint.
//
// kTileM, kTileN (tile_m, tile_n): rows and columns of out computed by one block. Bigger
//   tiles read x and w from L2 fewer times (bytes per FFMA ~ 1/kTileM + 1/kTileN); smaller
//   ones give small shapes more blocks. Multiples of 32: the shared-memory pitch kTile + 4
//   is then 4 mod 32 words, which makes the copies below bank-conflict free.
// kTileK (tile_k): depth along k of one shared-memory stage. A multiple of 8: in the copy,
//   8 lanes read one 32-byte sector of one row. Deeper stages amortise the per-stage barrier
//   and pointer updates over more FFMA, at the cost of shared memory.
// kThreadM, kThreadN (thread_m, thread_n): accumulators per thread along m and n (register
//   blocking). Each k-step a thread reads kThreadM/4 + kThreadN/4 float4 fragments from shared
//   memory and issues kThreadM * kThreadN FFMA, so bigger is denser, until registers run out
//   (kThreadM * kThreadN accumulators plus 2 * (kThreadM + kThreadN) fragment registers).
//   Multiples of 4, since fragments are read as float4. The block has
//   (kTileM / kThreadM) * (kTileN / kThreadN) threads, a multiple of 32.
// kWarpM (warp_m): threads of a warp along m; 32 / kWarpM are along n. A warp covers
//   (kWarpM * kThreadM) x (32 / kWarpM * kThreadN) of out, which must tile the block tile.
//   One warp-wide float4 fragment read touches kWarpM distinct float4 of x (32 / kWarpM of
//   w); up to 8 (128 bytes) take one shared-memory wavefront, more take several.
// kStages (stages): shared-memory pipeline depth, >= 2. While tile t is computed, the copies
//   of tiles t+1 .. t+kStages-1 are in flight (cp.async); 2 is double buffering.
//
// Threads = (kTileM / kThreadM) * (kTileN / kThreadN);
// dynamic shared memory = 4 * kStages * kTileK * (kTileM + 4 + kTileN + 4) bytes;
// grid = (ceil(m / kTileM), ceil(n / kTileN), 1): blockIdx.x walks m fastest, so the blocks
// running together share the same few w tiles (w, n x k, is the large operand here) in L2.
// -------------------------------------------------------------------------------------------

namespace detail {

__device__ __forceinline__ int min_int(int a, int b) { return a < b ? a : b; }

/// Address of a shared-memory object in the .shared window, as cp.async takes it.
__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

/// 4-byte asynchronous copy global -> shared (sm_80+). 4-byte copies exist only in the
/// L1-allocating .ca form; the 8 lanes that share a sector hit the same L1 line.
__device__ __forceinline__ void copy_async4(unsigned dst, const float* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}

/// As copy_async4, but copies only src_bytes (0 or 4) and zero-fills the rest.
__device__ __forceinline__ void copy_async4_zfill(unsigned dst, const float* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes));
}

__device__ __forceinline__ void copy_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/// Waits until at most kPending of this thread's committed copy groups are still in flight.
template <int kPending>
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

/// Copies kRows x kTileK tiles of a K-major operand (rows of x, or rows of w) from global
/// memory into shared memory TRANSPOSED, as S[k][row] with a pitch of kRows + 4 floats, so
/// that the compute loop reads 4 consecutive rows at one k as one float4.
///
/// Element e = tid + i * kThreads of a tile is (row, k) with k = 8 * kc + e % 8,
/// row = (e / 8) % kRows, kc = (e / 8) / kRows. So 8 consecutive lanes read one 32-byte
/// sector of one row (a warp: 4 full sectors of 4 rows) and write words
/// k * (kRows + 4) + row, whose banks 4 * (e % 8) + row (mod 32) are all distinct in a warp.
/// A thread's elements form kRowsPerThread rows, kRowStep = kThreads / 8 apart, times
/// kChunksPerThread 8-float chunks along k.
///
/// Rows past the operand's end are clamped to its last row: they only feed rows or columns of
/// out that are never stored, and clamping keeps every address valid without a predicate.
/// Columns k past the end (the last, partial tile) are zero-filled, adding nothing to a sum.
/// Addresses: a byte pointer to the next tile (at this thread's first k) plus row * ld * 4,
/// one 32x32->64-bit multiply-add per row and tile (ld * 4 < 2^32 for ld < 2^30).
template <int kRows, int kTileK, int kThreads>
struct TileCopy {
  static constexpr int kPitch = kRows + 4;
  static constexpr int kRowStep = kThreads / 8;
  static constexpr int kRowsPerThread = kRows >= kRowStep ? kRows / kRowStep : 1;
  static constexpr int kChunks = kTileK / 8;
  /// Where threads outnumber rows (kRows < kRowStep), threads split the chunks instead.
  static constexpr int kChunkStep = kRows >= kRowStep ? 1 : kRowStep / kRows;
  static constexpr int kChunksPerThread = (kChunks + kChunkStep - 1) / kChunkStep;
  static_assert(kThreads % 32 == 0, "whole warps");
  static_assert(kRows % kRowStep == 0 || kRowStep % kRows == 0, "powers of two");

  const char* next;                  ///< the next tile's byte address at row 0, k = k_first
  unsigned row[kRowsPerThread];      ///< this thread's rows (clamped)
  unsigned dst;                      ///< byte offset of this thread's first element in S
  int k_first;                       ///< k of this thread's first element within a tile

  __device__ __forceinline__ TileCopy(const float* base, int rows, int row0, int tid) {
    const int r0 = (tid / 8) % kRows;
    const int kc0 = (tid / 8) / kRows;  // 0 unless threads outnumber rows
    k_first = kc0 * 8 + tid % 8;
#pragma unroll
    for (int d = 0; d < kRowsPerThread; ++d) {
      row[d] = static_cast<unsigned>(min_int(row0 + r0 + d * kRowStep, rows - 1));
    }
    next = reinterpret_cast<const char*>(base + k_first);
    dst = static_cast<unsigned>((k_first * kPitch + r0) * 4);
  }

  /// Issues the copies of the next tile into the stage at shared address `stage`, then moves
  /// on to the tile after it. ld_bytes = 4 * k. kCheckK: the tile may extend past k
  /// (k_left = k - its first k); `any` is a valid address for the zero-filling copies.
  template <bool kCheckK>
  __device__ __forceinline__ void issue(unsigned stage, unsigned ld_bytes, int k_left,
                                        const float* any) {
#pragma unroll
    for (int d = 0; d < kRowsPerThread; ++d) {
      const float* src = reinterpret_cast<const float*>(
          next + static_cast<unsigned long long>(row[d]) * ld_bytes);
#pragma unroll
      for (int c = 0; c < kChunksPerThread; ++c) {
        const int k_off = c * kChunkStep * 8;  // relative to k_first
        if (kChunkStep > 1 && k_first + k_off >= kTileK) continue;  // chunk past the tile
        const unsigned to = stage + dst + static_cast<unsigned>((k_off * kPitch + d * kRowStep) * 4);
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
};

}  // namespace detail

/// Computes the kTileM x kTileN tile (blockIdx.x, blockIdx.y) of
/// out = z + scale * sigmoid(z), z = x * w^T + bias, for args as in FusedLinearArgs (fp32).
/// Launch: kThreads threads, the dynamic shared memory given above (16-byte aligned).
///
/// Shared memory holds kStages stages; stage s is Xs[kTileK][kTileM + 4] followed by
/// Ws[kTileK][kTileN + 4] (x and w tiles, transposed: S[k][row]).
///
/// Thread layout: warp = tid / 32 sits at (warp % kWarpsM, warp / kWarpsM) in the block's
/// kWarpsM x kWarpsN grid of warp tiles; lane sits at (lane / kWarpN, lane % kWarpN) in the
/// warp's kWarpM x kWarpN grid. A thread's kThreadM rows are kThreadM / 4 groups of 4
/// consecutive rows; group i starts at row
///   warp_m * kWarpTileM + i * (4 * kWarpM) + lane_m * 4
/// (columns likewise with n), so one float4 read per group gives its 4 rows at one k, and
/// a warp's reads of group i are kWarpM consecutive float4 (broadcast among the lanes that
/// share lane_m). Output columns come in 4 consecutive ones, stored as one float4 where n and
/// out allow it.
template <int kTileM, int kTileN, int kTileK, int kThreadM, int kThreadN, int kWarpM,
          int kStages>
__device__ __forceinline__ void fused_linear(const FusedLinearArgs& args) {
  constexpr int kThreads = (kTileM / kThreadM) * (kTileN / kThreadN);
  constexpr int kWarpN = 32 / kWarpM;
  constexpr int kWarpTileM = kWarpM * kThreadM;
  constexpr int kWarpTileN = kWarpN * kThreadN;
  constexpr int kWarpsM = kTileM / kWarpTileM;
  static_assert(kTileM % 32 == 0 && kTileN % 32 == 0, "tile_m, tile_n: multiples of 32");
  static_assert(kTileK % 8 == 0, "tile_k: a multiple of 8");
  static_assert(kThreadM % 4 == 0 && kThreadN % 4 == 0, "thread_m, thread_n: multiples of 4");
  static_assert(32 % kWarpM == 0, "warp_m divides 32");
  static_assert(kTileM % kWarpTileM == 0 && kTileN % kWarpTileN == 0,
                "warp tiles tile the block tile");
  static_assert(kThreads % 32 == 0, "whole warps");
  static_assert(kStages >= 2, "at least double buffering");

  constexpr int kPitchX = kTileM + 4;
  constexpr int kPitchW = kTileN + 4;
  constexpr int kStageFloats = kTileK * (kPitchX + kPitchW);

  // Dynamic shared memory, declared as float4 for its 16-byte alignment.
  extern __shared__ float4 fusetune_ffma_smem_v4[];
  float* const fusetune_ffma_smem = reinterpret_cast<float*>(fusetune_ffma_smem_v4);

  const float* x = static_cast<const float*>(args.x);
  const float* w = static_cast<const float*>(args.w);
  const int m = args.m;
  const int n = args.n;
  const int k = args.k;
  const int tid = static_cast<int>(threadIdx.x);
  const int block_m0 = static_cast<int>(blockIdx.x) * kTileM;
  const int block_n0 = static_cast<int>(blockIdx.y) * kTileN;

  detail::TileCopy<kTileM, kTileK, kThreads> copy_x(x, m, block_m0, tid);
  detail::TileCopy<kTileN, kTileK, kThreads> copy_w(w, n, block_n0, tid);
  const unsigned smem = detail::shared_address(fusetune_ffma_smem);
  constexpr unsigned kStageBytes = kStageFloats * 4;
  constexpr unsigned kWsBytes = kTileK * kPitchX * 4;  // Ws follows Xs within a stage

  const int num_tiles = (k + kTileK - 1) / kTileK;
  const bool k_tail = k % kTileK != 0;  // the last tile extends past k
  const unsigned ld_bytes = static_cast<unsigned>(k) * 4u;  // row pitch of x and w
  // Issues tile t (tiles are issued in order, once each) into stage s.
  auto issue_tile = [&](int t, int s) {
    const unsigned stage = smem + static_cast<unsigned>(s) * kStageBytes;
    if (k_tail && t == num_tiles - 1) {
      copy_x.template issue<true>(stage, ld_bytes, k - t * kTileK, x);
      copy_w.template issue<true>(stage + kWsBytes, ld_bytes, k - t * kTileK, w);
    } else {
      copy_x.template issue<false>(stage, ld_bytes, 0, x);
      copy_w.template issue<false>(stage + kWsBytes, ld_bytes, 0, w);
    }
  };

  // Fragment origins of this thread within a stage (see the layout above).
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int frag_m = (warp % kWarpsM) * kWarpTileM + (lane / kWarpN) * 4;
  const int frag_n = (warp / kWarpsM) * kWarpTileN + (lane % kWarpN) * 4;

  float acc[kThreadM][kThreadN];
#pragma unroll
  for (int i = 0; i < kThreadM; ++i) {
#pragma unroll
    for (int j = 0; j < kThreadN; ++j) acc[i][j] = 0.0f;
  }

  // Pipeline: stages hold tiles t .. t+kStages-2 at the top of iteration t. One commit per
  // tile slot (empty past the end) keeps "tile t landed" == "at most kStages-2 groups pending".
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < num_tiles) issue_tile(s, s);
    detail::copy_async_commit();
  }

  int read_stage = 0;
  int write_stage = kStages - 1;
  for (int t = 0; t < num_tiles; ++t) {
    detail::copy_async_wait<kStages - 2>();  // this thread's copies of tile t landed
    __syncthreads();  // everyone's landed; everyone is done reading tile t-1's stage
    if (t + kStages - 1 < num_tiles) issue_tile(t + kStages - 1, write_stage);  // into t-1's
    detail::copy_async_commit();

    const float* xs = fusetune_ffma_smem + read_stage * kStageFloats + frag_m;
    const float* ws = fusetune_ffma_smem + read_stage * kStageFloats + kTileK * kPitchX + frag_n;
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[kThreadM];
      float b[kThreadN];
#pragma unroll
      for (int i = 0; i < kThreadM / 4; ++i) {
        const float4 v = *reinterpret_cast<const float4*>(xs + kk * kPitchX + i * 4 * kWarpM);
        a[4 * i + 0] = v.x;
        a[4 * i + 1] = v.y;
        a[4 * i + 2] = v.z;
        a[4 * i + 3] = v.w;
      }
#pragma unroll
      for (int j = 0; j < kThreadN / 4; ++j) {
        const float4 v = *reinterpret_cast<const float4*>(ws + kk * kPitchW + j * 4 * kWarpN);
        b[4 * j + 0] = v.x;
        b[4 * j + 1] = v.y;
        b[4 * j + 2] = v.z;
        b[4 * j + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < kThreadM; ++i) {
#pragma unroll
        for (int j = 0; j < kThreadN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
    }
    read_stage = read_stage + 1 == kStages ? 0 : read_stage + 1;
    write_stage = write_stage + 1 == kStages ? 0 : write_stage + 1;
  }

  // Epilogue: z = acc + bias, out = z + scale * sigmoid(z), straight from registers.
  // Thread element (i, j) is out[row0 + (i / 4) * 4 * kWarpM + i % 4][col0 + (j / 4) * 4 *
  // kWarpN + j % 4]. Rows and columns past m, n are computed but not stored.
  const float* bias = static_cast<const float*>(args.bias);
  float* out = static_cast<float*>(args.out);
  const float scale = args.scale;
  const int row0 = block_m0 + frag_m;
  const int col0 = block_n0 + frag_n;
  // float4 stores need n % 4 == 0 (every row starts 16-byte aligned) and an aligned out;
  // col0 is a multiple of 4, so a group of 4 columns is then wholly inside n or outside it.
  const bool vector_store =
      n % 4 == 0 && (reinterpret_cast<unsigned long long>(out) & 15ull) == 0;

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
