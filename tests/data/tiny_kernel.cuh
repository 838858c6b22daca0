// Tiny kernel family for fusetune's tests (tests/data/tiny_space.json): a naive fused
// linear, out = z + scale * sigmoid(z), z = x * w^T + bias, small enough that NVRTC
// compiles it in milliseconds. Not tuned for speed.
#pragma once

#include "fused_linear_args.cuh"

namespace fusetune::tiny {

/// Block: kTileM * kTileN threads in one dimension (the launcher's blocks are 1-D), seen as
/// kTileM rows of kTileN: thread t is (tx, ty) = (t % kTileN, t / kTileN) and computes
/// out[row][col] with row = blockIdx.y * kTileM + ty, col = blockIdx.x * kTileN + tx.
/// K is walked in chunks of kTileN * kUnroll columns. Each chunk of the block's kTileM rows
/// of x is staged in dynamic shared memory, x_tile[ty][c] (kTileM * kTileN * kUnroll floats),
/// thread tx loading the kUnroll consecutive elements starting at column tx * kUnroll of the
/// chunk. Only the first of those is bounds-checked against k, which is why the family
/// requires k % kUnroll == 0 (shape constraint).
template <int kTileM, int kTileN, int kUnroll>
__device__ void fused_linear(const FusedLinearArgs& args) {
  extern __shared__ float x_tile[];
  constexpr int kChunk = kTileN * kUnroll;
  const float* x = static_cast<const float*>(args.x);
  const float* w = static_cast<const float*>(args.w);
  const float* bias = static_cast<const float*>(args.bias);
  float* out = static_cast<float*>(args.out);
  const int tx = threadIdx.x % kTileN;
  const int ty = threadIdx.x / kTileN;
  const int row = blockIdx.y * kTileM + ty;
  const int col = blockIdx.x * kTileN + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < args.k; k0 += kChunk) {
    const int first = k0 + tx * kUnroll;
    const bool load = row < args.m && first < args.k;
#pragma unroll
    for (int j = 0; j < kUnroll; ++j)
      x_tile[ty * kChunk + tx * kUnroll + j] = load ? x[static_cast<long long>(row) * args.k + first + j] : 0.0f;
    __syncthreads();
    if (row < args.m && col < args.n) {
      const int count = min(kChunk, args.k - k0);
      for (int c = 0; c < count; ++c)
        acc += x_tile[ty * kChunk + c] * w[static_cast<long long>(col) * args.k + k0 + c];
    }
    __syncthreads();
  }
  if (row < args.m && col < args.n) {
    const float z = acc + (bias != nullptr ? bias[col] : 0.0f);
    out[static_cast<long long>(row) * args.n + col] = z + args.scale * (1.0f / (1.0f + expf(-z)));
  }
}

}  // namespace fusetune::tiny
