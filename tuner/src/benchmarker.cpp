// Timing method after NVBench: events around the launch only; the L2 flush (a memset of a
// buffer twice the L2's size) runs before the start event, so it is never timed.
#include "benchmarker.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>

namespace fusetune {

Benchmarker::Benchmarker(std::size_t l2_bytes, cudaStream_t stream)
    : stream_(stream),
      flush_(2 * std::max<std::size_t>(l2_bytes, 1 << 20)),
      start_(make_event()),
      stop_(make_event()) {}

double Benchmarker::sample(const LaunchFn& launch) {
  FUSETUNE_CUDA_CHECK(cudaMemsetAsync(flush_.get(), static_cast<int>(++flush_value_ & 0xff), flush_.bytes(), stream_));
  FUSETUNE_CUDA_CHECK(cudaEventRecord(start_.get(), stream_));
  FUSETUNE_CUDA_CHECK(launch(stream_));
  FUSETUNE_CUDA_CHECK(cudaEventRecord(stop_.get(), stream_));
  FUSETUNE_CUDA_CHECK(cudaEventSynchronize(stop_.get()));
  float ms = 0;
  FUSETUNE_CUDA_CHECK(cudaEventElapsedTime(&ms, start_.get(), stop_.get()));
  return ms;
}

std::vector<std::vector<double>> Benchmarker::interleaved(const std::vector<LaunchFn>& launches, int rounds) {
  // A fixed seed: the same order in every run, so that runs compare.
  constexpr std::uint64_t kOrderSeed = 0x5eed;
  std::vector<std::vector<double>> samples(launches.size());
  for (const std::vector<int>& order : round_orders(static_cast<int>(launches.size()), rounds, kOrderSeed))
    for (const int which : order) samples[which].push_back(sample(launches[which]));
  return samples;
}

std::vector<std::vector<int>> Benchmarker::round_orders(int count, int rounds, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::vector<std::vector<int>> orders(std::max(rounds, 0), std::vector<int>(std::max(count, 0)));
  for (std::vector<int>& order : orders) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), random);
  }
  return orders;
}

TimingStats Benchmarker::summarize(std::vector<double> samples_ms) {
  TimingStats stats;
  if (samples_ms.empty()) return stats;
  std::sort(samples_ms.begin(), samples_ms.end());
  const size_t count = samples_ms.size();
  stats.samples = static_cast<int>(count);
  stats.min_ms = samples_ms.front();
  stats.max_ms = samples_ms.back();
  stats.median_ms = count % 2 ? samples_ms[count / 2] : 0.5 * (samples_ms[count / 2 - 1] + samples_ms[count / 2]);
  return stats;
}

TimingStats Benchmarker::time(const LaunchFn& launch, const BenchmarkOptions& options) {
  // Warm-up: module load, clocks ramping up, instruction cache.
  const auto warm_start = std::chrono::steady_clock::now();
  for (int run = 0;; ++run) {
    FUSETUNE_CUDA_CHECK(launch(stream_));
    FUSETUNE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const double elapsed =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - warm_start).count();
    if (run >= 1 && elapsed >= options.warmup_ms) break;
    if (run >= 50) break;
  }

  std::vector<double> samples;
  const auto start = std::chrono::steady_clock::now();
  while (static_cast<int>(samples.size()) < options.max_samples) {
    samples.push_back(sample(launch));
    if (static_cast<int>(samples.size()) < options.min_samples) continue;
    std::vector<double> sorted = samples;
    std::sort(sorted.begin(), sorted.end());
    const double p25 = sorted[sorted.size() / 4], p75 = sorted[(3 * sorted.size()) / 4];
    const double median = sorted[sorted.size() / 2];
    if (median > 0 && (p75 - p25) / median <= options.settled_spread) break;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds >= options.max_seconds) break;
  }
  return summarize(std::move(samples));
}

}  // namespace fusetune
