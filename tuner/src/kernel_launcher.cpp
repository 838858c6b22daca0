// Loading cubins with the runtime's library API (no link-time libcuda dependency) and
// launching them with the dynamic shared memory their config needs.
#include "kernel_launcher.h"

#include "source_generator.h"

namespace fusetune {

LoadedKernel LoadedKernel::load(const std::string& cubin) {
  LoadedKernel kernel;
  cudaLibrary_t library = nullptr;
  FUSETUNE_CUDA_CHECK(cudaLibraryLoadData(&library, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  kernel.library_ = Library(library);
  FUSETUNE_CUDA_CHECK(cudaLibraryGetKernel(&kernel.kernel_, library, kKernelSymbol));
  return kernel;
}

cudaError_t LoadedKernel::launch(const LaunchGeometry& geometry, const FusedLinearArgs& args, cudaStream_t stream) {
  const void* function = reinterpret_cast<const void*>(kernel_);
  if (geometry.smem_bytes > smem_limit_set_) {
    // Blocks get more than 48 KB of dynamic shared memory only after opting in.
    const cudaError_t status = cudaFuncSetAttribute(function, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    static_cast<int>(geometry.smem_bytes));
    if (status != cudaSuccess) return status;
    smem_limit_set_ = geometry.smem_bytes;
  }
  FusedLinearArgs arguments = args;
  void* params[] = {&arguments};
  return cudaLaunchKernel(function, dim3(geometry.grid_x, geometry.grid_y, geometry.grid_z), dim3(geometry.threads),
                          params, static_cast<size_t>(geometry.smem_bytes), stream);
}

int LoadedKernel::registers() const {
  cudaFuncAttributes attributes{};
  FUSETUNE_CUDA_CHECK(cudaFuncGetAttributes(&attributes, reinterpret_cast<const void*>(kernel_)));
  return attributes.numRegs;
}

}  // namespace fusetune
