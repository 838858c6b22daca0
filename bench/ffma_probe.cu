// Standalone probe of the FFMA family (kernel_templates/ffma_gemm.cuh) on one GPU: checks a
// few configs on odd shapes against a float64 host reference, then times them at the headline
// shape against cuBLAS SGEMM (no TF32) + a separate epilogue kernel, in the same process.
// Build: nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I kernel_templates bench/ffma_probe.cu
// -lcublas -o ffma_probe Run:   ./ffma_probe [--check-only] [m n k]   (timing shape default 1024 8192 8192;
//        --check-only skips the timing, e.g. under compute-sanitizer; SUSTAIN=1 adds sustained
//        clocks and power, see bench/sustain.h)
// Other configs: -include a file that defines FFMA_PROBE_CONFIGS(X) (same form as below).
// -DFFMA_PROBE_ORDER=1 builds every config with the `order` knob at 1 (column pairs).
// PROBE_ONCE=1 skips the odd-shape checks and the timing: the baseline and each config run once
// at the headline (still checked against the float64 reference), for Nsight Compute.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ffma_gemm.cuh"
#include "sustain.h"

#define PROBE_CUDA(call)                                                                                 \
  do {                                                                                                   \
    cudaError_t e_ = (call);                                                                             \
    if (e_ != cudaSuccess) {                                                                             \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                                      \
    }                                                                                                    \
  } while (0)

#define PROBE_CUBLAS(call)                                                                                    \
  do {                                                                                                        \
    cublasStatus_t s_ = (call);                                                                               \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                        \
      std::fprintf(stderr, "%s:%d: %s failed: status %d\n", __FILE__, __LINE__, #call, static_cast<int>(s_)); \
      std::exit(1);                                                                                           \
    }                                                                                                         \
  } while (0)

// The configs: X(tile_m, tile_n, tile_k, thread_m, thread_n, warp_m, vec, stages, groups), in
// search_spaces/ffma.json's template_args order; each becomes a kernel of exactly the form
// fusetune's SourceGenerator emits. The first six were among the fastest at the headline shape
// on an H100 (2026-11-22, NVRTC sweep of the whole space); then an 8x8 thread tile, the vec 2
// and vec 1 fallbacks, and small tiles for small shapes.
#ifndef FFMA_PROBE_CONFIGS
#define FFMA_PROBE_CONFIGS(X)        \
  X(128, 256, 8, 8, 16, 16, 4, 2, 1) \
  X(128, 256, 8, 8, 16, 4, 4, 2, 1)  \
  X(128, 256, 8, 16, 8, 8, 4, 2, 1)  \
  X(256, 128, 8, 16, 8, 8, 4, 2, 1)  \
  X(128, 128, 8, 16, 8, 8, 4, 2, 2)  \
  X(128, 128, 8, 16, 8, 4, 4, 2, 1)  \
  X(128, 128, 8, 8, 8, 8, 4, 2, 1)   \
  X(128, 256, 8, 8, 16, 16, 2, 2, 1) \
  X(128, 256, 8, 8, 16, 16, 1, 2, 1) \
  X(64, 64, 8, 8, 8, 8, 1, 3, 1)     \
  X(32, 64, 8, 4, 4, 4, 4, 2, 2)     \
  X(32, 64, 8, 4, 4, 4, 1, 2, 1)
#endif

#ifndef FFMA_PROBE_ORDER
#define FFMA_PROBE_ORDER 0
#endif

#define PROBE_NAME(tm, tn, tk, thm, thn, wm, v, st, g) \
  probe_m##tm##_n##tn##_k##tk##_tm##thm##_tn##thn##_w##wm##_v##v##_s##st##_g##g
#define PROBE_THREADS(tm, tn, thm, thn, g) ((g) * ((tm) / (thm)) * ((tn) / (thn)))

#define PROBE_DEFINE_KERNEL(tm, tn, tk, thm, thn, wm, v, st, g)                               \
  extern "C" __global__ void __launch_bounds__(PROBE_THREADS(tm, tn, thm, thn, g))            \
      PROBE_NAME(tm, tn, tk, thm, thn, wm, v, st, g)(const fusetune::FusedLinearArgs args) {  \
    fusetune::ffma::fused_linear<tm, tn, tk, thm, thn, wm, v, st, g, FFMA_PROBE_ORDER>(args); \
  }
FFMA_PROBE_CONFIGS(PROBE_DEFINE_KERNEL)

