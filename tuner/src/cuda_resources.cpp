// Creation of CUDA handles and the device query.
#include "cuda_resources.h"

namespace fusetune {

namespace detail {
void throw_cuda_error(const char* call, const std::string& what, const char* file, int line) {
  throw CudaError(std::string(call) + " failed: " + what + " (" + file + ":" + std::to_string(line) + ")");
}
}  // namespace detail

Stream make_stream() {
  cudaStream_t stream = nullptr;
  FUSETUNE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return Stream(stream);
}

Event make_event() {
  cudaEvent_t event = nullptr;
  FUSETUNE_CUDA_CHECK(cudaEventCreate(&event));
  return Event(event);
}

CublasHandle make_cublas() {
  cublasHandle_t handle = nullptr;
  FUSETUNE_CUBLAS_CHECK(cublasCreate(&handle));
  return CublasHandle(handle);
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  FUSETUNE_CUDA_CHECK(cudaMalloc(&data_, bytes == 0 ? 1 : bytes));
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) (void)cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) (void)cudaFree(data_);
}

std::string nvrtc_version() {
  int major = 0, minor = 0;
  FUSETUNE_NVRTC_CHECK(nvrtcVersion(&major, &minor));
  return std::to_string(major) + "." + std::to_string(minor);
}

DeviceInfo query_device(int ordinal) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaErrorInsufficientDriver || status == cudaErrorNoDevice || count == 0)
    throw CudaError(std::string("no usable CUDA GPU: ") + cudaGetErrorString(status) +
                    "; run on a machine with an NVIDIA GPU and driver (`fusetune check` needs none)");
  FUSETUNE_CUDA_CHECK(status);
  if (ordinal < 0 || ordinal >= count)
    throw CudaError("device " + std::to_string(ordinal) + " does not exist; this machine has " + std::to_string(count) +
                    " (use --device 0.." + std::to_string(count - 1) + ")");
  FUSETUNE_CUDA_CHECK(cudaSetDevice(ordinal));
  cudaDeviceProp props{};
  FUSETUNE_CUDA_CHECK(cudaGetDeviceProperties(&props, ordinal));
  int smem_optin = 0, driver = 0;
  FUSETUNE_CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, ordinal));
  FUSETUNE_CUDA_CHECK(cudaDriverGetVersion(&driver));

  DeviceInfo info;
  info.ordinal = ordinal;
  info.fingerprint.name = props.name;
  info.fingerprint.cc_major = props.major;
  info.fingerprint.cc_minor = props.minor;
  info.fingerprint.sm_count = props.multiProcessorCount;
  info.fingerprint.l2_bytes = props.l2CacheSize;
  info.fingerprint.driver_version = driver;
  info.fingerprint.nvrtc_version = nvrtc_version();
  info.limits.cc_major = props.major;
  info.limits.cc_minor = props.minor;
  info.limits.max_threads_per_block = props.maxThreadsPerBlock;
  info.limits.max_smem_per_block = smem_optin;
  info.limits.sm_count = props.multiProcessorCount;
  const int cc = props.major * 10 + props.minor;
  // Arch-specific targets (sm_90a) unlock wgmma/setmaxnreg; only Hopper needs them here.
  info.arch = "sm_" + std::to_string(cc) + (cc == 90 ? "a" : "");
  return info;
}

}  // namespace fusetune
