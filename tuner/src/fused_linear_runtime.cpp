// The load-time path (see fusetune/fused_linear.h): ConfigResolver logic plus a per-device
// cache of loaded kernels. Compiles through the same Compiler as the tuner.
#include <cuda_runtime.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "compiler.h"
#include "config_resolver.h"
#include "cuda_resources.h"
#include "default_configs.h"
#include "fusetune/errors.h"
#include "fusetune/fused_linear.h"
#include "kernel_launcher.h"
#include "source_generator.h"
#include "tuning_db.h"

namespace fusetune {

std::string_view to_string(ResolutionSource source) {
  switch (source) {
    case ResolutionSource::kExact:
      return "exact";
    case ResolutionSource::kNearest:
      return "nearest";
    case ResolutionSource::kDefault:
      return "default";
    case ResolutionSource::kUniversal:
      return "universal";
  }
  return "?";
}

std::string default_db_path() {
  if (const char* path = std::getenv("FUSETUNE_DB"); path && *path) return path;
  return "fusetune.db";
}

namespace {

/// TMA and the vector loads of tuned configs need 16-byte aligned tensors; cudaMalloc gives
/// 256 bytes, but views into tensors may not.
bool misaligned(const void* pointer) { return pointer && reinterpret_cast<std::uintptr_t>(pointer) % 16 != 0; }

void check_shape(const ProblemShape& shape) {
  if (shape.m < 1 || shape.n < 1 || shape.k < 1 || shape.m > kMaxDimension || shape.n > kMaxDimension ||
      shape.k > kMaxDimension)
    throw UsageError("shape " + shape.dims() + " is out of range; each of M, N, K must be in [1, 2^30]");
  validate_dtype_policy(shape);
}

}  // namespace

struct FusedLinearRuntime::Impl {
  RuntimeOptions options;
  std::optional<TuningDb> db;
  std::unique_ptr<ConfigResolver> resolver;
  std::mutex mutex;

  /// A config compiled, loaded and bound to one problem: after the first call, run() only
  /// looks this up, compares the operands with the last call's and launches.
  struct PreparedLaunch {
    LoadedKernel* kernel = nullptr;  ///< in DeviceState::kernels, whose nodes never move
    LaunchPlanCache plans;           ///< the spec, and the plan of the last operands
  };

  /// What a device keeps per problem. The resolution is made without compiling (resolve()
  /// and prepared_weight_bytes() need no more); each launch is prepared on its first run.
  struct ProblemState {
    Resolution resolution;
    const SearchSpace* space = nullptr;      ///< the resolved config's family
    std::optional<PreparedLaunch> tuned;     ///< the resolved config
    std::optional<PreparedLaunch> fallback;  ///< the universal config, for misaligned tensors
  };

  /// What one device needs: its identity, a compiler for its arch, loaded kernels, maps.
  struct DeviceState {
    DeviceInfo info;
    std::unique_ptr<Compiler> compiler;
    std::map<ProblemShape, ProblemState> problems;  ///< by shape, dtype and policy
    std::map<std::string, LoadedKernel> kernels;    ///< by config name
    TensorMapCache maps;                            ///< encoded once per (pointer, shape, box)
    /// Stream-K workspaces by stream: launches on one stream never overlap, on two they may,
    /// so each stream has its own. Kept for the runtime's lifetime, since a captured CUDA graph
    /// holds the pointer; a larger need adds a larger buffer.
    std::map<cudaStream_t, std::vector<DeviceBuffer>> workspaces;
  };
  std::map<int, DeviceState> devices;

  DeviceState& device_state(int device) {
    if (device < 0) FUSETUNE_CUDA_CHECK(cudaGetDevice(&device));
    auto found = devices.find(device);
    if (found != devices.end()) return found->second;
    int current = 0;
    FUSETUNE_CUDA_CHECK(cudaGetDevice(&current));
    DeviceState state;
    state.info = query_device(device);  // selects `device`; restore the caller's choice below
    FUSETUNE_CUDA_CHECK(cudaSetDevice(current));
    state.compiler = std::make_unique<Compiler>(TemplateLibrary::embedded(), state.info.arch,
                                                options.cache_dir.empty() ? default_cache_dir() : options.cache_dir);
    return devices.emplace(device, std::move(state)).first->second;
  }

  const SearchSpace& space_of(const KernelConfig& config) {
    const SearchSpace* space = resolver->space_for(config.family);
    if (!space) throw DataError("this build has no search space for family '" + config.family + "'");
    return *space;
  }

  ProblemState& problem_state(const ProblemShape& shape, DeviceState& state) {
    auto found = state.problems.find(shape);
    if (found != state.problems.end()) return found->second;
    ProblemState problem;
    problem.resolution = resolver->resolve(shape, state.info.fingerprint, state.info.limits);
    problem.space = &space_of(problem.resolution.config);
    return state.problems.emplace(shape, std::move(problem)).first->second;
  }

  LoadedKernel& kernel_for(const KernelConfig& config, DeviceState& state) {
    auto found = state.kernels.find(config.name);
    if (found != state.kernels.end()) return found->second;
    const CompileOutput compiled = state.compiler->compile(generate_source(space_of(config), config));
    if (!compiled.ok) throw CudaError("kernel " + config.name + " failed to compile: " + compiled.log.substr(0, 500));
    return state.kernels.emplace(config.name, LoadedKernel::load(compiled.cubin)).first->second;
  }

