// A compiled kernel loaded into the current CUDA context, launchable on any stream, and the
// launch plan of one config on one problem (geometry plus the arguments of the family's launch
// contract: raw pointers, or TMA tensor maps). Used by the worker (tuning), the bench and the
// library (load-time path) alike.
#pragma once

#include <cuda_runtime.h>

#include <optional>
#include <string>

#include "cuda_resources.h"
#include "fused_linear_args.cuh"
#include "hopper_args.cuh"
#include "search_space.h"
#include "tensor_maps.h"

namespace fusetune {

/// How to launch one config on one problem, without the data: what the tuner sends the
/// worker, and what the runtime keeps per resolved shape.
struct LaunchSpec {
  LaunchContract contract = LaunchContract::kPlain;
  WeightPrep weight_prep = WeightPrep::kNone;
  TmaOperandType tma_operand_type = TmaOperandType::kNative;  ///< element type of the x and w maps
  LaunchGeometry geometry;
  int tile_m = 0;  ///< rows of the x box (tensor_map only)
  int tile_n = 0;  ///< rows of the w box (tensor_map only)
  /// The config's epilogue can write out with TMA stores (a "store_buffers" knob above 0);
  /// each plan then gives it an out map where TMA can describe out.
  bool tma_store = false;
  /// Stream-K configs (persistent 2): bytes of the workspace each launch needs
  /// (stream_k_workspace_bytes), and of its flags, which every launch zeroes first; 0 for others.
  std::int64_t workspace_bytes = 0;
  std::int64_t workspace_flag_bytes = 0;
};
/// The spec of `config` of `space` for `shape` on a device with `limits`.
LaunchSpec make_launch_spec(const SearchSpace& space, const KernelConfig& config, const ProblemShape& shape,
                            const DeviceLimits& limits);
/// Bytes of the prepared weight a spec needs for `shape` (0 without weight preparation).
std::size_t prepared_weight_bytes(WeightPrep prep, const ProblemShape& shape);

/// Device pointers and scale of one call, in the problem's dtype.
struct LaunchOperands {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* prepared_w = nullptr;  ///< the prepared weight, when the spec has a weight_prep
  const void* bias = nullptr;        ///< null: no bias
  void* out = nullptr;
  float scale = 1.0f;
  /// Device memory of workspace_bytes for stream-K configs (LaunchSpec::workspace_bytes): the
  /// caller owns it and must not let launches that share it overlap (one stream each).
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
};

/// Everything one launch needs, built once (tensor maps encoded once) and launched many times.
struct LaunchPlan {
  LaunchContract contract = LaunchContract::kPlain;
  LaunchGeometry geometry;
  FusedLinearArgs plain{};                ///< kPlain
  HopperLinearArgs hopper{};              ///< kTensorMap
  std::int64_t workspace_flag_bytes = 0;  ///< stream-K: bytes of hopper.partial_flags zeroed before each launch
};
/// Builds the plan. Throws UsageError if a tensor-map operand cannot be described (misaligned
/// pointer, row stride not a multiple of 16 bytes), or a needed prepared weight or stream-K
/// workspace is null or too small. An
/// output TMA cannot describe (n * elem not a multiple of 16 bytes, out not 16-byte aligned)
/// is no error: the epilogue then stores from registers (out_tma = 0).
LaunchPlan make_launch_plan(const LaunchSpec& spec, const ProblemShape& shape, const LaunchOperands& operands,
                            TensorMapCache& maps);

/// One spec bound to one problem, and the plan of the operands it was last asked for: a
/// call with the same pointers and scale (bit for bit) as the last reuses that plan, so it only launches.
/// Any other operands build a new plan (its tensor maps come from `maps`, encoded only for a
/// pointer not seen before); a plan that fails to build replaces nothing.
class LaunchPlanCache {
 public:
  LaunchPlanCache(const LaunchSpec& spec, const ProblemShape& shape) : spec_(spec), shape_(shape) {}
  const LaunchSpec& spec() const { return spec_; }
  /// The plan for `operands`; throws as make_launch_plan does.
  const LaunchPlan& plan(const LaunchOperands& operands, TensorMapCache& maps);
  std::size_t builds() const { return builds_; }  ///< plans built so far, for tests

 private:
  LaunchSpec spec_;
  ProblemShape shape_;
  std::optional<LaunchOperands> operands_;  ///< what plan_ was built for; empty before the first
  LaunchPlan plan_;
  std::size_t builds_ = 0;
};

class LoadedKernel {
 public:
  /// Loads a cubin and finds the generated entry (kKernelSymbol). Throws CudaError.
  static LoadedKernel load(const std::string& cubin);

  /// Launches with the given geometry. Returns the launch's error code rather than
  /// throwing, so that callers can classify it (resources exceeded vs launch failure).
  cudaError_t launch(const LaunchGeometry& geometry, const FusedLinearArgs& args, cudaStream_t stream);
  /// Launches a plan of either contract; returns the first error code. A stream-K plan's
  /// flags are zeroed on `stream` first (cudaMemsetAsync): part of every launch, so timings
  /// include it and a captured graph replays it.
  cudaError_t launch(const LaunchPlan& plan, cudaStream_t stream);
  /// Launches the cubin's weight preparation (kPrepareWeightSymbol, 256 threads, a grid-stride
  /// loop) for `prep`: reads w (n, k) and writes `prepared`. Returns the launch's error code;
  /// cudaErrorSymbolNotFound if the cubin has no preparation kernel.
  cudaError_t prepare_weight(WeightPrep prep, const ProblemShape& shape, const void* w, void* prepared,
                             cudaStream_t stream);
  /// Registers per thread, as the loaded function reports.
  int registers() const;

 private:
  cudaError_t set_smem_limit(const void* function, std::int64_t bytes);

  Library library_;
  cudaKernel_t kernel_ = nullptr;
  cudaKernel_t prepare_kernel_ = nullptr;    ///< looked up on first use
  std::int64_t smem_limit_set_ = 48 * 1024;  ///< dynamic shared memory the kernel is allowed so far
};

}  // namespace fusetune
