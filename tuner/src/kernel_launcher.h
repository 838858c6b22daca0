// A compiled kernel loaded into the current CUDA context, launchable on any stream. Used by
// the worker (tuning) and by the library (load-time path) alike.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "cuda_resources.h"
#include "fused_linear_args.cuh"
#include "search_space.h"

namespace fusetune {

class LoadedKernel {
 public:
  /// Loads a cubin and finds the generated entry (kKernelSymbol). Throws CudaError.
  static LoadedKernel load(const std::string& cubin);

  /// Launches with the given geometry. Returns the launch's error code rather than
  /// throwing, so that callers can classify it (resources exceeded vs launch failure).
  cudaError_t launch(const LaunchGeometry& geometry, const FusedLinearArgs& args, cudaStream_t stream);
  /// Registers per thread, as the loaded function reports.
  int registers() const;

 private:
  Library library_;
  cudaKernel_t kernel_ = nullptr;
  std::int64_t smem_limit_set_ = 48 * 1024;  ///< dynamic shared memory the kernel is allowed so far
};

}  // namespace fusetune
