// The outcome of evaluating one config on one problem: a typed status plus measurements.
// Failure of a config is a value here, never an exception.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "fusetune/kernel_config.h"
#include "fusetune/problem.h"

namespace fusetune {

enum class TrialStatus {
  kOk,                 ///< compiled, verified within the policy's bounds, timed
  kInvalid,            ///< the config cannot implement this shape (constraint violated)
  kCompileFailed,      ///< NVRTC rejected the generated source
  kResourcesExceeded,  ///< too many registers/threads/shared memory for the device
  kLaunchFailed,       ///< the launch itself returned an error
  kWrongResult,        ///< ran, but the output is outside the policy's error bound
  kDeviceFault,        ///< the kernel faulted the GPU (illegal address, ...) or killed the worker
  kTimeout,            ///< the kernel did not finish within the time limit
};

std::string_view to_string(TrialStatus status);
/// Inverse of to_string; nullopt for unknown text.
std::optional<TrialStatus> parse_trial_status(std::string_view text);

/// Timing statistics of one kernel, in milliseconds (CUDA events, L2 flushed per sample).
struct TimingStats {
  double median_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
  int samples = 0;
};

/// Error of an output against the float64 reference.
struct ErrorStats {
  double relative_l2 = 0;             ///< ||out - ref|| / ||ref||
  double max_abs = 0;                 ///< max |out - ref|
  long long allclose_violations = 0;  ///< elements outside atol + rtol*|ref|
  long long non_finite = 0;           ///< elements NaN/inf where the reference is finite (poison left)
};

struct TrialResult {
  ProblemShape shape;
  KernelConfig config;
  std::string template_hash;  ///< hash of the template sources the config was built from
  TrialStatus status = TrialStatus::kOk;
  std::string message;  ///< why it failed (compile log excerpt, CUDA error), empty if ok
  double compile_ms = 0;
  double verify_ms = 0;
  double bench_ms = 0;
  std::optional<TimingStats> timing;  ///< set when status is kOk
  std::optional<ErrorStats> error;    ///< set when the kernel ran to completion
  int registers = 0;                  ///< registers per thread reported by the compiler
  /// Median ms of the family's one-time weight preparation for this problem (the 3xTF32
  /// big/small split), timed on its own; 0 for families that read w as it is.
  double prep_ms = 0;
  /// Whether `timing` comes from a tune's finals (the finalists re-timed together, interleaved
  /// with the baselines), not from its sweep.
  bool timed_in_finals = false;
};

}  // namespace fusetune
