// The load-time path (see fusetune/fused_linear.h): ConfigResolver logic plus a per-device
// cache of loaded kernels. Compiles through the same Compiler as the tuner.
#include <cuda_runtime.h>
#include <sys/stat.h>

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

struct FusedLinearRuntime::Impl {
  RuntimeOptions options;
  std::optional<TuningDb> db;
  std::unique_ptr<ConfigResolver> resolver;
  std::mutex mutex;

  /// What one device needs: its identity, a compiler for its arch, loaded kernels.
  struct DeviceState {
    DeviceInfo info;
    std::unique_ptr<Compiler> compiler;
    std::map<std::string, Resolution> resolutions;  ///< by shape key
    std::map<std::string, LoadedKernel> kernels;    ///< by config name
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
    const std::string key =
        shape.dims() + "/" + std::string(to_string(shape.dtype)) + "/" + std::string(to_string(shape.policy));
    auto cached = state.resolutions.find(key);
    if (cached != state.resolutions.end()) return cached->second;
    Resolution resolution = resolver->resolve(shape, state.info.fingerprint, state.info.limits);
    state.resolutions.emplace(key, resolution);
    return resolution;
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
  std::lock_guard lock(impl_->mutex);
  return impl_->resolve(shape, impl_->device_state(device));
}

void FusedLinearRuntime::run(const ProblemShape& shape, const FusedLinearTensors& tensors, CudaStream stream) {
  if (shape.m < 1 || shape.n < 1 || shape.k < 1 || shape.m > kMaxDimension || shape.n > kMaxDimension ||
      shape.k > kMaxDimension)
    throw UsageError("shape " + shape.dims() + " is out of range; each of M, N, K must be in [1, 2^30]");
  if (!tensors.x || !tensors.w || !tensors.out) throw UsageError("x, w and out must be device pointers, not null");
  std::lock_guard lock(impl_->mutex);
  Impl::DeviceState& state = impl_->device_state(-1);
  Resolution resolution = impl_->resolve(shape, state);
  // Tuned configs may use 16-byte vector accesses; cudaMalloc gives 256-byte alignment,
  // but views into tensors may not: those take the config that needs only 4 bytes.
  const auto misaligned = [](const void* pointer) { return reinterpret_cast<std::uintptr_t>(pointer) % 16 != 0; };
  const SearchSpace* space = impl_->resolver->space_for(resolution.config.family);
  if (misaligned(tensors.x) || misaligned(tensors.w) || misaligned(tensors.out) ||
      (tensors.bias && misaligned(tensors.bias)))
    resolution.config = space->make_config(universal_knobs(resolution.config.family));

  auto found = state.kernels.find(resolution.config.name);
  if (found == state.kernels.end()) {
    const CompileOutput compiled = state.compiler->compile(generate_source(*space, resolution.config));
    if (!compiled.ok)
      throw CudaError("kernel " + resolution.config.name + " failed to compile: " + compiled.log.substr(0, 500));
    found = state.kernels.emplace(resolution.config.name, LoadedKernel::load(compiled.cubin)).first;
  }
  FusedLinearArgs args{tensors.x,    tensors.w,    tensors.bias, tensors.out,
                       int(shape.m), int(shape.n), int(shape.k), tensors.scale};
  FUSETUNE_CUDA_CHECK(found->second.launch(space->launch_geometry(resolution.config, shape), args, stream));
}

}  // namespace fusetune
