// Fault isolation: every GPU evaluation runs in a worker process (`fusetune worker`) that
// the tuner restarts when a kernel faults the GPU or hangs. The two sides speak one JSON
// object per line over the worker's stdin/stdout.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernel_launcher.h"

namespace fusetune {

/// A LaunchSpec as the tuner sends it to the worker, and back.
nlohmann::json launch_spec_to_json(const LaunchSpec& spec);
/// Inverse of launch_spec_to_json; throws nlohmann::json::exception on malformed input.
LaunchSpec launch_spec_from_json(const nlohmann::json& j);

/// The worker's side: serves requests from stdin until "quit" or EOF. Returns the exit
/// code. After a sticky device fault it answers that trial and exits (code 3), because
/// its CUDA context is unusable; the parent starts a fresh worker.
int run_worker(int device_ordinal);

/// The tuner's side: a worker process that is started on first use and restarted on demand.
class WorkerProcess {
 public:
  /// `executable` is the fusetune binary; it is run as `<executable> worker --device N`.
  WorkerProcess(std::string executable, int device_ordinal);
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  /// Sends one request and waits up to `timeout_s` for the answer. On a timeout the worker
  /// is killed; when the worker dies or times out, returns nullopt and failure() says how.
  std::optional<nlohmann::json> request(const nlohmann::json& message, double timeout_s);

  enum class Failure { kNone, kDied, kTimedOut };
  Failure failure() const { return failure_; }
  /// e.g. "worker killed by signal 11; last stderr: ..." for the trial's message.
  const std::string& failure_detail() const { return failure_detail_; }
  /// True while a worker process is running (false after a death, timeout or stop()).
  bool running() const { return pid_ > 0; }
  /// Asks the worker to quit, then kills it if it lingers.
  void stop();

 private:
  void start();
  void reap(bool kill_first);
  std::string stderr_tail() const;

  std::string executable_;
  int device_ordinal_;
  pid_t pid_ = -1;
  int to_worker_ = -1;
  int from_worker_ = -1;
  std::string stderr_path_;
  std::string read_buffer_;
  Failure failure_ = Failure::kNone;
  std::string failure_detail_;
};

}  // namespace fusetune
