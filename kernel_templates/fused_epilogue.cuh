// The fused epilogue shared by every kernel family: out = z + s * sigmoid(z), z = acc + bias.
// One definition of the numerics, so that the SIMT and the tensor-core families round,
// saturate and propagate NaN alike. Device code only; compiles under NVRTC with no headers.
#pragma once

namespace fusetune {

/// Returns z + scale * sigmoid(z) for z = acc + bias, as PyTorch's
/// `z + s * torch.sigmoid(z)` does in fp32.
///
/// sigmoid(z) = 1 / (1 + expf(-z)), with the IEEE expf and division (no __expf, which loses
/// accuracy for large |z|). Saturation needs no special case:
/// - z below about -88.7: expf(-z) overflows to +inf and 1 / (1 + inf) is exactly 0;
/// - z above about 16.6: 1 + expf(-z) rounds to 1 and the quotient is exactly 1;
/// so sigmoid stays in [0, 1], never inf, and scale * sigmoid is never inf * 0 for a finite
/// scale: z = -inf gives -inf, z = +inf gives +inf, as in PyTorch. A NaN z gives NaN.
/// The final multiply-add is one fmaf (a single rounding, within fp32 rounding of PyTorch's
/// separate multiply and add). scale may be negative or zero.
__device__ __forceinline__ float fused_epilogue(float acc, float bias, float scale) {
  const float z = acc + bias;
  const float sigmoid = 1.0f / (1.0f + expf(-z));
  return fmaf(scale, sigmoid, z);
}

}  // namespace fusetune
