// Helper kernels of the verifier and baseline (see reference_kernels.h). Compiled by nvcc
// into the library; the tuned kernels themselves go through NVRTC.
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

__global__ void epilogue_f32_kernel(float* z, const float* bias, float scale, long long m, long long n) {
  const long long count = m * n;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x) {
    float value = z[i] + (bias ? bias[i % n] : 0.0f);
    // Written like torch.sigmoid: saturates to exactly 0 or 1, NaN propagates.
    const float sigmoid = 1.0f / (1.0f + expf(-value));
    z[i] = value + scale * sigmoid;
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

__global__ void widen_kernel(const float* src, double* dst, std::size_t count) {
  for (std::size_t i = blockIdx.x * (std::size_t)blockDim.x + threadIdx.x; i < count;
       i += (std::size_t)gridDim.x * blockDim.x)
    dst[i] = src[i];
}

/// Per-block partial sums of the comparison; the host adds the blocks up.
struct ComparePartial {
  double sum_sq_diff;
  double sum_sq_ref;
  double max_abs;
  unsigned long long violations;
  unsigned long long non_finite;
};

__global__ void compare_kernel(const float* out, const double* ref, std::size_t count, double atol, double rtol,
                               ComparePartial* partials) {
  __shared__ ComparePartial shared[kThreads];
  ComparePartial mine{0, 0, 0, 0, 0};
  for (std::size_t i = blockIdx.x * (std::size_t)blockDim.x + threadIdx.x; i < count;
       i += (std::size_t)gridDim.x * blockDim.x) {
    const double expected = ref[i];
    const double actual = out[i];
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

void launch_epilogue_f32(float* z, const float* bias, float scale, long long m, long long n, cudaStream_t stream) {
  epilogue_f32_kernel<<<blocks_for(m * n), kThreads, 0, stream>>>(z, bias, scale, m, n);
  FUSETUNE_CUDA_CHECK(cudaGetLastError());
}

void launch_epilogue_f64(double* z, const float* bias, double scale, long long m, long long n, cudaStream_t stream) {
  epilogue_f64_kernel<<<blocks_for(m * n), kThreads, 0, stream>>>(z, bias, scale, m, n);
  FUSETUNE_CUDA_CHECK(cudaGetLastError());
}

void launch_widen(const float* src, double* dst, std::size_t count, cudaStream_t stream) {
  widen_kernel<<<blocks_for(count), kThreads, 0, stream>>>(src, dst, count);
  FUSETUNE_CUDA_CHECK(cudaGetLastError());
}

ComparisonTotals compare_to_reference(const float* out, const double* ref, std::size_t count, double atol, double rtol,
                                      cudaStream_t stream) {
  const int blocks = blocks_for(count) < 1024 ? blocks_for(count) : 1024;
  ComparePartial* partials = nullptr;
  FUSETUNE_CUDA_CHECK(cudaMallocAsync(&partials, sizeof(ComparePartial) * blocks, stream));
  compare_kernel<<<blocks, kThreads, 0, stream>>>(out, ref, count, atol, rtol, partials);
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

}  // namespace fusetune
