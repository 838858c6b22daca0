// Load-time API: resolve the tuned config for a device and problem (exact database row,
// else the nearest tuned shape, else a compiled-in default, else a config valid for every
// shape), compile it once (cached), and run it on the caller's CUDA stream.
#pragma once

#include <cstddef>
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

/// Device pointers of one call: x (m, k), w (n, k), bias (n) or null, out (m, n); all of
/// the shape's dtype (fp32, bf16 or fp16), row-major, contiguous.
struct FusedLinearTensors {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;
  void* out = nullptr;
  float scale = 1.0f;
  /// The weight as prepare_weight() wrote it, when prepared_weight_bytes() is not 0
  /// (e.g. the 3xTF32 big/small split); ignored otherwise.
  const void* prepared_weight = nullptr;
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

  /// Bytes of device memory the resolved config of `shape` needs for its prepared weight;
  /// 0 when it uses w as it is. The caller owns that memory (e.g. a torch tensor).
  std::size_t prepared_weight_bytes(const ProblemShape& shape);
  /// The one-time, explicit weight preparation of the resolved config (a no-op when
  /// prepared_weight_bytes() is 0): reads w (n, k) and writes `prepared` on `stream`. Redo it
  /// whenever w changes. Its cost is the caller's to report, never part of run().
  void prepare_weight(const ProblemShape& shape, const void* w, void* prepared, CudaStream stream);

  /// out = z + scale * sigmoid(z), z = x w^T + bias, on `stream` of the current device.
  /// Resolution and compilation happen on the first call per shape and are cached.
  /// Throws UsageError for bad shapes or pointers, CudaError when CUDA fails.
  void run(const ProblemShape& shape, const FusedLinearTensors& tensors, CudaStream stream);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fusetune
