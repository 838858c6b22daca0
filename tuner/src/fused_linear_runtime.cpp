// The load-time path (see fusetune/fused_linear.h): ConfigResolver logic plus a per-device
// cache of loaded kernels. Compiles through the same Compiler as the tuner.
#include <cuda_runtime.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>

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

std::string shape_key(const ProblemShape& shape) {
  return shape.dims() + "/" + std::string(to_string(shape.dtype)) + "/" + std::string(to_string(shape.policy));
}

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

  /// What one device needs: its identity, a compiler for its arch, loaded kernels, maps.
  struct DeviceState {
    DeviceInfo info;
    std::unique_ptr<Compiler> compiler;
    std::map<std::string, Resolution> resolutions;  ///< by shape key
    std::map<std::string, LoadedKernel> kernels;    ///< by config name
    TensorMapCache maps;                            ///< encoded once per (pointer, shape, box)
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

  Resolution resolve(const ProblemShape& shape, DeviceState& state) {
    const std::string key = shape_key(shape);
    auto cached = state.resolutions.find(key);
    if (cached != state.resolutions.end()) return cached->second;
    Resolution resolution = resolver->resolve(shape, state.info.fingerprint, state.info.limits);
    state.resolutions.emplace(key, resolution);
    return resolution;
  }

  const SearchSpace& space_of(const KernelConfig& config) {
    const SearchSpace* space = resolver->space_for(config.family);
    if (!space) throw DataError("this build has no search space for family '" + config.family + "'");
    return *space;
  }

  LoadedKernel& kernel_for(const KernelConfig& config, DeviceState& state) {
    auto found = state.kernels.find(config.name);
    if (found != state.kernels.end()) return found->second;
    const CompileOutput compiled = state.compiler->compile(generate_source(space_of(config), config));
    if (!compiled.ok) throw CudaError("kernel " + config.name + " failed to compile: " + compiled.log.substr(0, 500));
    return state.kernels.emplace(config.name, LoadedKernel::load(compiled.cubin)).first->second;
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
  return impl_->resolve(shape, impl_->device_state(device));
}

std::size_t FusedLinearRuntime::prepared_weight_bytes(const ProblemShape& shape) {
  check_shape(shape);
  std::lock_guard lock(impl_->mutex);
  const Resolution resolution = impl_->resolve(shape, impl_->device_state(-1));
  return fusetune::prepared_weight_bytes(impl_->space_of(resolution.config).weight_prep(), shape);
}

void FusedLinearRuntime::prepare_weight(const ProblemShape& shape, const void* w, void* prepared, CudaStream stream) {
  check_shape(shape);
  std::lock_guard lock(impl_->mutex);
  Impl::DeviceState& state = impl_->device_state(-1);
  const Resolution resolution = impl_->resolve(shape, state);
  const SearchSpace& space = impl_->space_of(resolution.config);
  if (space.weight_prep() == WeightPrep::kNone) return;
  if (!w || !prepared) throw UsageError("prepare_weight needs the device pointers of w and of the prepared buffer");
  if (misaligned(prepared))
    throw UsageError("the prepared weight buffer must be 16-byte aligned (TMA reads it); allocate it on its own");
  LoadedKernel& kernel = impl_->kernel_for(resolution.config, state);
  FUSETUNE_CUDA_CHECK(kernel.prepare_weight(space.weight_prep(), shape, w, prepared, stream));
}

void FusedLinearRuntime::run(const ProblemShape& shape, const FusedLinearTensors& tensors, CudaStream stream) {
  check_shape(shape);
  if (!tensors.x || !tensors.w || !tensors.out) throw UsageError("x, w and out must be device pointers, not null");
  std::lock_guard lock(impl_->mutex);
  Impl::DeviceState& state = impl_->device_state(-1);
  Resolution resolution = impl_->resolve(shape, state);
  const SearchSpace* space = &impl_->space_of(resolution.config);
  if (space->weight_prep() != WeightPrep::kNone && !tensors.prepared_weight)
    throw UsageError("config " + resolution.config.name +
                     " reads a prepared weight: allocate prepared_weight_bytes(), call prepare_weight() once per "
                     "weight and pass it as prepared_weight");
  // Tuned configs may use 16-byte vector or TMA accesses; misaligned views take the
  // universal config of the fallback family, which needs element alignment only.
  if (misaligned(tensors.x) || misaligned(tensors.w) || misaligned(tensors.out) || misaligned(tensors.bias) ||
      (space->weight_prep() != WeightPrep::kNone && misaligned(tensors.prepared_weight))) {
    resolution = impl_->resolver->universal(shape);
    space = &impl_->space_of(resolution.config);
  }
  LoadedKernel& kernel = impl_->kernel_for(resolution.config, state);
  const LaunchSpec spec = make_launch_spec(*space, resolution.config, shape, state.info.limits);
  LaunchOperands operands;
  operands.x = tensors.x;
  operands.w = tensors.w;
  operands.prepared_w = tensors.prepared_weight;
  operands.bias = tensors.bias;
  operands.out = tensors.out;
  operands.scale = tensors.scale;
  const LaunchPlan plan = make_launch_plan(spec, shape, operands, state.maps);
  FUSETUNE_CUDA_CHECK(kernel.launch(plan, stream));
}

}  // namespace fusetune
