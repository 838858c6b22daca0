// nvcc-built helper kernels of the verifier and the baselines: the separate epilogue that
// follows cuBLAS, the float64 reference epilogue, widening, and the output comparison, for
// fp32, bf16 and fp16 buffers.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace fusetune {

/// Element type of a device buffer (plain enum: this header is also compiled by nvcc as C++17).
enum ElementKind : int { kElementF32 = 0, kElementBF16 = 1, kElementF16 = 2 };

/// In place on z (m x n, row-major, of `kind`): z += bias[col]; z = z + scale * sigmoid(z),
/// computed in fp32 and rounded to `kind`. The separate-kernel epilogue that follows cuBLAS in
/// the baselines. bias (n, of `kind`) may be null.
void launch_epilogue(void* z, const void* bias, ElementKind kind, float scale, long long m, long long n,
                     cudaStream_t stream);
/// The fp32 form of launch_epilogue.
void launch_epilogue_f32(float* z, const float* bias, float scale, long long m, long long n, cudaStream_t stream);
/// The same in float64 (the reference), bias widened from float.
void launch_epilogue_f64(double* z, const float* bias, double scale, long long m, long long n, cudaStream_t stream);
/// dst[i] = double(src[i]).
void launch_widen(const float* src, double* dst, std::size_t count, cudaStream_t stream);
/// dst[i] = double(src[i]) for src of `kind`.
void launch_widen(const void* src, ElementKind kind, double* dst, std::size_t count, cudaStream_t stream);

/// Totals of one comparison (plain struct: this header is also compiled by nvcc as C++17).
struct ComparisonTotals {
  double relative_l2 = 0;             ///< ||out - ref|| / ||ref|| over the finite reference elements
  double max_abs = 0;                 ///< max |out - ref|
  long long allclose_violations = 0;  ///< elements outside atol + rtol*|ref| (NaN/inf mismatches too)
  long long non_finite = 0;           ///< elements NaN/inf where ref is finite (poison left unwritten)
};

/// Compares out (of `kind`, widened exactly to double) against ref over all `count` elements:
/// relative L2 error, max abs error, elements outside atol + rtol*|ref|, and elements not
/// finite where ref is finite (poison left unwritten). NaN in ref expects NaN in out; +-inf in
/// ref expects the same inf. Synchronizes the stream.
ComparisonTotals compare_to_reference(const void* out, ElementKind kind, const double* ref, std::size_t count,
                                      double atol, double rtol, cudaStream_t stream);
/// The fp32 form of compare_to_reference.
ComparisonTotals compare_to_reference(const float* out, const double* ref, std::size_t count, double atol, double rtol,
                                      cudaStream_t stream);

}  // namespace fusetune
