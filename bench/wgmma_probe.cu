// Development probe of kernel_templates/wgmma_gemm.cuh, outside the tuner: a handful of
// configs of each operand kind, compiled by nvcc, checked against a float64 reference
// (cuBLAS DGEMM + epilogue) and timed against cuBLAS in the same process.
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I kernel_templates \
//        bench/wgmma_probe.cu -lcublas -o wgmma_probe
//   ./wgmma_probe [M N K]
// Each config is timed in five pairs (cuBLAS, then the config; 20 back-to-back launches each,
// no L2 flush) and the median of the five ratios is printed, so slow drifts of the GPU's clock
// cancel. The tuner flushes L2 before every sample; the two regimes can rank close configs
// differently (bench/RESULTS.md, session 10), and the tuner is the real measurement.
// SUSTAIN=1 also runs each config and its baseline back to back for a second, twice, while
// NVML samples the SM clock, power and clock-event reasons (bench/sustain.h).
// PROBE_ONCE=1 launches each config and its baseline once, for Nsight Compute. FLUSH=1 times
// as the tuner does: a memset of twice the L2 before every launch, one launch per sample.
// A/B against an earlier version of the template: copy wgmma_gemm.cuh and wgmma_ops.cuh
// somewhere, rename their namespace wgmma to wgmma_old (wgmma_gemm.cuh must then include the
// renamed ops copy), cut fusetune_prepare_weight, and add -DFUSETUNE_PROBE_OLD='"path"': the
// configs marked kOld then run it.
#include <cublas_v2.h>
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "sustain.h"
#include "wgmma_gemm.cuh"
#ifdef FUSETUNE_PROBE_OLD
// A/B runs: FUSETUNE_PROBE_OLD names a copy of the template from before a change, with its
// namespace renamed to wgmma_old (and fusetune_prepare_weight cut), timed in the same process.
#include FUSETUNE_PROBE_OLD
#endif

#define CHECK(call)                                                                        \
  do {                                                                                     \
    cudaError_t status_ = (call);                                                          \
    if (status_ != cudaSuccess) {                                                          \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(status_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)
#define CHECK_CUBLAS(call)                                                         \
  do {                                                                             \
    cublasStatus_t status_ = (call);                                               \
    if (status_ != CUBLAS_STATUS_SUCCESS) {                                        \
      std::fprintf(stderr, "%s:%d cublas %d\n", __FILE__, __LINE__, int(status_)); \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

using fusetune::HopperLinearArgs;

// Two kernels: a __cluster_dims__ attribute, even (1, 1, 1), makes every launch a cluster launch.
template <int kOperand, int kTileM, int kTileN, int kStages, int kConsumers, int kPersistent, int kRaster, int kGroup,
          int kPromote, int kPingpong, int kStoreBuffers = 2, int kSplitN = 0, int kTrim = 0>
__global__ void __launch_bounds__(128 * (kConsumers + 1), 1)
    probe_kernel(const __grid_constant__ HopperLinearArgs args) {
  fusetune::wgmma::fused_linear<kOperand, kTileM, kTileN, kStages, kConsumers, kPersistent, kRaster, kGroup, kPromote,
                                1, kPingpong, kStoreBuffers, kSplitN, kTrim>(args);
}
#ifdef FUSETUNE_PROBE_OLD
template <int kOperand, int kTileM, int kTileN, int kStages, int kConsumers, int kPersistent, int kRaster, int kGroup,
          int kPromote, int kPingpong, int kStoreBuffers, int kSplitN = 0>
__global__ void __launch_bounds__(128 * (kConsumers + 1), 1)
    probe_kernel_old(const __grid_constant__ HopperLinearArgs args) {
  fusetune::wgmma_old::fused_linear<kOperand, kTileM, kTileN, kStages, kConsumers, kPersistent, kRaster, kGroup,
                                    kPromote, 1, kPingpong, kStoreBuffers, kSplitN>(args);
}
#endif
template <int kOperand, int kTileM, int kTileN, int kStages, int kConsumers, int kPersistent, int kRaster, int kGroup,
          int kPromote, int kPingpong, int kStoreBuffers = 2, int kSplitN = 0>
__global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(128 * (kConsumers + 1), 1)
    probe_kernel_cluster2(const __grid_constant__ HopperLinearArgs args) {
  fusetune::wgmma::fused_linear<kOperand, kTileM, kTileN, kStages, kConsumers, kPersistent, kRaster, kGroup, kPromote,
                                2, kPingpong, kStoreBuffers, kSplitN>(args);
}

__global__ void widen_bf16(const unsigned short* in, double* out, float* out32, long long count) {
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < count; i += gridDim.x * 256ll) {
    const float v = __uint_as_float(unsigned(in[i]) << 16);
    out[i] = v;
    if (out32) out32[i] = v;
  }
}
__global__ void widen_f32(const float* in, double* out, long long count) {
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < count; i += gridDim.x * 256ll) out[i] = in[i];
}
__global__ void epilogue_f64(double* z, const double* bias, double scale, int m, int n) {
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < (long long)m * n; i += gridDim.x * 256ll) {
    const double v = z[i] + bias[i % n];
    z[i] = v + scale / (1.0 + exp(-v));
  }
}
__global__ void error_terms(const void* out, int is_bf16, const double* ref, long long count, double* sums) {
  double num = 0, den = 0;
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < count; i += gridDim.x * 256ll) {
    const double v = is_bf16 ? double(__uint_as_float(unsigned(((const unsigned short*)out)[i]) << 16))
                             : double(((const float*)out)[i]);
    const double d = v - ref[i];
    num += (v == v) ? d * d : 1e30;
    den += ref[i] * ref[i];
  }
  atomicAdd(&sums[0], num);
  atomicAdd(&sums[1], den);
}

static PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  if (!fn) {
    cudaDriverEntryPointQueryResult query;
    CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", reinterpret_cast<void**>(&fn), 12000,
                                           cudaEnableDefault, &query));
    if (query != cudaDriverEntryPointSuccess) std::exit(2);
  }
  return fn;
}

static fusetune::TensorMapParam make_map(const void* base, int rows, int k, int elem_bytes, int box_rows,
                                         bool tf32 = false) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {cuuint64_t(k), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(k) * elem_bytes};
  const cuuint32_t box[2] = {cuuint32_t(128 / elem_bytes), cuuint32_t(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult result =
      encode_tiled()(&map,
                     elem_bytes == 2 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                     : tf32          ? CU_TENSOR_MAP_DATA_TYPE_TFLOAT32
                                     : CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
                     2, const_cast<void*>(base), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                     CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS) {
    std::fprintf(stderr, "cuTensorMapEncodeTiled failed: %d\n", int(result));
    std::exit(1);
  }
  fusetune::TensorMapParam param;
  std::memcpy(&param, &map, sizeof(map));
  return param;
}

struct Problem {
  int m, n, k;
  void *x16, *w16, *b16, *x32, *w32, *b32, *wprep, *out;
  double* ref;    ///< float64 reference of the bf16 inputs
  double* ref32;  ///< float64 reference of the fp32 inputs (full fp32 mantissas, so TF32 rounding shows)
  double* sums;
  int sms;
  void* workspace;  ///< stream-K partials and flags, zeroed once; large enough for every probe config
};
constexpr long long kProbeWorkspaceBytes = fusetune::stream_k_workspace_bytes(132, 256, 256);

/// FLUSH=1: the tuner's regime instead: before each of `reps` launches, a memset of twice the
/// L2 (outside the timed region), and the median of the per-launch event times.
static float time_flushed_ms(const std::function<void()>& launch, int reps) {
  static void* flush = nullptr;
  static size_t flush_bytes = 0;
  if (!flush) {
    int l2 = 0;
    CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    flush_bytes = 2 * size_t(l2);
    CHECK(cudaMalloc(&flush, flush_bytes));
  }
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> times;
  for (int i = 0; i < reps + 2; ++i) {
    CHECK(cudaMemsetAsync(flush, i & 0xff, flush_bytes));
    CHECK(cudaEventRecord(a));
    launch();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    if (i >= 2) times.push_back(ms);  // the first two warm up
  }
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

static float time_ms(const std::function<void()>& launch, int reps = 20) {
  if (std::getenv("FLUSH")) return time_flushed_ms(launch, reps);
  for (int i = 0; i < 3; ++i) launch();
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  CHECK(cudaEventRecord(a));
  for (int i = 0; i < reps; ++i) launch();
  CHECK(cudaEventRecord(b));
  CHECK(cudaEventSynchronize(b));
  float ms;
  CHECK(cudaEventElapsedTime(&ms, a, b));
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  return ms / reps;
}

static double rel_error(const Problem& p, int is_bf16) {
  CHECK(cudaMemset(p.sums, 0, 16));
  error_terms<<<264, 256>>>(p.out, is_bf16, is_bf16 ? p.ref : p.ref32, (long long)p.m * p.n, p.sums);
  double sums[2];
  CHECK(cudaMemcpy(sums, p.sums, 16, cudaMemcpyDeviceToHost));
  return std::sqrt(sums[0] / sums[1]);
}

/// Which template and which TF32 operands: kNew the current template (TF32: x and w through
/// TFLOAT32 maps, TMA rounds), kNewTruncating the current template with plain FLOAT32 maps (the
/// tensor cores truncate: shows whether TMA's rounding happened), kOld the FUSETUNE_PROBE_OLD
/// copy (the same operands as kNew), kNewRegisterStores the current template with out_tma = 0
/// (the epilogue stores from registers).
enum Variant { kNew, kNewTruncating, kOld, kNewRegisterStores };

template <int kOperand, int kTileM, int kTileN, int kStages, int kConsumers, int kPersistent, int kRaster, int kGroup,
          int kPromote, int kClusterM = 1, int kPingpong = 0, Variant kVariant = kNew, int kStoreBuffers = 2,
          int kSplitN = 0, int kTrim = 0>
void run_config(const Problem& p, const std::function<void()>& baseline, const char* label) {
  constexpr bool bf16 = kOperand == fusetune::kOperandBf16;
  constexpr int elem = bf16 ? 2 : 4;
  constexpr int weight_tiles = kOperand == fusetune::kOperandTf32x3 ? 2 : 1;
  const int smem = kStages * 128 * (kTileM + weight_tiles * kTileN) + 2048 +
                   kConsumers * kStoreBuffers * fusetune::wgmma::kStoreBoxBytes;
  auto kernel = [] {  // only the kernel of the config's cluster size is instantiated
    if constexpr (kClusterM == 1)
      return probe_kernel<kOperand, kTileM, kTileN, kStages, kConsumers, kPersistent, kRaster, kGroup, kPromote,
                          kPingpong, kStoreBuffers, kSplitN, kTrim>;
    else
      return probe_kernel_cluster2<kOperand, kTileM, kTileN, kStages, kConsumers, kPersistent, kRaster, kGroup,
                                   kPromote, kPingpong, kStoreBuffers, kSplitN>;
  }();
#ifdef FUSETUNE_PROBE_OLD
  if constexpr (kVariant == kOld)
    kernel = probe_kernel_old<kOperand, kTileM, kTileN, kStages, kConsumers, kPersistent, kRaster, kGroup, kPromote,
                              kPingpong, kStoreBuffers, kSplitN>;
#else
  if (kVariant == kOld) return;  // no old template compiled in (-DFUSETUNE_PROBE_OLD='"path"')
#endif
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  HopperLinearArgs args{};
  // 3xTF32 reads the prepared weight; TF32 reads w through TFLOAT32 maps.
  const bool tma_rounds = kOperand == fusetune::kOperandTf32 && kVariant != kNewTruncating;
  const void* w = bf16 ? p.w16 : kOperand == fusetune::kOperandTf32 ? p.w32 : p.wprep;
  args.x_map = make_map(bf16 ? p.x16 : p.x32, p.m, p.k, elem, kTileM, tma_rounds);
  args.w_map = make_map(w, p.n, p.k, elem, kTileN / kClusterM, tma_rounds);
  args.w_small_map =
      kOperand == fusetune::kOperandTf32x3
          ? make_map(static_cast<const float*>(p.wprep) + (long long)p.n * p.k, p.n, p.k, elem, kTileN / kClusterM)
          : args.w_map;
  args.bias = bf16 ? p.b16 : p.b32;
  args.out = p.out;
  args.m = p.m;
  args.n = p.n;
  args.k = p.k;
  args.scale = 2.0f;
  const int out_elem = bf16 ? 2 : 4;
  args.out_tma = kVariant != kNewRegisterStores && (long long)p.n * out_elem % 16 == 0;
  if (args.out_tma) args.out_map = make_map(p.out, p.m, p.n, out_elem, fusetune::kStoreBoxRows);
  // Tile columns as TileColumns counts them (kTrim: one more, at most as many as narrow ones need).
  const int columns =
      std::min((p.n + kTileN - 1) / kTileN + (kTrim > 0), (p.n + kTileN - kTrim - 1) / (kTileN - kTrim));
  const int tiles = ((p.m + kClusterM * kTileM - 1) / (kClusterM * kTileM)) * columns;
  int clusters = p.sms;
  if (kClusterM > 1) {
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(2 * tiles);
    config.blockDim = dim3(128 * (kConsumers + 1));
    config.dynamicSmemBytes = smem;
    CHECK(cudaOccupancyMaxActiveClusters(&clusters, kernel, &config));
  }
  const long long k_blocks = (p.k + (128 / elem) - 1) / (128 / elem);
  // Stream-K (persistent 2): teams of kGroup blocks, as many as fit one block per SM (and at
  // most one per k-block of work).
  const int tiles_m = (p.m + kTileM - 1) / kTileM, tiles_n = (p.n + kTileN - 1) / kTileN;
  const int major = kRaster == 0 ? tiles_m : tiles_n, minor = kRaster == 0 ? tiles_n : tiles_m;
  const long long stripes = (long long)(major + kGroup - 1) / kGroup * minor;
  const int grid = kPersistent == 2
                       ? int(std::min<long long>(std::max(1, p.sms / kGroup), stripes * k_blocks)) * kGroup
                       : (kPersistent ? std::min(tiles, std::min(clusters, p.sms / kClusterM)) : tiles) * kClusterM;
  if constexpr (kPersistent == 2) {
    static_assert(kClusterM == 1, "stream-K without clusters");
    if (fusetune::stream_k_workspace_bytes(grid, kTileM, kTileN) > kProbeWorkspaceBytes) std::exit(3);
    args.partial_flags = static_cast<int*>(p.workspace);
    args.partials = reinterpret_cast<float*>(static_cast<char*>(p.workspace) + fusetune::kStreamKFlagsBytes);
  }
  if (kClusterM > 1) std::printf("   (max active clusters %d, grid %d)\n", clusters, grid);
  auto launch = [&] {
    // Stream-K: the flags are zeroed before every launch, as fusetune's launcher does.
    if (kPersistent == 2) CHECK(cudaMemsetAsync(args.partial_flags, 0, size_t(grid) * kConsumers * 4));
    kernel<<<grid, 128 * (kConsumers + 1), smem>>>(args);
  };
  CHECK(cudaMemset(p.out, 0xff, (size_t)p.m * p.n * elem));
  launch();
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  const double error = rel_error(p, bf16);
  if (std::getenv("PROBE_ONCE")) {  // one launch of each, for ncu
    baseline();
    CHECK(cudaDeviceSynchronize());
    std::printf("%s rel err %.3e\n", label, error);
    return;
  }
  // Interleaved: the baseline, then this config, five times; the median of the five ratios.
  // (The error is checked again after these launches, which shared any stream-K workspace.)
  std::vector<double> ratios;
  float ms = 0;
  for (int i = 0; i < 5; ++i) {
    const float base = time_ms(baseline);
    ms = time_ms(launch);
    ratios.push_back(ms / base);
  }
  std::sort(ratios.begin(), ratios.end());
  const double error_after = rel_error(p, bf16);
  std::printf(
      "%-16s m%d n%d s%d c%d p%d r%d g%d pr%d cl%d pp%d sb%d sn%d tr%d  %8.4f ms  ratio median %.3f (min %.3f max "
      "%.3f)  "
      "rel err %.3e / %.3e\n",
      label, kTileM, kTileN, kStages, kConsumers, kPersistent, kRaster, kGroup, kPromote, kClusterM, kPingpong,
      kStoreBuffers, kSplitN, kTrim, ms, ratios[2], ratios[0], ratios[4], error, error_after);
  if (std::getenv("SUSTAIN"))
    for (int i = 0; i < 2; ++i) {
      print_sustained("cuBLAS", sustain(baseline, 1.0));
      print_sustained(label, sustain(launch, 1.0));
    }
}

int main(int argc, char** argv) {
  int m = 1024, n = 8192, k = 8192;
  if (argc == 4) {
    m = std::atoi(argv[1]);
    n = std::atoi(argv[2]);
    k = std::atoi(argv[3]);
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Problem p{m, n, k};
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  p.sms = prop.multiProcessorCount;
  std::printf("%s, %d SMs, problem %dx%dx%d\n", prop.name, p.sms, m, n, k);
  const long long mk = (long long)m * k, nk = (long long)n * k, mn = (long long)m * n;
  // Inputs: x ~ U[0,1), w, b ~ U(-1/sqrt(k), 1/sqrt(k)) as torch.rand and nn.Linear draw them:
  // exactly bf16-representable for the bf16 runs, full fp32 mantissas for the fp32 runs (so
  // that TF32 rounding versus truncation shows in the error). Each has its float64 reference.
  std::vector<unsigned short> hx(mk), hw(nk), hb(n);
  std::vector<float> fx(mk), fw(nk), fb(n);
  unsigned long long state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return float((state >> 40) & 0xffffff) / 16777216.0f;
  };
  auto bf16_bits = [](float v) { return (unsigned short)(__builtin_bit_cast(unsigned, v) >> 16); };
  const float bound = 1.0f / std::sqrt(float(k));
  for (auto& v : hx) v = bf16_bits(next());
  for (auto& v : hw) v = bf16_bits((2 * next() - 1) * bound);
  for (auto& v : hb) v = bf16_bits((2 * next() - 1) * bound);
  for (auto& v : fx) v = next();
  for (auto& v : fw) v = (2 * next() - 1) * bound;
  for (auto& v : fb) v = (2 * next() - 1) * bound;
  CHECK(cudaMalloc(&p.x16, mk * 2));
  CHECK(cudaMalloc(&p.w16, nk * 2));
  CHECK(cudaMalloc(&p.b16, n * 2));
  CHECK(cudaMalloc(&p.x32, mk * 4));
  CHECK(cudaMalloc(&p.w32, nk * 4));
  CHECK(cudaMalloc(&p.b32, n * 4));
  CHECK(cudaMalloc(&p.wprep, nk * 8));
  CHECK(cudaMalloc(&p.out, mn * 4));
  CHECK(cudaMalloc(&p.ref, mn * 8));
  CHECK(cudaMalloc(&p.ref32, mn * 8));
  CHECK(cudaMalloc(&p.sums, 16));
  CHECK(cudaMalloc(&p.workspace, kProbeWorkspaceBytes));
  CHECK(cudaMemset(p.workspace, 0, kProbeWorkspaceBytes));
  CHECK(cudaMemcpy(p.x16, hx.data(), mk * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(p.w16, hw.data(), nk * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(p.b16, hb.data(), n * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(p.x32, fx.data(), mk * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(p.w32, fw.data(), nk * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(p.b32, fb.data(), n * 4, cudaMemcpyHostToDevice));
  double *x64, *w64, *b64;
  CHECK(cudaMalloc(&x64, mk * 8));
  CHECK(cudaMalloc(&w64, nk * 8));
  CHECK(cudaMalloc(&b64, n * 8));
  cublasHandle_t cublas;
  CHECK_CUBLAS(cublasCreate(&cublas));
  const double one = 1, zero = 0;
  widen_bf16<<<1024, 256>>>((unsigned short*)p.x16, x64, nullptr, mk);
  widen_bf16<<<1024, 256>>>((unsigned short*)p.w16, w64, nullptr, nk);
  widen_bf16<<<64, 256>>>((unsigned short*)p.b16, b64, nullptr, n);
  CHECK_CUBLAS(cublasDgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w64, k, x64, k, &zero, p.ref, n));
  epilogue_f64<<<1024, 256>>>(p.ref, b64, 2.0, m, n);
  widen_f32<<<1024, 256>>>((const float*)p.x32, x64, mk);
  widen_f32<<<1024, 256>>>((const float*)p.w32, w64, nk);
  widen_f32<<<64, 256>>>((const float*)p.b32, b64, n);
  CHECK_CUBLAS(cublasDgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w64, k, x64, k, &zero, p.ref32, n));
  epilogue_f64<<<1024, 256>>>(p.ref32, b64, 2.0, m, n);
  CHECK(cudaDeviceSynchronize());
  fusetune_prepare_weight<<<1024, 256>>>(fusetune::WeightPrepArgs{(const float*)p.w32, (float*)p.wprep, nk});
  CHECK(cudaDeviceSynchronize());

  // The baselines: cuBLAS's GEMM alone, in each operand kind (cuBLAS's errors are not checked here).
  const float onef = 1, zerof = 0;
  auto cublas_bf16 = [&] {
    cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &onef, p.w16, CUDA_R_16BF, k, p.x16, CUDA_R_16BF, k, &zerof,
                 p.out, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  auto cublas_tf32 = [&] {
    cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &onef, p.w32, CUDA_R_32F, k, p.x32, CUDA_R_32F, k, &zerof,
                 p.out, CUDA_R_32F, n, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
  };
  auto cublas_sgemm = [&] {
    cublasSgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &onef, (float*)p.w32, k, (float*)p.x32, k, &zerof,
                (float*)p.out, n);
  };
  if (!std::getenv("PROBE_ONCE")) {
    const float bf16_ms = time_ms(cublas_bf16), tf32_ms = time_ms(cublas_tf32), sgemm_ms = time_ms(cublas_sgemm);
    CHECK(cudaDeviceSynchronize());
    std::printf("cuBLAS bf16 %.4f ms (%.1f TF), TF32 %.4f ms, SGEMM %.4f ms\n", bf16_ms,
                2.0 * m * n * (double)k / (bf16_ms * 1e9), tf32_ms, sgemm_ms);
  }

  using namespace fusetune;
  // Session 16: the halved-bias epilogue (A/B between builds: the old template first on the
  // include path).
  for (int round = 0; round < 3; ++round) {
    std::printf("-- round %d: bf16 against cuBLAS bf16 alone\n", round);
    run_config<kOperandBf16, 128, 256, 4, 2, 1, 0, 8, 0, 1, 0, kNew, 2, 1, 0>(p, cublas_bf16, "tr0");
    run_config<kOperandBf16, 128, 256, 4, 2, 1, 0, 8, 0, 1, 0, kNew, 2, 1, 8>(p, cublas_bf16, "tr8");
  }
  std::printf("-- TF32 against cuBLAS TF32 alone\n");
  run_config<kOperandTf32, 128, 256, 4, 2, 1, 0, 16, 0, 1, 0, kNew, 0, 1, 0>(p, cublas_tf32, "tf32");
  std::printf("-- 3xTF32 against cuBLAS SGEMM alone\n");
  run_config<kOperandTf32x3, 128, 128, 3, 2, 1, 1, 1, 4, 1, 0, kNew, 0, 0, 0>(p, cublas_sgemm, "3xtf32");
  return 0;
}
