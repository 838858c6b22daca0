// Bench: the resolved winner of each precision policy timed against that policy's cuBLAS
// baselines in one process, interleaved round by round, with TFLOP/s and the share of a peak
// measured in the same run (cuBLAS bf16 on 8192^3): the table of bench/RESULTS.md.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "fusetune/fused_linear.h"
#include "fusetune/problem.h"
#include "fusetune/trial.h"
#include "tuning_db.h"

namespace fusetune {

struct BenchOptions {
  ProblemShape dims = headline_shape();  ///< m, n, k (dtype and policy come from `problems`)
  /// The (dtype, policy) pairs to time, in order.
  std::vector<std::pair<Dtype, Policy>> problems = {
      {Dtype::kBFloat16, Policy::kHalf}, {Dtype::kFloat32, Policy::kHigh}, {Dtype::kFloat32, Policy::kHighest}};
  std::string db_path;    ///< read-only; a missing file leaves the compiled-in fallbacks
  std::string cache_dir;  ///< compiled cubins; "" = default_cache_dir()
  int device = 0;
  int rounds = 30;         ///< interleaved samples of each kernel
  std::uint64_t seed = 1;  ///< of the random inputs
  bool measure_peak = true;
};

/// One timed kernel: the winner or a baseline.
struct BenchEntry {
  std::string name;  ///< config name, or baseline name
  TimingStats timing;
  ErrorStats error;
};

/// One policy's results.
struct BenchRow {
  ProblemShape shape;
  Resolution resolution;  ///< which config ran, and where it came from
  BenchEntry winner;
  bool verified = false;              ///< the winner's output passed the verifier on this run's inputs
  std::string verdict;                ///< why not, when not
  double prep_ms = 0;                 ///< the winner's one-time weight preparation (median), 0 if none
  std::vector<BenchEntry> baselines;  ///< the target baseline first
};

struct BenchReport {
  DeviceFingerprint device;
  double peak_tflops = 0;  ///< cuBLAS bf16 GEMM 8192^3, measured in this run (0: not measured)
  std::vector<BenchRow> rows;
};

/// Runs the bench on the GPU. Throws CudaError/DataError/UsageError on environment problems
/// (no GPU, unreadable database, a winner that does not compile).
BenchReport run_bench(const BenchOptions& options);
/// TFLOP/s of `shape` done in `ms`.
double tflops(const ProblemShape& shape, double ms);
/// The report as a markdown table (with date, device and shape), for bench/RESULTS.md.
std::string bench_markdown(const BenchReport& report);

}  // namespace fusetune
