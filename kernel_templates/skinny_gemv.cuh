// The small-M family: out = z + s * sigmoid(z), z = x * w^T + b, for x with few rows, in fp32
// (skinny_fp32, policy highest) and in bf16 / fp16 (skinny_bf16 / skinny_fp16, policy half).
// (Measured on the H100 at n = k = 8192, fp32: 0.85x cuBLAS SGEMM + epilogue at m = 1, but
// slower than 3xTF32 from m = 16: there x, staged again for every 16 columns, costs as much
// traffic as w. Splitting k across the warps of a block would fix that; not done yet. bf16:
// 0.99x cuBLAS bf16 at m = 1 (cuBLAS's GEMV is already near the memory bandwidth), but 1.28x
// at m = 8 and 2.5x at m = 16, where every w element reads m staged x values from shared
// memory and that traffic, not w's, sets the time; the tensor-core family (1.08x) wins there.
// Keeping x in registers would fix that; not done yet.)
//
// With m of 1 to 64 the GEMM is no longer compute-bound: every element of w is used m times,
// so the time is that of streaming w (n * k elements) from memory once. The tiled FFMA and
// tensor-core families are built for reuse; at m = 1 they leave most of the memory bandwidth
// unused (and 3xTF32 reads w twice, big and small halves). This family is a batched GEMV:
// - a block of kWarps warps owns kWarps * kCols consecutive rows of w (output columns), and
//   kRows rows of x (blockIdx.y picks which; m > kRows takes more blocks along y, each
//   streaming w again, which is why the search spaces keep m <= rows);
// - the block stages kChunk elements of k of its x rows in shared memory, as fp32 whatever the
//   element type (16-bit x is widened once there, not at every use); each lane then reads kVec
//   consecutive elements of each of its warp's kCols w rows per step, so a warp reads 32 * kVec
//   consecutive elements of a row per load (coalesced), widens 16-bit ones to fp32 and
//   multiplies them with every staged x row by fp32 FFMA (exact products for fp32, as policy
//   highest asks; a product of two widened bf16 or fp16 elements is exact as well);
// - the lanes' partial sums are added by a butterfly of shuffles, and one lane per output
//   applies the exact epilogue (fused_epilogue.cuh) in fp32 and stores, rounding once to the
//   output type.
// Every m, n, k >= 1 is handled (bounds-checked loads, zero padding); 16-byte loads (kVec > 1)
// need k % kVec == 0 and 16-byte aligned x and w, which the search spaces and the runtime check.
//
// Shared memory: x_stage[kRows][kChunk] fp32. With kVec <= 4 a row keeps element c at c. With
// kVec = 8 (16-bit) a lane's 8 elements are two float4s, and kept in order lanes 32 bytes apart
// would share banks (2-way conflicts in every 8-lane phase of a 16-byte load); so each group of
// 256 elements keeps the lanes' first halves in its first 128 floats and their second halves
// in the last 128 (staged_index), and both of a lane's loads are contiguous across the warp.
//
// Template parameters, in the order of search_spaces/skinny_*.json "template_args":
// kOperand: the element type of x, w, bias and out, a constant of the search space:
// kElementFp32 (below), kOperandBf16 or kOperandFp16 (hopper_args.cuh). kRows (rows): rows of
// x per block; kCols (cols): rows of w per warp; kWarps (warps): warps per block; kVec (vec):
// elements per lane per load, 1 or 16 bytes' worth (4 fp32, 8 bf16 or fp16); kChunk (chunk):
// elements of k staged per round. Derived: threads = 32 * kWarps; dynamic shared memory
// 4 * kRows * kChunk bytes; grid = (ceil(n / (kWarps * kCols)), ceil(m / kRows), 1).
#pragma once

#include "fused_epilogue.cuh"
#include "fused_linear_args.cuh"
#include "hopper_args.cuh"
#include "simt_fallback.cuh"

