// RAII, move-only owners of CUDA runtime handles (device memory, streams, events, loaded
// cubins, cuBLAS handles), and the device query that every GPU path starts with.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "cuda_check.h"
#include "search_space.h"
#include "tuning_db.h"

namespace fusetune {

/// Owns a handle and releases it with `Release` unless moved from.
template <typename Handle, auto Release>
class UniqueCudaHandle {
 public:
  UniqueCudaHandle() = default;
  explicit UniqueCudaHandle(Handle handle) : handle_(handle) {}
  UniqueCudaHandle(UniqueCudaHandle&& other) noexcept : handle_(std::exchange(other.handle_, Handle{})) {}
  UniqueCudaHandle& operator=(UniqueCudaHandle&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, Handle{});
    }
    return *this;
  }
  ~UniqueCudaHandle() { reset(); }
  Handle get() const { return handle_; }
  void reset() {
    // Release errors are ignored: this runs in destructors, possibly after a device fault.
    if (handle_) (void)Release(handle_);
    handle_ = Handle{};
  }

 private:
  Handle handle_{};
};

using Stream = UniqueCudaHandle<cudaStream_t, cudaStreamDestroy>;
using Event = UniqueCudaHandle<cudaEvent_t, cudaEventDestroy>;
using Library = UniqueCudaHandle<cudaLibrary_t, cudaLibraryUnload>;
using CublasHandle = UniqueCudaHandle<cublasHandle_t, cublasDestroy>;

Stream make_stream();
Event make_event();
CublasHandle make_cublas();

/// Device memory of `bytes` bytes (cudaMalloc), freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  ~DeviceBuffer();
  void* get() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

/// What the tuner needs to know about the current device.
struct DeviceInfo {
  int ordinal = 0;
  DeviceFingerprint fingerprint;
  DeviceLimits limits;
  std::string arch;  ///< NVRTC target, e.g. "sm_90a" (the "a" target on Hopper, for wgmma)
};

/// Selects device `ordinal` and reads its properties. Throws CudaError with a one-line
/// message when there is no driver, no device, or no such ordinal.
DeviceInfo query_device(int ordinal);
/// NVRTC's version as "major.minor".
std::string nvrtc_version();

}  // namespace fusetune
