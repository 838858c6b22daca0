// Helper kernels of the verifier and baseline (see reference_kernels.h). Compiled by nvcc
// into the library; the tuned kernels themselves go through NVRTC.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <vector>

#include "cuda_check.h"
#include "reference_kernels.h"

namespace fusetune {

namespace {

constexpr int kThreads = 256;

int blocks_for(std::size_t count) {
  const std::size_t blocks = (count + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 * 16 ? (blocks == 0 ? 1 : blocks) : 65535 * 16);
}

/// Conversions between the element types and float (exact widening, round-to-nearest-even).
__device__ __forceinline__ float to_float(float value) { return value; }
__device__ __forceinline__ float to_float(__nv_bfloat16 value) { return __bfloat162float(value); }
__device__ __forceinline__ float to_float(__half value) { return __half2float(value); }
template <typename T>
__device__ __forceinline__ T from_float(float value);
template <>
__device__ __forceinline__ float from_float<float>(float value) {
  return value;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float value) {
  return __float2bfloat16_rn(value);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float value) {
  return __float2half_rn(value);
}

/// The epilogue as PyTorch runs it after its GEMM: z + bias and the sigmoid step in fp32,
/// rounded to T once (PyTorch rounds after each op in bf16; one rounding is the kinder baseline).
template <typename T>
__global__ void epilogue_kernel(T* z, const T* bias, float scale, long long m, long long n) {
  const long long count = m * n;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x) {
    float value = to_float(z[i]) + (bias ? to_float(bias[i % n]) : 0.0f);
    // Written like torch.sigmoid: saturates to exactly 0 or 1, NaN propagates.
    const float sigmoid = 1.0f / (1.0f + expf(-value));
    z[i] = from_float<T>(value + scale * sigmoid);
  }
}

__global__ void epilogue_f64_kernel(double* z, const float* bias, double scale, long long m, long long n) {
  const long long count = m * n;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x) {
    const double value = z[i] + (bias ? double(bias[i % n]) : 0.0);
    z[i] = value + scale * (1.0 / (1.0 + exp(-value)));
  }
}

template <typename T>
__global__ void widen_kernel(const T* src, double* dst, std::size_t count) {
  for (std::size_t i = blockIdx.x * (std::size_t)blockDim.x + threadIdx.x; i < count;
       i += (std::size_t)gridDim.x * blockDim.x)
    dst[i] = to_float(src[i]);
}

/// Per-block partial sums of the comparison; the host adds the blocks up.
struct ComparePartial {
  double sum_sq_diff;
  double sum_sq_ref;
  double max_abs;
  unsigned long long violations;
  unsigned long long non_finite;
};

template <typename T>
__global__ void compare_kernel(const T* out, const double* ref, std::size_t count, double atol, double rtol,
                               ComparePartial* partials) {
  __shared__ ComparePartial shared[kThreads];
  ComparePartial mine{0, 0, 0, 0, 0};
  for (std::size_t i = blockIdx.x * (std::size_t)blockDim.x + threadIdx.x; i < count;
       i += (std::size_t)gridDim.x * blockDim.x) {
    const double expected = ref[i];
    const double actual = to_float(out[i]);
    if (isnan(expected)) {
      if (!isnan(actual)) ++mine.violations;
      continue;
    }
    if (isinf(expected)) {
      if (actual != expected) ++mine.violations;
      continue;
    }
    if (!isfinite(actual)) {
      ++mine.non_finite;
      continue;
    }
    const double diff = fabs(actual - expected);
    mine.sum_sq_diff += diff * diff;
    mine.sum_sq_ref += expected * expected;
    mine.max_abs = fmax(mine.max_abs, diff);
    if (diff > atol + rtol * fabs(expected)) ++mine.violations;
  }
  shared[threadIdx.x] = mine;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      ComparePartial& a = shared[threadIdx.x];
      const ComparePartial& b = shared[threadIdx.x + stride];
      a.sum_sq_diff += b.sum_sq_diff;
      a.sum_sq_ref += b.sum_sq_ref;
      a.max_abs = fmax(a.max_abs, b.max_abs);
      a.violations += b.violations;
      a.non_finite += b.non_finite;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = shared[0];
}

}  // namespace

