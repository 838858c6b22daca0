// Benchmarker: times a launch with CUDA events, after warm-up, with L2 flushed between
// samples outside the timed region, repeating until the spread settles.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "cuda_resources.h"
#include "fusetune/trial.h"

namespace fusetune {

struct BenchmarkOptions {
  int min_samples = 10;
  int max_samples = 100;
  double max_seconds = 3.0;      ///< stop sampling after this much wall time
  double settled_spread = 0.02;  ///< stop once (p75 - p25) / median is at most this
  double warmup_ms = 25.0;       ///< run at least this long (and at least twice) before sampling
};

/// Enqueues one kernel (or baseline) on the stream and returns its launch status.
using LaunchFn = std::function<cudaError_t(cudaStream_t)>;

class Benchmarker {
 public:
  /// `l2_bytes` sizes the flush buffer (twice the L2, so nothing of the inputs survives).
  Benchmarker(std::size_t l2_bytes, cudaStream_t stream);

  /// Times `launch` (which enqueues work on the stream and returns its launch status).
  /// Throws CudaError if a launch or a synchronization fails.
  TimingStats time(const LaunchFn& launch, const BenchmarkOptions& options);
  /// One flushed sample, in milliseconds (the unit of interleaved re-measurement).
  double sample(const LaunchFn& launch);
  /// `rounds` flushed samples of each launch, interleaved: every round samples each launch
  /// once, in the order round_orders gives. Result i holds launch i's samples.
  std::vector<std::vector<double>> interleaved(const std::vector<LaunchFn>& launches, int rounds);

  /// The order of each round of interleaved sampling: a permutation of [0, count) per round,
  /// shuffled from `seed`. A fixed order has each kernel always follow the same one, and a
  /// kernel's time can depend on what ran just before it: on the H100, cuBLAS bf16 measured
  /// about 0.3% faster when it always ran right after our kernel (bench/RESULTS.md, session 17).
  static std::vector<std::vector<int>> round_orders(int count, int rounds, std::uint64_t seed);

  static TimingStats summarize(std::vector<double> samples_ms);

 private:
  cudaStream_t stream_;
  DeviceBuffer flush_;
  Event start_, stop_;
  unsigned flush_value_ = 0;
};

}  // namespace fusetune