  /// `config` compiled (or found compiled), loaded and bound to `shape`.
  PreparedLaunch prepare(const KernelConfig& config, const ProblemShape& shape, DeviceState& state) {
    LoadedKernel& kernel = kernel_for(config, state);
    return {&kernel, LaunchPlanCache(make_launch_spec(space_of(config), config, shape, state.info.limits), shape)};
  }
  PreparedLaunch& tuned_launch(ProblemState& problem, const ProblemShape& shape, DeviceState& state) {
    if (!problem.tuned) problem.tuned.emplace(prepare(problem.resolution.config, shape, state));
    return *problem.tuned;
  }
  /// A stream-K workspace of at least `bytes` for launches on `stream`.
  static DeviceBuffer& workspace_for(DeviceState& state, cudaStream_t stream, std::size_t bytes) {
    std::vector<DeviceBuffer>& buffers = state.workspaces[stream];
    if (!buffers.empty() && buffers.back().bytes() >= bytes) return buffers.back();
    // While a stream is being captured into a CUDA graph, cudaMalloc counts as unsafe and would
    // invalidate the capture; like PyTorch's allocator, allocate in relaxed mode (a no-op when
    // nothing is captured). The buffer is not part of any graph: it lives as long as the runtime.
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    FUSETUNE_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    struct RestoreMode {
      cudaStreamCaptureMode& mode;
      ~RestoreMode() { cudaThreadExchangeStreamCaptureMode(&mode); }
    } restore{mode};
    buffers.emplace_back(bytes);
    return buffers.back();
  }

  PreparedLaunch& fallback_launch(ProblemState& problem, const ProblemShape& shape, DeviceState& state) {
    if (!problem.fallback) problem.fallback.emplace(prepare(resolver->universal(shape).config, shape, state));
    return *problem.fallback;
  }
};

FusedLinearRuntime::FusedLinearRuntime(RuntimeOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.db_path.empty()) impl_->options.db_path = default_db_path();
  struct stat info {};
  if (stat(impl_->options.db_path.c_str(), &info) == 0)
    impl_->db.emplace(TuningDb::open_read_only(impl_->options.db_path));
  impl_->resolver = std::make_unique<ConfigResolver>(impl_->db ? &*impl_->db : nullptr);
}

FusedLinearRuntime::~FusedLinearRuntime() = default;

Resolution FusedLinearRuntime::resolve(const ProblemShape& shape, int device) {
  check_shape(shape);
  std::lock_guard lock(impl_->mutex);
  return impl_->problem_state(shape, impl_->device_state(device)).resolution;
}

std::size_t FusedLinearRuntime::prepared_weight_bytes(const ProblemShape& shape) {
  check_shape(shape);
  std::lock_guard lock(impl_->mutex);
  const Impl::ProblemState& problem = impl_->problem_state(shape, impl_->device_state(-1));
  return fusetune::prepared_weight_bytes(problem.space->weight_prep(), shape);
}

void FusedLinearRuntime::prepare_weight(const ProblemShape& shape, const void* w, void* prepared, CudaStream stream) {
  check_shape(shape);
  std::lock_guard lock(impl_->mutex);
  Impl::DeviceState& state = impl_->device_state(-1);
  Impl::ProblemState& problem = impl_->problem_state(shape, state);
  const WeightPrep prep = problem.space->weight_prep();
  if (prep == WeightPrep::kNone) return;
  if (!w || !prepared) throw UsageError("prepare_weight needs the device pointers of w and of the prepared buffer");
  if (misaligned(prepared))
    throw UsageError("the prepared weight buffer must be 16-byte aligned (TMA reads it); allocate it on its own");
  LoadedKernel& kernel = *impl_->tuned_launch(problem, shape, state).kernel;
  FUSETUNE_CUDA_CHECK(kernel.prepare_weight(prep, shape, w, prepared, stream));
}

void FusedLinearRuntime::run(const ProblemShape& shape, const FusedLinearTensors& tensors, CudaStream stream) {
  check_shape(shape);
  if (!tensors.x || !tensors.w || !tensors.out) throw UsageError("x, w and out must be device pointers, not null");
  std::lock_guard lock(impl_->mutex);
  Impl::DeviceState& state = impl_->device_state(-1);
  Impl::ProblemState& problem = impl_->problem_state(shape, state);
  const bool reads_prepared = problem.space->weight_prep() != WeightPrep::kNone;
  // Tuned configs may use 16-byte vector or TMA accesses; misaligned views take the
  // universal config of the fallback family, which needs element alignment only and reads w
  // as it is (so a misaligned call needs no prepared weight).
  const bool fallback = misaligned(tensors.x) || misaligned(tensors.w) || misaligned(tensors.out) ||
                        misaligned(tensors.bias) || (reads_prepared && misaligned(tensors.prepared_weight));
  if (reads_prepared && !fallback && !tensors.prepared_weight)
    throw UsageError("config " + problem.resolution.config.name +
                     " reads a prepared weight: allocate prepared_weight_bytes(), call prepare_weight() once per "
                     "weight and pass it as prepared_weight");
  Impl::PreparedLaunch& launch =
      fallback ? impl_->fallback_launch(problem, shape, state) : impl_->tuned_launch(problem, shape, state);
  LaunchOperands operands;
  operands.x = tensors.x;
  operands.w = tensors.w;
  // Only a config that reads it sees the prepared weight, so a caller's leftover pointer
  // never makes the cached plan look stale.
  operands.prepared_w = launch.plans.spec().weight_prep != WeightPrep::kNone ? tensors.prepared_weight : nullptr;
  operands.bias = tensors.bias;
  operands.out = tensors.out;
  operands.scale = tensors.scale;
  if (const std::int64_t bytes = launch.plans.spec().workspace_bytes; bytes > 0) {
    const DeviceBuffer& workspace = Impl::workspace_for(state, stream, std::size_t(bytes));
    operands.workspace = workspace.get();
    operands.workspace_bytes = workspace.bytes();
  }
  FUSETUNE_CUDA_CHECK(launch.kernel->launch(launch.plans.plan(operands, state.maps), stream));
}

}  // namespace fusetune
