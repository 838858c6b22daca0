// Launch arguments shared by every kernel family and the host that launches them.
// Plain C++ so that NVRTC, nvcc and the host compiler all see the same layout.
#pragma once

namespace fusetune {

/// Arguments of one fused-linear launch: out = z + scale * sigmoid(z), z = x * w^T + bias.
/// All matrices row-major and contiguous: x (m, k), w (n, k), out (m, n); bias (n) or null.
/// Element types are the family's (float for ffma); pointers are untyped so that one
/// struct serves every family.
struct FusedLinearArgs {
  const void* x;
  const void* w;
  const void* bias;  ///< may be null: no bias
  void* out;
  int m;
  int n;
  int k;
  float scale;
};

}  // namespace fusetune