void launch_epilogue(void* z, const void* bias, ElementKind kind, float scale, long long m, long long n,
                     cudaStream_t stream) {
  const int blocks = blocks_for(m * n);
  switch (kind) {
    case kElementF32:
      epilogue_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<float*>(z), static_cast<const float*>(bias), scale,
                                                       m, n);
      break;
    case kElementBF16:
      epilogue_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<__nv_bfloat16*>(z),
                                                       static_cast<const __nv_bfloat16*>(bias), scale, m, n);
      break;
    case kElementF16:
      epilogue_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<__half*>(z), static_cast<const __half*>(bias), scale,
                                                       m, n);
      break;
  }
  FUSETUNE_CUDA_CHECK(cudaGetLastError());
}

void launch_epilogue_f32(float* z, const float* bias, float scale, long long m, long long n, cudaStream_t stream) {
  launch_epilogue(z, bias, kElementF32, scale, m, n, stream);
}

void launch_epilogue_f64(double* z, const float* bias, double scale, long long m, long long n, cudaStream_t stream) {
  epilogue_f64_kernel<<<blocks_for(m * n), kThreads, 0, stream>>>(z, bias, scale, m, n);
  FUSETUNE_CUDA_CHECK(cudaGetLastError());
}

void launch_widen(const void* src, ElementKind kind, double* dst, std::size_t count, cudaStream_t stream) {
  switch (kind) {
    case kElementF32:
      widen_kernel<<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const float*>(src), dst, count);
      break;
    case kElementBF16:
      widen_kernel<<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(src), dst, count);
      break;
    case kElementF16:
      widen_kernel<<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const __half*>(src), dst, count);
      break;
  }
  FUSETUNE_CUDA_CHECK(cudaGetLastError());
}

void launch_widen(const float* src, double* dst, std::size_t count, cudaStream_t stream) {
  launch_widen(src, kElementF32, dst, count, stream);
}

ComparisonTotals compare_to_reference(const void* out, ElementKind kind, const double* ref, std::size_t count,
                                      double atol, double rtol, cudaStream_t stream) {
  const int blocks = blocks_for(count) < 1024 ? blocks_for(count) : 1024;
  ComparePartial* partials = nullptr;
  FUSETUNE_CUDA_CHECK(cudaMallocAsync(&partials, sizeof(ComparePartial) * blocks, stream));
  switch (kind) {
    case kElementF32:
      compare_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const float*>(out), ref, count, atol, rtol, partials);
      break;
    case kElementBF16:
      compare_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(out), ref, count, atol, rtol,
                                                      partials);
      break;
    case kElementF16:
      compare_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const __half*>(out), ref, count, atol, rtol,
                                                      partials);
      break;
  }
  FUSETUNE_CUDA_CHECK(cudaGetLastError());
  std::vector<ComparePartial> host(blocks);
  FUSETUNE_CUDA_CHECK(
      cudaMemcpyAsync(host.data(), partials, sizeof(ComparePartial) * blocks, cudaMemcpyDeviceToHost, stream));
  FUSETUNE_CUDA_CHECK(cudaFreeAsync(partials, stream));
  FUSETUNE_CUDA_CHECK(cudaStreamSynchronize(stream));
  double sum_sq_diff = 0, sum_sq_ref = 0;
  ComparisonTotals stats;
  for (const auto& partial : host) {
    sum_sq_diff += partial.sum_sq_diff;
    sum_sq_ref += partial.sum_sq_ref;
    stats.max_abs = std::fmax(stats.max_abs, partial.max_abs);
    stats.allclose_violations += static_cast<long long>(partial.violations);
    stats.non_finite += static_cast<long long>(partial.non_finite);
  }
  stats.relative_l2 = sum_sq_ref > 0 ? std::sqrt(sum_sq_diff / sum_sq_ref) : std::sqrt(sum_sq_diff);
  return stats;
}

ComparisonTotals compare_to_reference(const float* out, const double* ref, std::size_t count, double atol, double rtol,
                                      cudaStream_t stream) {
  return compare_to_reference(out, kElementF32, ref, count, atol, rtol, stream);
}

}  // namespace fusetune