namespace {

using Kernel = void (*)(const fusetune::FusedLinearArgs);

struct Config {
  const char* name;
  Kernel kernel;
  int tile_m, tile_n, tile_k, thread_m, thread_n, warp_m, vec, stages, groups;
  // Same expressions as search_spaces/ffma.json's derived values.
  int threads() const { return groups * (tile_m / thread_m) * (tile_n / thread_n); }
  int smem_bytes() const { return 4 * groups * stages * tile_k * (tile_m + 4 + tile_n + 4); }
  dim3 grid(int m, int n) const {
    const long long tiles = static_cast<long long>((m + tile_m - 1) / tile_m) * ((n + tile_n - 1) / tile_n);
    return dim3(static_cast<unsigned>((tiles + groups - 1) / groups), 1, 1);
  }
};

#define PROBE_LIST_ENTRY(tm, tn, tk, thm, thn, wm, v, st, g)                       \
  Config{#tm "x" #tn "x" #tk " t" #thm "x" #thn " w" #wm " v" #v " s" #st " g" #g, \
         PROBE_NAME(tm, tn, tk, thm, thn, wm, v, st, g),                           \
         tm,                                                                       \
         tn,                                                                       \
         tk,                                                                       \
         thm,                                                                      \
         thn,                                                                      \
         wm,                                                                       \
         v,                                                                        \
         st,                                                                       \
         g},
const Config kConfigs[] = {FFMA_PROBE_CONFIGS(PROBE_LIST_ENTRY)};

__global__ void epilogue_kernel(float* out, const float* bias, float scale, long long total, int n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    out[i] = fusetune::fused_epilogue(out[i], bias ? bias[i % n] : 0.0f, scale);
  }
}

struct Problem {
  int m, n, k;
  float scale;
  bool with_bias;
  std::vector<float> x, w, b;
};

Problem make_problem(int m, int n, int k, float scale, bool with_bias, uint64_t seed) {
  Problem p{m, n, k, scale, with_bias, {}, {}, {}};
  std::mt19937_64 rng(seed);
  const float bound = 1.0f / std::sqrt(static_cast<float>(k));
  std::uniform_real_distribution<float> ux(0.0f, 1.0f), uw(-bound, bound);
  p.x.resize(static_cast<size_t>(m) * k);
  p.w.resize(static_cast<size_t>(n) * k);
  p.b.resize(n);
  for (auto& v : p.x) v = ux(rng);
  for (auto& v : p.w) v = uw(rng);
  for (auto& v : p.b) v = uw(rng);
  return p;
}

double reference(const Problem& p, int r, int c) {
  double z = p.with_bias ? p.b[c] : 0.0;
  const float* xr = &p.x[static_cast<size_t>(r) * p.k];
  const float* wr = &p.w[static_cast<size_t>(c) * p.k];
  for (int i = 0; i < p.k; ++i) z += static_cast<double>(xr[i]) * wr[i];
  return z + p.scale / (1.0 + std::exp(-z));
}

// Device copies of a problem. offset > 0 shifts every pointer by that many floats past its
// allocation's start (4-byte but not 16-byte aligned pointers, which vec 1 must accept).
struct DeviceProblem {
  float *x = nullptr, *w = nullptr, *b = nullptr, *out = nullptr;
  int offset;
  explicit DeviceProblem(const Problem& p, int offset_floats = 0) : offset(offset_floats) {
    PROBE_CUDA(cudaMalloc(&x, (p.x.size() + offset) * 4));
    PROBE_CUDA(cudaMalloc(&w, (p.w.size() + offset) * 4));
    PROBE_CUDA(cudaMalloc(&b, (p.b.size() + offset) * 4));
    PROBE_CUDA(cudaMalloc(&out, (static_cast<size_t>(p.m) * p.n + offset) * 4));
    x += offset;
    w += offset;
    b += offset;
    out += offset;
    PROBE_CUDA(cudaMemcpy(x, p.x.data(), p.x.size() * 4, cudaMemcpyHostToDevice));
    PROBE_CUDA(cudaMemcpy(w, p.w.data(), p.w.size() * 4, cudaMemcpyHostToDevice));
    PROBE_CUDA(cudaMemcpy(b, p.b.data(), p.b.size() * 4, cudaMemcpyHostToDevice));
  }
  ~DeviceProblem() {
    cudaFree(x - offset);
    cudaFree(w - offset);
    cudaFree(b - offset);
    cudaFree(out - offset);
  }
  DeviceProblem(const DeviceProblem&) = delete;
  DeviceProblem& operator=(const DeviceProblem&) = delete;
};

