// Verifier: fresh random inputs for one problem on the GPU, a float64 reference computed
// once (cuBLAS DGEMM + float64 epilogue), the cuBLAS SGEMM + separate-epilogue baseline,
// and the checks every candidate output must pass.
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

namespace fusetune {

/// Name of the baseline (cuBLAS SGEMM, then a separate epilogue kernel) in the database.
inline constexpr const char* kBaselineName = "cublas_sgemm+epilogue";

/// Inputs drawn on the host: x ~ U[0,1) (torch.rand), W and b ~ U(-1/sqrt(K), 1/sqrt(K))
/// (nn.Linear's default init), so that no test ever runs on zeros.
struct HostInputs {
  std::vector<float> x, w, b;
  float scale = 2.0f;
};
HostInputs make_random_inputs(const ProblemShape& shape, std::uint64_t seed);

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
  /// Uploads the inputs and computes the references on `stream`. Throws CudaError.
  Verifier(const ProblemShape& shape, HostInputs inputs, cudaStream_t stream, cublasHandle_t cublas);

  /// Launch arguments pointing at the device inputs and the (candidate) output buffer.
  FusedLinearArgs args() const;
  /// Fills the output with NaN, so that unwritten elements show.
  void poison_output();
  /// Checks the output buffer (synchronizes): full comparison against the float64
  /// reference and against the cuBLAS SGEMM baseline, plus >= 1000 sampled elements
  /// against a float64 host computation. Passes iff every element is within the policy's
  /// allclose tolerance, none is left non-finite, and the relative L2 error meets the bound.
  Verdict check_output(Policy policy);

  /// cuBLAS SGEMM (no TF32) into the baseline buffer, then the separate epilogue kernel.
  cudaError_t launch_baseline(cudaStream_t stream);
  /// Error of the baseline's output against the float64 reference (after one launch).
  ErrorStats baseline_error();

 private:
  ProblemShape shape_;
  HostInputs inputs_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  DeviceBuffer x_, w_, b_, out_, baseline_out_, reference_, baseline_reference_;
  std::vector<std::pair<std::int64_t, std::int64_t>> samples_;  ///< host-checked (row, column)
  std::vector<double> sample_values_;                           ///< their float64 values
};

}  // namespace fusetune
