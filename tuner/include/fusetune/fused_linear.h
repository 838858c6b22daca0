// Load-time API: resolve the tuned config for a device and problem (exact database row,
// else the nearest tuned shape, else a compiled-in default, else a config valid for every
// shape), compile it once (cached), and run it on the caller's CUDA stream.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "fusetune/kernel_config.h"
#include "fusetune/problem.h"

struct CUstream_st;

namespace fusetune {

/// Same type as cudaStream_t; nullptr is the legacy default stream.
using CudaStream = CUstream_st*;

struct RuntimeOptions {
  std::string db_path;    ///< "" = default_db_path(); a missing file is fine (fallbacks apply)
  std::string cache_dir;  ///< compiled cubins; "" = $FUSETUNE_CACHE_DIR or ~/.cache/fusetune
};

/// Where a resolved config came from, best first.
enum class ResolutionSource { kExact, kNearest, kDefault, kUniversal };
std::string_view to_string(ResolutionSource source);

struct Resolution {
  KernelConfig config;
  ResolutionSource source = ResolutionSource::kUniversal;
  std::string detail;  ///< e.g. "nearest tuned shape 1024x8192x8192 on NVIDIA H100 80GB HBM3"
};

/// Device pointers of one call: x (m, k), w (n, k), bias (n) or null, out (m, n); fp32,
/// row-major, contiguous.
struct FusedLinearTensors {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;
  void* out = nullptr;
  float scale = 1.0f;
};

/// $FUSETUNE_DB if set, else "fusetune.db" in the working directory.
std::string default_db_path();

class FusedLinearRuntime {
 public:
  /// Opens the tuning database read-only if it exists. Throws DataError if it exists but
  /// is corrupt or not a fusetune database.
  explicit FusedLinearRuntime(RuntimeOptions options = {});
  ~FusedLinearRuntime();
  FusedLinearRuntime(const FusedLinearRuntime&) = delete;
  FusedLinearRuntime& operator=(const FusedLinearRuntime&) = delete;

  /// The config that would run `shape` on CUDA device `device` (-1 = the current one).
  Resolution resolve(const ProblemShape& shape, int device = -1);

  /// out = z + scale * sigmoid(z), z = x w^T + bias, on `stream` of the current device.
  /// Resolution and compilation happen on the first call per shape and are cached.
  /// Throws UsageError for bad shapes or pointers, CudaError when CUDA fails.
  void run(const ProblemShape& shape, const FusedLinearTensors& tensors, CudaStream stream);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fusetune
