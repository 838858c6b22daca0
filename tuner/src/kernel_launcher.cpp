// Loading cubins with the runtime's library API (no link-time libcuda dependency), launch
// plans of both launch contracts, and launching with the dynamic shared memory a config needs.
#include "kernel_launcher.h"

#include <algorithm>
#include <bit>
#include <cstdint>

#include "fusetune/errors.h"
#include "source_generator.h"

namespace fusetune {

namespace {

/// Threads per block of the weight preparation kernel (its contract: 256, any grid).
constexpr int kPrepareThreads = 256;
/// Blocks of the preparation's grid-stride loop at most: enough to fill any GPU.
constexpr long long kPrepareMaxBlocks = 8192;

/// Same pointers and the same scale bits (0.0 and -0.0 differ in the output's sign of zero).
bool same_operands(const LaunchOperands& a, const LaunchOperands& b) {
  return a.x == b.x && a.w == b.w && a.prepared_w == b.prepared_w && a.bias == b.bias && a.out == b.out &&
         a.workspace == b.workspace && a.workspace_bytes == b.workspace_bytes &&
         std::bit_cast<std::uint32_t>(a.scale) == std::bit_cast<std::uint32_t>(b.scale);
}

}  // namespace

LaunchSpec make_launch_spec(const SearchSpace& space, const KernelConfig& config, const ProblemShape& shape,
                            const DeviceLimits& limits) {
  LaunchSpec spec;
  spec.contract = space.launch();
  spec.weight_prep = space.weight_prep();
  spec.tma_operand_type = space.tma_operand_type();
  spec.geometry = space.launch_geometry(config, shape, limits);
  if (spec.contract == LaunchContract::kTensorMap) {
    spec.tile_m = int(config.knob("tile_m"));
    spec.tile_n = int(config.knob("tile_n"));
    spec.tma_store = space.has_knob("store_buffers") && config.knob("store_buffers") > 0;
    if (space.has_knob("persistent") && config.knob("persistent") == 2) {
      // Stream-K: one partial tile per block, one flag per consumer warpgroup of each block.
      const std::int64_t blocks = spec.geometry.grid_x, consumers = config.knob("consumers");
      if (blocks > kStreamKMaxBlocks || consumers > 2)
        throw DataError("stream-K config " + config.name + " launches " + std::to_string(blocks) + " blocks of " +
                        std::to_string(consumers) + " consumers; its workspace holds flags for " +
                        std::to_string(kStreamKMaxBlocks) + " blocks of at most 2");
      spec.workspace_bytes = stream_k_workspace_bytes(int(blocks), spec.tile_m, spec.tile_n);
      spec.workspace_flag_bytes = blocks * consumers * std::int64_t(sizeof(int));
    }
  }
  return spec;
}

std::size_t prepared_weight_bytes(WeightPrep prep, const ProblemShape& shape) {
  if (prep == WeightPrep::kTf32Split) return 2 * std::size_t(shape.n) * std::size_t(shape.k) * sizeof(float);
  return 0;
}

LaunchPlan make_launch_plan(const LaunchSpec& spec, const ProblemShape& shape, const LaunchOperands& operands,
                            TensorMapCache& maps) {
  LaunchPlan plan;
  plan.contract = spec.contract;
  plan.geometry = spec.geometry;
  if (spec.contract == LaunchContract::kPlain) {
    plan.plain = FusedLinearArgs{operands.x,   operands.w,   operands.bias, operands.out,
                                 int(shape.m), int(shape.n), int(shape.k),  operands.scale};
    return plan;
  }
  HopperLinearArgs& args = plan.hopper;
  if (spec.workspace_bytes > 0) {  // checked before any tensor map is encoded
    if (!operands.workspace || operands.workspace_bytes < std::size_t(spec.workspace_bytes))
      throw UsageError("this stream-K config needs a workspace of " + std::to_string(spec.workspace_bytes) +
                       " bytes; " +
                       (operands.workspace ? std::to_string(operands.workspace_bytes) + " given" : "none given"));
    args.partial_flags = static_cast<int*>(operands.workspace);
    args.partials = reinterpret_cast<float*>(static_cast<char*>(operands.workspace) + kStreamKFlagsBytes);
    plan.workspace_flag_bytes = spec.workspace_flag_bytes;
  }
  const void* w_big = operands.w;
  const void* w_small = operands.w;
  if (spec.weight_prep == WeightPrep::kTf32Split) {
    if (!operands.prepared_w)
      throw UsageError("this config reads a prepared weight (3xTF32 big/small split); call prepare_weight first");
    // The prepared buffer holds n*k TF32 big parts, then n*k remainders.
    w_big = operands.prepared_w;
    w_small = static_cast<const float*>(operands.prepared_w) + shape.n * shape.k;
  }
  const bool tf32 = spec.tma_operand_type == TmaOperandType::kTf32;
  args.x_map = maps.get({operands.x, shape.m, shape.k, shape.dtype, spec.tile_m, tf32});
  args.w_map = maps.get({w_big, shape.n, shape.k, shape.dtype, spec.tile_n, tf32});
  args.w_small_map = maps.get({w_small, shape.n, shape.k, shape.dtype, spec.tile_n, tf32});
  const OperandMapKey out_key{operands.out, shape.m, shape.n, shape.dtype, kStoreBoxRows};
  args.out_tma = spec.tma_store && operand_map_problem(out_key).empty() ? 1 : 0;
  if (args.out_tma) args.out_map = maps.get(out_key);
  args.bias = operands.bias;
  args.out = operands.out;
  args.m = int(shape.m);
  args.n = int(shape.n);
  args.k = int(shape.k);
  args.scale = operands.scale;
  return plan;
}

const LaunchPlan& LaunchPlanCache::plan(const LaunchOperands& operands, TensorMapCache& maps) {
  if (operands_ && same_operands(*operands_, operands)) return plan_;
  plan_ = make_launch_plan(spec_, shape_, operands, maps);
  operands_ = operands;  // only once the plan is built: a throw leaves nothing stale behind
  ++builds_;
  return plan_;
}

LoadedKernel LoadedKernel::load(const std::string& cubin) {
  LoadedKernel kernel;
  cudaLibrary_t library = nullptr;
  FUSETUNE_CUDA_CHECK(cudaLibraryLoadData(&library, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  kernel.library_ = Library(library);
  FUSETUNE_CUDA_CHECK(cudaLibraryGetKernel(&kernel.kernel_, library, kKernelSymbol));
  return kernel;
}

cudaError_t LoadedKernel::set_smem_limit(const void* function, std::int64_t bytes) {
  if (bytes <= smem_limit_set_) return cudaSuccess;
  // Blocks get more than 48 KB of dynamic shared memory only after opting in.
  const cudaError_t status =
      cudaFuncSetAttribute(function, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (status == cudaSuccess) smem_limit_set_ = bytes;
  return status;
}

cudaError_t LoadedKernel::launch(const LaunchGeometry& geometry, const FusedLinearArgs& args, cudaStream_t stream) {
  const void* function = reinterpret_cast<const void*>(kernel_);
  if (const cudaError_t status = set_smem_limit(function, geometry.smem_bytes); status != cudaSuccess) return status;
  FusedLinearArgs arguments = args;
  void* params[] = {&arguments};
  return cudaLaunchKernel(function, dim3(geometry.grid_x, geometry.grid_y, geometry.grid_z), dim3(geometry.threads),
                          params, static_cast<size_t>(geometry.smem_bytes), stream);
}

cudaError_t LoadedKernel::launch(const LaunchPlan& plan, cudaStream_t stream) {
  if (plan.contract == LaunchContract::kPlain) return launch(plan.geometry, plan.plain, stream);
  const LaunchGeometry& geometry = plan.geometry;
  const void* function = reinterpret_cast<const void*>(kernel_);
  if (const cudaError_t status = set_smem_limit(function, geometry.smem_bytes); status != cudaSuccess) return status;
  if (plan.workspace_flag_bytes > 0) {
    const cudaError_t status = cudaMemsetAsync(plan.hopper.partial_flags, 0, plan.workspace_flag_bytes, stream);
    if (status != cudaSuccess) return status;
  }
  HopperLinearArgs arguments = plan.hopper;  // copied into the launch's parameter buffer
  void* params[] = {&arguments};
  return cudaLaunchKernel(function, dim3(geometry.grid_x, geometry.grid_y, geometry.grid_z), dim3(geometry.threads),
                          params, static_cast<size_t>(geometry.smem_bytes), stream);
}

cudaError_t LoadedKernel::prepare_weight(WeightPrep prep, const ProblemShape& shape, const void* w, void* prepared,
                                         cudaStream_t stream) {
  if (prep == WeightPrep::kNone) return cudaSuccess;
  if (!prepare_kernel_) {
    cudaLibrary_t library = library_.get();
    const cudaError_t status = cudaLibraryGetKernel(&prepare_kernel_, library, kPrepareWeightSymbol);
    if (status != cudaSuccess) return status;
  }
  WeightPrepArgs arguments{static_cast<const float*>(w), static_cast<float*>(prepared), shape.n * shape.k};
  void* params[] = {&arguments};
  const long long blocks =
      std::clamp((arguments.count + kPrepareThreads - 1) / kPrepareThreads, 1LL, kPrepareMaxBlocks);
  return cudaLaunchKernel(reinterpret_cast<const void*>(prepare_kernel_), dim3(unsigned(blocks)), dim3(kPrepareThreads),
                          params, 0, stream);
}

int LoadedKernel::registers() const {
  cudaFuncAttributes attributes{};
  FUSETUNE_CUDA_CHECK(cudaFuncGetAttributes(&attributes, reinterpret_cast<const void*>(kernel_)));
  return attributes.numRegs;
}

}  // namespace fusetune