namespace fusetune {

/// kOperand of skinny_fp32: x, w, bias and out fp32, exact FFMA products. hopper_args.cuh's
/// OperandKind has no plain fp32 kind (kOperandTf32 means TF32 products); negative, so that no
/// OperandKind, numbered from 0, can take its value. Declared here, not in
/// fused_linear_args.cuh: every family includes that, and an edit there would change every
/// family's template hash, setting aside all of their measured trials.
constexpr int kElementFp32 = -1;

namespace skinny {

template <int kOperand>
constexpr int kElementBytes = kOperand == kElementFp32 ? 4 : 2;

// ---- element access: 16-bit elements as raw bits, widened and rounded by the SIMT
// fallback's conversions, so that the two families of a dtype convert alike ----

/// Element `index` of a tensor of kOperand's type, widened exactly to fp32.
template <int kOperand>
__device__ __forceinline__ float load_element(const void* base, long long index) {
  if constexpr (kOperand == kElementFp32)
    return static_cast<const float*>(base)[index];
  else
    return simt::detail::load_element<kOperand>(static_cast<const unsigned short*>(base), index);
}

/// Stores `value` at out[index], rounded once to kOperand's type (to nearest even).
template <int kOperand>
__device__ __forceinline__ void store_element(void* base, long long index, float value) {
  if constexpr (kOperand == kElementFp32)
    static_cast<float*>(base)[index] = value;
  else
    static_cast<unsigned short*>(base)[index] = simt::detail::to_element<kOperand>(value);
}

/// The 8 16-bit elements of a 16-byte load, widened exactly to fp32 (the lower half of each
/// word is the element at the lower address).
template <int kOperand>
__device__ __forceinline__ void widen_vector(const uint4& bits, float (&values)[8]) {
  const unsigned words[4] = {bits.x, bits.y, bits.z, bits.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (kOperand == kOperandBf16) {  // a bf16 is the upper half of an fp32
      values[2 * i] = __uint_as_float(words[i] << 16);
      values[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    } else {
      asm("cvt.f32.f16 %0, %1;" : "=f"(values[2 * i]) : "h"(static_cast<unsigned short>(words[i] & 0xffffu)));
      asm("cvt.f32.f16 %0, %1;" : "=f"(values[2 * i + 1]) : "h"(static_cast<unsigned short>(words[i] >> 16)));
    }
  }
}

/// Where element c of a staged x row is kept (see "Shared memory" above): c itself with
/// kVec <= 4; with kVec = 8, c = 256 g + 8 l + e (lane l's element e) is kept at
/// 256 g + 128 (e / 4) + 4 l + e % 4.
template <int kVec>
__device__ __forceinline__ int staged_index(int c) {
  if constexpr (kVec <= 4) {
    return c;
  } else {
    const int group = c / 256 * 256, lane = c / 8 % 32, e = c % 8;
    return group + 128 * (e / 4) + 4 * lane + e % 4;
  }
}

/// kVec consecutive elements of w from `offset` on, widened to fp32; zeros where !valid (a
/// row of w past n). kVec > 1: one 16-byte load.
template <int kOperand, int kVec>
__device__ __forceinline__ void load_w(const void* w, long long offset, bool valid, float (&values)[kVec]) {
  if constexpr (kVec == 1) {
    values[0] = valid ? load_element<kOperand>(w, offset) : 0.0f;
  } else if constexpr (kOperand == kElementFp32) {
    const float4 v =
        valid ? *reinterpret_cast<const float4*>(static_cast<const float*>(w) + offset) : make_float4(0, 0, 0, 0);
    values[0] = v.x, values[1] = v.y, values[2] = v.z, values[3] = v.w;
  } else {
    const uint4 v = valid ? *reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(w) + offset)
                          : make_uint4(0, 0, 0, 0);
    widen_vector<kOperand>(v, values);
  }
}

/// The kVec staged elements of x row r that a lane multiplies with its w elements at c.
template <int kVec, int kChunk>
__device__ __forceinline__ void load_staged(const float* x_stage, int r, int c, float (&values)[kVec]) {
  const float* row = x_stage + r * kChunk;
  if constexpr (kVec == 1) {
    values[0] = row[c];
  } else {
#pragma unroll
    for (int half = 0; half < kVec / 4; ++half) {
      const float4 v = *reinterpret_cast<const float4*>(&row[staged_index<kVec>(c + 4 * half)]);
      values[4 * half] = v.x, values[4 * half + 1] = v.y, values[4 * half + 2] = v.z, values[4 * half + 3] = v.w;
    }
  }
}

/// Stages elements [k0, k0 + kChunk) of x rows row0 .. row0 + kRows - 1 as fp32, zeros past m
/// and k. 16-bit x with kVec = 8 takes 16-byte loads (k % 8 == 0: 8 elements from a multiple
/// of 8 lie all inside k or all past it), each written as the two float4s staged_index keeps
/// apart; otherwise one element per thread and step.
template <int kOperand, int kRows, int kVec, int kChunk, int kThreads>
__device__ __forceinline__ void stage_x(const FusedLinearArgs& args, int row0, int k0, float* x_stage) {
  const int m = args.m, k = args.k;
  if constexpr (kVec == 8) {
    constexpr int kGroups = kChunk / 8;  // 8-element groups per staged row
    for (int index = threadIdx.x; index < kRows * kGroups; index += kThreads) {
      const int r = index / kGroups, c = index % kGroups * 8;
      const int row = row0 + r, kk = k0 + c;
      float values[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (row < m && kk < k)
        widen_vector<kOperand>(*reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(args.x) +
                                                               static_cast<long long>(row) * k + kk),
                               values);
      float* staged = x_stage + r * kChunk;
      *reinterpret_cast<float4*>(&staged[staged_index<kVec>(c)]) =
          make_float4(values[0], values[1], values[2], values[3]);
      *reinterpret_cast<float4*>(&staged[staged_index<kVec>(c + 4)]) =
          make_float4(values[4], values[5], values[6], values[7]);
    }
  } else {
    for (int index = threadIdx.x; index < kRows * kChunk; index += kThreads) {
      const int r = index / kChunk, c = index % kChunk;
      const int row = row0 + r, kk = k0 + c;
      x_stage[index] = row < m && kk < k ? load_element<kOperand>(args.x, static_cast<long long>(row) * k + kk) : 0.0f;
    }
  }
}

template <int kOperand, int kRows, int kCols, int kWarps, int kVec, int kChunk>
__device__ __forceinline__ void fused_linear(const FusedLinearArgs& args) {
  static_assert(kOperand == kElementFp32 || kOperand == kOperandBf16 || kOperand == kOperandFp16,
                "the skinny family serves fp32, bf16 and fp16");
  static_assert(kVec == 1 || kVec * kElementBytes<kOperand> == 16, "lanes load 1 element or 16 bytes");
  static_assert(kChunk % (32 * kVec) == 0, "a staged chunk is whole warp-wide loads");
  constexpr int kThreads = 32 * kWarps;
  extern __shared__ float x_stage[];  // [kRows][kChunk], fp32; see staged_index

  const int m = args.m, n = args.n, k = args.k;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int col0 = (blockIdx.x * kWarps + warp) * kCols;  // first w row (output column) of this warp
  const int row0 = blockIdx.y * kRows;                    // first x row of this block

  float acc[kRows][kCols];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int j = 0; j < kCols; ++j) acc[r][j] = 0.0f;