void launch(const Config& c, const Problem& p, const DeviceProblem& d) {
  fusetune::FusedLinearArgs args{d.x, d.w, p.with_bias ? d.b : nullptr, d.out, p.m, p.n, p.k, p.scale};
  c.kernel<<<c.grid(p.m, p.n), c.threads(), c.smem_bytes()>>>(args);
  PROBE_CUDA(cudaGetLastError());
}

void launch_baseline(cublasHandle_t h, const Problem& p, const DeviceProblem& d) {
  // Row-major out(m, n) = x(m, k) * w(n, k)^T, seen column-major by cuBLAS: out is C(n x m),
  // w is a k x n matrix (ld k) used transposed, x a k x m matrix (ld k).
  const float one = 1.0f, zero = 0.0f;
  PROBE_CUBLAS(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, p.n, p.m, p.k, &one, d.w, p.k, d.x, p.k, &zero, d.out, p.n));
  const long long total = static_cast<long long>(p.m) * p.n;
  const int blocks = static_cast<int>(std::min<long long>((total + 255) / 256, 132 * 16));
  epilogue_kernel<<<blocks, 256>>>(d.out, p.with_bias ? d.b : nullptr, p.scale, total, p.n);
  PROBE_CUDA(cudaGetLastError());
}

// Compares sampled elements (every element when small) of out with the float64 reference.
struct Check {
  double max_abs = 0, rel_l2 = 0;
  long long bad = 0, non_finite = 0, checked = 0;
};

Check check_against_reference(const Problem& p, const std::vector<float>& out, int samples, uint64_t seed) {
  Check r;
  std::mt19937_64 rng(seed);
  const long long total = static_cast<long long>(p.m) * p.n;
  const bool all = total <= samples;
  double num = 0, den = 0;
  for (long long s = 0; s < (all ? total : samples); ++s) {
    const long long idx = all ? s : static_cast<long long>(rng() % total);
    const int row = static_cast<int>(idx / p.n), col = static_cast<int>(idx % p.n);
    const double ref = reference(p, row, col);
    const double got = out[idx];
    ++r.checked;
    if (!std::isfinite(got)) {
      ++r.non_finite;
      ++r.bad;
      continue;
    }
    const double diff = std::fabs(got - ref);
    r.max_abs = std::max(r.max_abs, diff);
    if (diff > 1e-4 + 1e-4 * std::fabs(ref)) ++r.bad;
    num += diff * diff;
    den += ref * ref;
  }
  r.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return r;
}

std::vector<float> run_and_fetch(const Config& c, const Problem& p, const DeviceProblem& d) {
  const size_t bytes = static_cast<size_t>(p.m) * p.n * 4;
  PROBE_CUDA(cudaMemset(d.out, 0xFF, bytes));  // NaN poison: every element must be written
  launch(c, p, d);
  PROBE_CUDA(cudaDeviceSynchronize());
  std::vector<float> out(static_cast<size_t>(p.m) * p.n);
  PROBE_CUDA(cudaMemcpy(out.data(), d.out, bytes, cudaMemcpyDeviceToHost));
  return out;
}

