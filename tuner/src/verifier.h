// Verifier: fresh random inputs for one problem on the GPU, rounded to the problem's dtype; a
// float64 reference computed once from those rounded values (cuBLAS DGEMM + float64
// epilogue); the cuBLAS baselines of the problem's policy; and the checks every candidate
// output must pass.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda_resources.h"
#include "fused_linear_args.cuh"
#include "fusetune/problem.h"
#include "fusetune/trial.h"
#include "kernel_launcher.h"
#include "reference_kernels.h"

namespace fusetune {

/// Name of the fp32 highest baseline (cuBLAS SGEMM, then a separate epilogue kernel).
inline constexpr const char* kBaselineName = "cublas_sgemm+epilogue";

/// The baselines timed for a problem, the target first (what the speed goals compare
/// with): highest: cublas_sgemm+epilogue (PyTorch eager fp32); high: cublas_tf32 (the TF32
/// GEMM alone) and cublas_tf32+epilogue; half: cublas_bf16 / cublas_fp16 (the GEMM alone, fp32
/// compute, output in the dtype) and the same +epilogue.
std::vector<std::string> baseline_names(const ProblemShape& shape);
/// baseline_names(shape).front(): the baseline that %cuBLAS and speed ratios refer to.
std::string target_baseline_name(const ProblemShape& shape);

/// Inputs drawn on the host: x ~ U[0,1) (torch.rand), W and b ~ U(-1/sqrt(K), 1/sqrt(K))
/// (nn.Linear's default init), so that no test ever runs on zeros. The Verifier rounds them to
/// the problem's dtype (round_to_dtype); the float64 reference sees the rounded values.
struct HostInputs {
  std::vector<float> x, w, b;
  float scale = 2.0f;
};
HostInputs make_random_inputs(const ProblemShape& shape, std::uint64_t seed);
/// Rounds every value to the nearest `dtype` value (ties to even; NaN stays NaN); no-op for fp32.
void round_to_dtype(std::vector<float>& values, Dtype dtype);
/// The bytes of `values` (already rounded) as `dtype` elements: what is uploaded.
std::vector<unsigned char> encode_elements(const std::vector<float>& values, Dtype dtype);
/// `count` elements of `dtype` at `bytes`, widened exactly to float.
std::vector<float> decode_elements(const void* bytes, std::size_t count, Dtype dtype);

/// out[i, j] in float64 from host inputs; bias may be empty.
double host_reference(const HostInputs& inputs, const ProblemShape& shape, std::int64_t i, std::int64_t j);

/// The verdict on one candidate output.
struct Verdict {
  bool passed = false;
  ErrorStats error;     ///< full output against the float64 reference
  std::string message;  ///< why it failed, empty when passed
};

class Verifier {
 public:
  /// Rounds the inputs to the shape's dtype, uploads them and computes the references on
  /// `stream`. Throws CudaError.
  Verifier(const ProblemShape& shape, HostInputs inputs, cudaStream_t stream, cublasHandle_t cublas);

  /// Launch arguments (plain contract) pointing at the device inputs and the output buffer.
  FusedLinearArgs args() const;
  /// The device inputs and output of any contract; prepared_w is the prepared-weight buffer
  /// once prepared_weight() allocated it, else null. With workspace_bytes > 0 (a stream-K
  /// config's LaunchSpec::workspace_bytes), also a workspace of at least that size, grown as needed.
  LaunchOperands operands(std::size_t workspace_bytes = 0);
  /// A device buffer of `bytes` for the prepared weight, allocated on first call (the same
  /// buffer afterwards; a larger request reallocates).
  void* prepared_weight(std::size_t bytes);
  /// The weight as uploaded (dtype elements, n x k).
  const void* weight() const { return w_.get(); }
  /// Fills the output with NaN, so that unwritten elements show.
  void poison_output();
  /// Checks the output buffer (synchronizes): full comparison against the float64
  /// reference and against the policy's cuBLAS + epilogue baseline, plus >= 1000 sampled
  /// elements against a float64 host computation. Passes iff every element is within the
  /// policy's allclose tolerance, none is left non-finite, and the relative L2 error meets
  /// the bound.
  Verdict check_output(Policy policy);

  /// The baselines of this problem (baseline_names(shape)).
  const std::vector<std::string>& baselines() const { return baseline_names_; }
  /// Launches baseline `index` of baselines() on `stream`; returns the first error.
  cudaError_t launch_baseline(std::size_t index, cudaStream_t stream);
  /// Launches every baseline once, in order (fills the +epilogue baseline's output).
  cudaError_t launch_baseline(cudaStream_t stream);
  /// Error against the float64 reference of the +epilogue baseline's output (after a launch of
  /// it). The GEMM-alone baselines output z, not out: their error is reported as the error of
  /// that z completed by the separate epilogue, i.e. this same value.
  ErrorStats baseline_error();

 private:
  ElementKind kind() const;

  ProblemShape shape_;
  HostInputs inputs_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  std::vector<std::string> baseline_names_;
  DeviceBuffer x_, w_, b_;           ///< inputs in the dtype
  DeviceBuffer x32_, w32_, b32_;     ///< fp32 copies (bf16/fp16 only; the reference reads them)
  DeviceBuffer out_, baseline_out_;  ///< candidate output; +epilogue baseline output (dtype)
  DeviceBuffer gemm_out_;            ///< the GEMM-alone baseline's z (dtype)
  DeviceBuffer prepared_;            ///< the prepared weight, when a family needs one
  DeviceBuffer workspace_;           ///< the stream-K workspace, when a config needs one
  DeviceBuffer reference_, baseline_reference_;
  std::vector<std::pair<std::int64_t, std::int64_t>> samples_;  ///< host-checked (row, column)
  std::vector<double> sample_values_;                           ///< their float64 values
};

}  // namespace fusetune