  for (int k0 = 0; k0 < k; k0 += kChunk) {
    __syncthreads();  // every warp is done with the previous chunk
    stage_x<kOperand, kRows, kVec, kChunk, kThreads>(args, row0, k0, x_stage);
    __syncthreads();
    const int chunk_end = min(kChunk, k - k0);
#pragma unroll 2
    for (int c = lane * kVec; c < chunk_end; c += 32 * kVec) {
      // With kVec > 1, k % kVec == 0 makes chunk_end a multiple of kVec: c + kVec - 1 < chunk_end.
      float w_values[kCols][kVec];
#pragma unroll
      for (int j = 0; j < kCols; ++j)
        load_w<kOperand, kVec>(args.w, static_cast<long long>(col0 + j) * k + k0 + c, col0 + j < n, w_values[j]);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float x_values[kVec];
        load_staged<kVec, kChunk>(x_stage, r, c, x_values);
#pragma unroll
        for (int j = 0; j < kCols; ++j)
#pragma unroll
          for (int v = 0; v < kVec; ++v) acc[r][j] = fmaf(x_values[v], w_values[j][v], acc[r][j]);
      }
    }
  }

  // Butterfly: every lane ends with the warp's full sums; lane (r * kCols + j) % 32 stores (r, j).
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int j = 0; j < kCols; ++j) {
      float sum = acc[r][j];
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      const int row = row0 + r, col = col0 + j;
      if (lane == (r * kCols + j) % 32 && row < m && col < n) {
        const float bias = args.bias ? load_element<kOperand>(args.bias, col) : 0.0f;
        store_element<kOperand>(args.out, static_cast<long long>(row) * n + col, fused_epilogue(sum, bias, args.scale));
      }
    }
}

}  // namespace skinny
}  // namespace fusetune
