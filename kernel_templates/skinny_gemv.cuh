// The small-M fp32 family: out = z + s * sigmoid(z), z = x * w^T + b, for x with few rows.
// (Measured on the H100 at n = k = 8192: 0.85x cuBLAS SGEMM + epilogue at m = 1, but slower
// than 3xTF32 from m = 16: there x, staged again for every 16 columns, costs as much traffic
// as w. Splitting k across the warps of a block would fix that; not done yet.)
//
// With m of 1 to 64 the GEMM is no longer compute-bound: every element of w is used m times,
// so the time is that of streaming w (n * k * 4 bytes) from memory once. The tiled FFMA and
// tensor-core families are built for reuse; at m = 1 they leave most of the memory bandwidth
// unused (and 3xTF32 reads w twice, big and small halves). This family is a batched GEMV:
// - a block of kWarps warps owns kWarps * kCols consecutive rows of w (output columns), and
//   kRows rows of x (blockIdx.y picks which; m > kRows takes more blocks along y, each
//   streaming w again, which is why the search space keeps m <= rows);
// - the block stages kChunk elements of k of its x rows in shared memory; each lane then
//   reads kVec consecutive elements of each of its warp's kCols w rows per step, so a warp
//   reads 32 * kVec consecutive floats of a row per load (coalesced), and multiplies them
//   with every staged x row (exact fp32 FFMA, as policy highest asks);
// - the lanes' partial sums are added by a butterfly of shuffles, and one lane per output
//   applies the exact epilogue (fused_epilogue.cuh) and stores.
// Every m, n, k >= 1 is handled (bounds-checked loads, zero padding); kVec = 4 needs k % 4
// == 0 and 16-byte aligned x and w, which the search space and the runtime check.
//
// Template parameters, in the order of search_spaces/skinny_fp32.json "template_args":
// kRows (rows): rows of x per block; kCols (cols): rows of w per warp; kWarps (warps): warps
// per block; kVec (vec): floats per lane per load, 1 or 4; kChunk (chunk): elements of k
// staged per round. Derived: threads = 32 * kWarps; dynamic shared memory 4 * kRows * kChunk
// bytes; grid = (ceil(n / (kWarps * kCols)), ceil(m / kRows), 1).
#pragma once

#include "fused_epilogue.cuh"
#include "fused_linear_args.cuh"

namespace fusetune {
namespace skinny {

template <int kRows, int kCols, int kWarps, int kVec, int kChunk>
__device__ __forceinline__ void fused_linear(const FusedLinearArgs& args) {
  static_assert(kVec == 1 || kVec == 4, "lanes load 1 or 4 floats");
  static_assert(kChunk % (32 * kVec) == 0, "a staged chunk is whole warp-wide loads");
  constexpr int kThreads = 32 * kWarps;
  extern __shared__ float x_stage[];  // [kRows][kChunk]

  const float* x = static_cast<const float*>(args.x);
  const float* w = static_cast<const float*>(args.w);
  const float* bias = static_cast<const float*>(args.bias);
  float* out = static_cast<float*>(args.out);
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
    for (int index = threadIdx.x; index < kRows * kChunk; index += kThreads) {
      const int r = index / kChunk, c = index % kChunk;
      const int row = row0 + r, kk = k0 + c;
      x_stage[index] = row < m && kk < k ? x[static_cast<long long>(row) * k + kk] : 0.0f;
    }
    __syncthreads();
    const int chunk_end = min(kChunk, k - k0);
#pragma unroll 2
    for (int c = lane * kVec; c < chunk_end; c += 32 * kVec) {
      // With kVec = 4, k % 4 == 0 makes chunk_end a multiple of 4: c + 3 < chunk_end.
      float w_values[kCols][kVec];
#pragma unroll
      for (int j = 0; j < kCols; ++j) {
        const long long offset = static_cast<long long>(col0 + j) * k + k0 + c;
        if constexpr (kVec == 4) {
          const float4 v = col0 + j < n ? *reinterpret_cast<const float4*>(w + offset) : make_float4(0, 0, 0, 0);
          w_values[j][0] = v.x, w_values[j][1] = v.y, w_values[j][2] = v.z, w_values[j][3] = v.w;
        } else {
          w_values[j][0] = col0 + j < n ? w[offset] : 0.0f;
        }
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float x_values[kVec];
        if constexpr (kVec == 4) {
          const float4 v = *reinterpret_cast<const float4*>(&x_stage[r * kChunk + c]);
          x_values[0] = v.x, x_values[1] = v.y, x_values[2] = v.z, x_values[3] = v.w;
        } else {
          x_values[0] = x_stage[r * kChunk + c];
        }
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
      if (lane == (r * kCols + j) % 32 && row < m && col < n)
        out[static_cast<long long>(row) * n + col] = fused_epilogue(sum, bias ? bias[col] : 0.0f, args.scale);
    }
}

}  // namespace skinny
}  // namespace fusetune
