// One family of check macros for CUDA runtime, NVRTC and cuBLAS return codes: each failure
// throws CudaError naming the call, the file and the line.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nvrtc.h>

#include <string>

#include "fusetune/errors.h"

namespace fusetune::detail {

[[noreturn]] void throw_cuda_error(const char* call, const std::string& what, const char* file, int line);

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    throw_cuda_error(call, std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status), file, line);
}
inline void check_nvrtc(nvrtcResult status, const char* call, const char* file, int line) {
  if (status != NVRTC_SUCCESS) throw_cuda_error(call, nvrtcGetErrorString(status), file, line);
}
inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cuda_error(call, cublasGetStatusString(status), file, line);
}

}  // namespace fusetune::detail

#define FUSETUNE_CUDA_CHECK(call) ::fusetune::detail::check_cuda((call), #call, __FILE__, __LINE__)
#define FUSETUNE_NVRTC_CHECK(call) ::fusetune::detail::check_nvrtc((call), #call, __FILE__, __LINE__)
#define FUSETUNE_CUBLAS_CHECK(call) ::fusetune::detail::check_cublas((call), #call, __FILE__, __LINE__)
