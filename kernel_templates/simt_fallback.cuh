// SIMT fallback for bf16 and fp16: a plain shared-memory tiled GEMM with fp32 accumulation
// and the fused epilogue, out = z + s * sigmoid(z), z = x * w^T + b, all tensors in the
// input type. Correct for every m, n, k >= 1 and any element-aligned pointers (scalar 2-byte
// loads, every access bounds-checked): the config that always works where the tensor-core
// families cannot run (misaligned views, k not a multiple of 8, GPUs before Hopper).
// A generated source instantiates fusetune::simt::fused_linear<kOperand, knobs...>.
#pragma once

#include "fused_epilogue.cuh"
#include "fused_linear_args.cuh"
#include "hopper_args.cuh"

namespace fusetune {
namespace simt {

// -------------------------------------------------------------------------------------------
// Template parameters, in the order of search_spaces/simt_bf16.json "template_args":
// kOperand: kOperandBf16 or kOperandFp16 (a constant of the search space, not a knob).
// kTileM, kTileN (tile_m, tile_n): rows and columns of out per block of 256 threads laid out
//   16 x 16; each thread computes (kTileM / 16) x (kTileN / 16) outputs, rows ty + 16 i and
//   columns tx + 16 j, so that a warp's stores cover 16 consecutive columns.
// kTileK (tile_k): depth along k of one shared-memory stage. Both operand tiles are staged
//   as fp32, transposed to [k][row] with one word of padding per row (bank-conflict free
//   reads along rows); element loads run along k, so consecutive threads read consecutive
//   addresses of one row.
// Derived: threads = 256; shared memory static, 4 * kTileK * (kTileM + 1 + kTileN + 1) bytes;
// grid = (ceil(m / kTileM) * ceil(n / kTileN), 1, 1), tile t covering rows
// (t % tiles_m) * kTileM and columns (t / tiles_m) * kTileN (m fastest, as in ffma).
// -------------------------------------------------------------------------------------------

namespace detail {

/// An element of the input type as raw bits, widened exactly to fp32.
template <int kOperand>
__device__ __forceinline__ float load_element(const unsigned short* data, long long index) {
  const unsigned short bits = data[index];
  if (kOperand == kOperandBf16) return __uint_as_float(static_cast<unsigned>(bits) << 16);
  float value;
  asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
  return value;
}

/// fp32 rounded to the input type, to nearest even (NaN stays NaN, overflow gives inf).
template <int kOperand>
__device__ __forceinline__ unsigned short to_element(float value) {
  unsigned short bits;
  if (kOperand == kOperandBf16)
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(value));
  else
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
  return bits;
}

}  // namespace detail

template <int kOperand, int kTileM, int kTileN, int kTileK>
__device__ __forceinline__ void fused_linear(const FusedLinearArgs& args) {
  static_assert(kOperand == kOperandBf16 || kOperand == kOperandFp16, "the SIMT fallback serves bf16 and fp16");
  static_assert(kTileM % 16 == 0 && kTileN % 16 == 0, "16 x 16 threads tile the block's tile");
  constexpr int kThreads = 256;
  constexpr int kRows = kTileM / 16, kCols = kTileN / 16;
  __shared__ float x_tile[kTileK][kTileM + 1];
  __shared__ float w_tile[kTileK][kTileN + 1];

  const auto* x = static_cast<const unsigned short*>(args.x);
  const auto* w = static_cast<const unsigned short*>(args.w);
  const auto* bias = static_cast<const unsigned short*>(args.bias);
  auto* out = static_cast<unsigned short*>(args.out);
  const int m = args.m, n = args.n, k = args.k;
  const int tiles_m = (m + kTileM - 1) / kTileM;
  const int row0 = (blockIdx.x % tiles_m) * kTileM;
  const int col0 = (blockIdx.x / tiles_m) * kTileN;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  float acc[kRows][kCols];
#pragma unroll
  for (int i = 0; i < kRows; ++i)
#pragma unroll
    for (int j = 0; j < kCols; ++j) acc[i][j] = 0.0f;

  for (int k0 = 0; k0 < k; k0 += kTileK) {
    // Stage both tiles; elements past m, n or k are zeros (they add nothing to the sums).
    for (int index = threadIdx.x; index < kTileM * kTileK; index += kThreads) {
      const int r = index / kTileK, c = index % kTileK;
      const int row = row0 + r, kk = k0 + c;
      x_tile[c][r] = row < m && kk < k ? detail::load_element<kOperand>(x, (long long)row * k + kk) : 0.0f;
    }
    for (int index = threadIdx.x; index < kTileN * kTileK; index += kThreads) {
      const int r = index / kTileK, c = index % kTileK;
      const int col = col0 + r, kk = k0 + c;
      w_tile[c][r] = col < n && kk < k ? detail::load_element<kOperand>(w, (long long)col * k + kk) : 0.0f;
    }
    __syncthreads();
#pragma unroll 4
    for (int c = 0; c < kTileK; ++c) {
      float a[kRows], b[kCols];
#pragma unroll
      for (int i = 0; i < kRows; ++i) a[i] = x_tile[c][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < kCols; ++j) b[j] = w_tile[c][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < kRows; ++i)
#pragma unroll
        for (int j = 0; j < kCols; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int j = 0; j < kCols; ++j) {
    const int col = col0 + tx + 16 * j;
    if (col >= n) continue;
    const float b = bias ? detail::load_element<kOperand>(bias, col) : 0.0f;
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int row = row0 + ty + 16 * i;
      if (row < m)
        out[(long long)row * n + col] = detail::to_element<kOperand>(fused_epilogue(acc[i][j], b, args.scale));
    }
  }
}

}  // namespace simt
}  // namespace fusetune
