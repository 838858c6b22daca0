// Test-only kernel family "faults": a correct naive fused linear, and two deliberately
// broken variants (an out-of-bounds write that faults the GPU, and a kernel that never
// ends) that the tuner must survive, record, and move past.
#pragma once

#include "fused_linear_args.cuh"

namespace fusetune::faults {

/// kFault: 0 = correct, 1 = writes far out of bounds (illegal address), 2 = spins forever.
template <int kFault>
__device__ __forceinline__ void fused_linear(const FusedLinearArgs& args) {
  const float* x = static_cast<const float*>(args.x);
  const float* w = static_cast<const float*>(args.w);
  const float* bias = static_cast<const float*>(args.bias);
  float* out = static_cast<float*>(args.out);
  const int col = blockIdx.x * 16 + threadIdx.x % 16;
  const int row = blockIdx.y * 16 + threadIdx.x / 16;
  if (kFault == 2) {
    // x is in [0, 1): the loop never exits; volatile keeps the compiler from folding it.
    while (static_cast<const volatile float*>(x)[0] < 2.0f) {
    }
  }
  if (row >= args.m || col >= args.n) return;
  double z = bias ? bias[col] : 0.0;
  for (int kk = 0; kk < args.k; ++kk) z += double(x[(long long)row * args.k + kk]) * w[(long long)col * args.k + kk];
  const float value = static_cast<float>(z);
  const float result = value + args.scale * (1.0f / (1.0f + expf(-value)));
  if (kFault == 1) {
    out[(long long)row * args.n + col + (1LL << 40)] = result;  // 4 TiB past the buffer
    return;
  }
  out[(long long)row * args.n + col] = result;
}

}  // namespace fusetune::faults
