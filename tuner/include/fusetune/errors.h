// Exception types for environment and programmer errors. Per-config failures are not
// exceptions: they are TrialStatus values (trial.h).
#pragma once

#include <stdexcept>
#include <string>

namespace fusetune {

/// The caller asked for something malformed (bad shape, unknown option value). Exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A file or database is missing, unreadable, corrupt or not ours. Exit code 1.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The CUDA driver, runtime, NVRTC or cuBLAS failed or is absent. Exit code 1.
struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace fusetune