template <typename Launch>
double median_ms(Launch&& launch_once, void* flush, size_t flush_bytes, cudaEvent_t start, cudaEvent_t stop) {
  for (int i = 0; i < 3; ++i) launch_once();
  std::vector<float> ms;
  for (int i = 0; i < 20; ++i) {
    PROBE_CUDA(cudaMemsetAsync(flush, i & 0xFF, flush_bytes));  // L2 flush, outside the timing
    PROBE_CUDA(cudaEventRecord(start));
    launch_once();
    PROBE_CUDA(cudaEventRecord(stop));
    PROBE_CUDA(cudaEventSynchronize(stop));
    float t = 0;
    PROBE_CUDA(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return 0.5 * (ms[9] + ms[10]);
}

}  // namespace

int main(int argc, char** argv) {
  int hm = 1024, hn = 8192, hk = 8192;
  bool check_only = false;
  std::vector<int> dims;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--check-only") {
      check_only = true;
    } else {
      dims.push_back(std::atoi(argv[i]));
    }
  }
  if (dims.size() == 3) {
    hm = dims[0];
    hn = dims[1];
    hk = dims[2];
  } else if (!dims.empty() || hm < 1 || hn < 1 || hk < 1) {
    std::fprintf(stderr, "usage: %s [--check-only] [m n k]\n", argv[0]);
    return 2;
  }
  cudaDeviceProp prop;
  PROBE_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, cc %d.%d\n", prop.name, prop.multiProcessorCount, prop.major, prop.minor);

  for (const Config& c : kConfigs) {
    PROBE_CUDA(cudaFuncSetAttribute(c.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, c.smem_bytes()));
    cudaFuncAttributes attr;
    PROBE_CUDA(cudaFuncGetAttributes(&attr, c.kernel));
    int blocks_per_sm = 0;
    PROBE_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, c.kernel, c.threads(), c.smem_bytes()));
    std::printf("config %-28s threads %4d smem %6d B regs %3d local %zu B blocks/SM %d\n", c.name, c.threads(),
                c.smem_bytes(), attr.numRegs, attr.localSizeBytes, blocks_per_sm);
  }

  // 1. Correctness on odd shapes, every config whose vec divides k.
  // offset: pointers 1 float past 16-byte alignment (vec 1 configs only).
  struct Shape {
    int m, n, k;
    float scale;
    bool bias;
    int offset;
  };
  const Shape shapes[] = {{7, 33, 1000, 2.0f, true, 0},   {1, 1, 1, 2.0f, true, 0},      {33, 7, 8191, -1.5f, true, 0},
                          {129, 257, 31, 0.0f, false, 0}, {300, 130, 77, 2.0f, true, 0}, {50, 70, 1002, 2.0f, true, 0},
                          {64, 128, 4096, 2.0f, true, 0}, {65, 99, 333, 2.0f, true, 1}};
  bool all_ok = true;
  const bool once = std::getenv("PROBE_ONCE") != nullptr;
  if (!once) std::printf("\n%-28s %-16s %10s %10s %6s %6s\n", "config", "shape", "max_abs", "rel_l2", "bad", "nonfin");
  for (const Shape& s : shapes) {
    if (once) break;
    Problem p = make_problem(s.m, s.n, s.k, s.scale, s.bias, 1234 + s.m * 7 + s.k);
    DeviceProblem d(p, s.offset);
    for (const Config& c : kConfigs) {
      if (s.k % c.vec != 0) continue;       // shape constraint k % vec == 0
      if (s.offset % c.vec != 0) continue;  // the host's 4 * vec-byte alignment check
      const std::vector<float> out = run_and_fetch(c, p, d);
      const Check r = check_against_reference(p, out, 1 << 14, 99);
      const bool ok = r.bad == 0 && r.rel_l2 <= 2e-6;
      all_ok = all_ok && ok;
      char shape[32];
      std::snprintf(shape, sizeof shape, "%dx%dx%d%s", s.m, s.n, s.k, s.offset ? " +1" : "");
      std::printf("%-28s %-16s %10.3g %10.3g %6lld %6lld %s\n", c.name, shape, r.max_abs, r.rel_l2, r.bad, r.non_finite,
                  ok ? "ok" : "FAIL");
    }
  }

  // 2. Numerics: large |z| saturates (w scaled so |z| reaches ~1e3), NaN in -> NaN out.
  if (!once) {
    Problem p = make_problem(40, 72, 64, 2.0f, true, 77);
    for (auto& v : p.w) v *= 4000.0f;                            // z in about [-1e3, 1e3]
    p.x[5 * p.k + 3] = std::numeric_limits<float>::quiet_NaN();  // row 5 of out is NaN
    DeviceProblem d(p);
    for (const Config& c : kConfigs) {
      const std::vector<float> out = run_and_fetch(c, p, d);
      long long wrong = 0;
      for (int r = 0; r < p.m; ++r) {
        for (int col = 0; col < p.n; ++col) {
          const float got = out[static_cast<size_t>(r) * p.n + col];
          if (r == 5) {
            wrong += !std::isnan(got);
            continue;
          }
          const double ref = reference(p, r, col);
          wrong += !std::isfinite(got) || std::fabs(got - ref) > 1e-4 * std::fabs(ref) + 1e-3;
        }
      }
      all_ok = all_ok && wrong == 0;
      std::printf("%-28s saturation/NaN %s (%lld wrong)\n", c.name, wrong ? "FAIL" : "ok", wrong);
    }
  }

  if (check_only) {
    std::printf("\nall checks %s\n", all_ok ? "passed" : "FAILED");
    return all_ok ? 0 : 1;
  }

  // 3. Headline shape: check against cuBLAS + epilogue and the float64 reference; time.
  Problem p = make_problem(hm, hn, hk, 2.0f, true, 42);
  DeviceProblem d(p);
  cublasHandle_t handle;
  PROBE_CUBLAS(cublasCreate(&handle));
  PROBE_CUBLAS(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));  // plain FP32, no TF32
  const size_t out_bytes = static_cast<size_t>(hm) * hn * 4;
  PROBE_CUDA(cudaMemset(d.out, 0xFF, out_bytes));
  launch_baseline(handle, p, d);
  PROBE_CUDA(cudaDeviceSynchronize());
  std::vector<float> base(static_cast<size_t>(hm) * hn);
  PROBE_CUDA(cudaMemcpy(base.data(), d.out, out_bytes, cudaMemcpyDeviceToHost));
  const Check base_check = check_against_reference(p, base, 4096, 5);

  const size_t flush_bytes = size_t{128} << 20;
  void* flush = nullptr;
  PROBE_CUDA(cudaMalloc(&flush, flush_bytes));
  cudaEvent_t start, stop;
  PROBE_CUDA(cudaEventCreate(&start));
  PROBE_CUDA(cudaEventCreate(&stop));
  const double flop = 2.0 * hm * static_cast<double>(hn) * hk;
  const double base_ms =
      once ? 0.0 : median_ms([&] { launch_baseline(handle, p, d); }, flush, flush_bytes, start, stop);

  // ms, TFLOP/s and ratio; dashes under PROBE_ONCE, which times nothing.
  auto timing_columns = [&](double ms) {
    char text[40];
    if (once)
      std::snprintf(text, sizeof text, "%8s %8s %7s", "-", "-", "-");
    else
      std::snprintf(text, sizeof text, "%8.3f %8.2f %7.3f", ms, flop / ms * 1e-9, ms / base_ms);
    return std::string(text);
  };
  std::printf("\nshape %dx%dx%d (m x n x k), s = 2, %s\n", hm, hn, hk,
              once ? "each run once (PROBE_ONCE), not timed" : "median of 20 (L2 flushed)");
  std::printf("%-28s %8s %8s %7s %10s %7s %10s\n", "config", "ms", "TFLOP/s", "ratio", "maxdiff", "nonfin", "rel_l2");
  std::printf("%-28s %s %10s %7s %10.3g\n", "cublas_sgemm+epilogue", timing_columns(base_ms).c_str(), "-", "-",
              base_check.rel_l2);
  for (const Config& c : kConfigs) {
    if (hk % c.vec != 0) continue;  // shape constraint k % vec == 0
    const std::vector<float> out = run_and_fetch(c, p, d);
    double max_diff = 0;
    long long non_finite = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      if (!std::isfinite(out[i])) {
        ++non_finite;
        continue;
      }
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(out[i] - base[i])));
    }
    const Check r = check_against_reference(p, out, 4096, 5);
    all_ok = all_ok && non_finite == 0 && r.bad == 0 && r.rel_l2 <= 2e-6;
    const double ms = once ? 0.0 : median_ms([&] { launch(c, p, d); }, flush, flush_bytes, start, stop);
    std::printf("%-28s %s %10.3g %7lld %10.3g\n", c.name, timing_columns(ms).c_str(), max_diff, non_finite, r.rel_l2);
    // SUSTAIN=1: a second of back-to-back launches of the baseline and the config, twice, with
    // NVML's SM clock, power and clock-event reasons (bench/sustain.h).
    if (std::getenv("SUSTAIN"))
      for (int i = 0; i < 2; ++i) {
        print_sustained("cublas_sgemm+epilogue", sustain([&] { launch_baseline(handle, p, d); }, 1.5));
        print_sustained(c.name, sustain([&] { launch(c, p, d); }, 1.5));
      }
  }
  PROBE_CUDA(cudaEventDestroy(start));
  PROBE_CUDA(cudaEventDestroy(stop));
  PROBE_CUDA(cudaFree(flush));
  PROBE_CUBLAS(cublasDestroy(handle));
  std::printf("\nall checks %s\n", all_ok ? "passed" : "FAILED");
  return all_ok ? 0 : 1;
}
