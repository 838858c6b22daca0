// Both sides of the worker protocol (see worker.h). Requests: device, prepare, trial,
// finals (which also times the cuBLAS baseline), quit. Every answer carries "ok"; errors carry "error".
#include "worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "benchmarker.h"
#include "cuda_resources.h"
#include "kernel_launcher.h"
#include "verifier.h"

extern char** environ;

namespace fusetune {

namespace {

using nlohmann::json;

json to_json(const TimingStats& timing) {
  return {{"median_ms", timing.median_ms},
          {"min_ms", timing.min_ms},
          {"max_ms", timing.max_ms},
          {"samples", timing.samples}};
}

json to_json(const ErrorStats& error) {
  return {{"relative_l2", error.relative_l2},
          {"max_abs", error.max_abs},
          {"allclose_violations", error.allclose_violations},
          {"non_finite", error.non_finite}};
}

LaunchGeometry geometry_from_json(const json& j) {
  LaunchGeometry geometry;
  geometry.threads = j.at("threads").get<int>();
  geometry.smem_bytes = j.at("smem_bytes").get<std::int64_t>();
  geometry.grid_x = j.at("grid_x").get<std::int64_t>();
  geometry.grid_y = j.at("grid_y").get<std::int64_t>();
  geometry.grid_z = j.at("grid_z").get<std::int64_t>();
  return geometry;
}

}  // namespace

json launch_spec_to_json(const LaunchSpec& spec) {
  const LaunchGeometry& geometry = spec.geometry;
  return {{"contract", spec.contract == LaunchContract::kTensorMap ? "tensor_map" : "plain"},
          {"weight_prep", spec.weight_prep == WeightPrep::kTf32Split ? "tf32_split" : "none"},
          {"tma_operand_type", spec.tma_operand_type == TmaOperandType::kTf32 ? "tf32" : "native"},
          {"tma_store", spec.tma_store},
          {"tile_m", spec.tile_m},
          {"tile_n", spec.tile_n},
          {"workspace_bytes", spec.workspace_bytes},
          {"workspace_flag_bytes", spec.workspace_flag_bytes},
          {"geometry",
           {{"threads", geometry.threads},
            {"smem_bytes", geometry.smem_bytes},
            {"grid_x", geometry.grid_x},
            {"grid_y", geometry.grid_y},
            {"grid_z", geometry.grid_z}}}};
}

LaunchSpec launch_spec_from_json(const json& j) {
  LaunchSpec spec;
  spec.contract =
      j.at("contract").get<std::string>() == "tensor_map" ? LaunchContract::kTensorMap : LaunchContract::kPlain;
  spec.weight_prep =
      j.at("weight_prep").get<std::string>() == "tf32_split" ? WeightPrep::kTf32Split : WeightPrep::kNone;
  spec.tma_operand_type =
      j.at("tma_operand_type").get<std::string>() == "tf32" ? TmaOperandType::kTf32 : TmaOperandType::kNative;
  spec.tma_store = j.at("tma_store").get<bool>();
  spec.tile_m = j.at("tile_m").get<int>();
  spec.tile_n = j.at("tile_n").get<int>();
  spec.workspace_bytes = j.at("workspace_bytes").get<std::int64_t>();
  spec.workspace_flag_bytes = j.at("workspace_flag_bytes").get<std::int64_t>();
  spec.geometry = geometry_from_json(j.at("geometry"));
  return spec;
}

namespace {

std::string read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot read cubin " + path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

/// Errors after which the CUDA context is unusable: the process must end.
bool is_sticky(cudaError_t status) {
  switch (status) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorMisalignedAddress:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

std::string describe(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

/// State of one worker process: the device, and the problem it was prepared for.
class WorkerSession {
 public:
  explicit WorkerSession(int ordinal) : device_(query_device(ordinal)) {}

  json handle(const json& request) {
    const std::string op = request.at("op").get<std::string>();
    if (op == "device") return device_info();
    if (op == "prepare") return prepare(request);
    if (op == "trial") return trial(request);
    if (op == "finals") return finals(request);
    return {{"ok", false}, {"error", "unknown op " + op}};
  }
  bool faulted() const { return faulted_; }

 private:
  json device_info() const {
    const auto& f = device_.fingerprint;
    return {{"ok", true},
            {"fingerprint",
             {{"name", f.name},
              {"cc_major", f.cc_major},
              {"cc_minor", f.cc_minor},
              {"sm_count", f.sm_count},
              {"l2_bytes", f.l2_bytes},
              {"driver_version", f.driver_version},
              {"nvrtc_version", f.nvrtc_version}}},
            {"limits",
             {{"max_threads_per_block", device_.limits.max_threads_per_block},
              {"max_smem_per_block", device_.limits.max_smem_per_block}}},
            {"arch", device_.arch}};
  }

  json prepare(const json& request) {
    const auto start = std::chrono::steady_clock::now();
    shape_.m = request.at("m").get<std::int64_t>();
    shape_.n = request.at("n").get<std::int64_t>();
    shape_.k = request.at("k").get<std::int64_t>();
    shape_.dtype = parse_dtype(request.at("dtype").get<std::string>()).value();
    shape_.policy = parse_policy(request.at("policy").get<std::string>()).value();
    verifier_.reset();
    kernels_.clear();
    prep_ms_.reset();
    if (!stream_.get()) {
      stream_ = make_stream();
      cublas_ = make_cublas();
      benchmarker_ = std::make_unique<Benchmarker>(size_t(device_.fingerprint.l2_bytes), stream_.get());
    }
    HostInputs inputs = make_random_inputs(shape_, request.at("seed").get<std::uint64_t>());
    verifier_ = std::make_unique<Verifier>(shape_, std::move(inputs), stream_.get(), cublas_.get());
    FUSETUNE_CUDA_CHECK(verifier_->launch_baseline(stream_.get()));
    FUSETUNE_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return {{"ok", true}, {"prepare_ms", ms}};
  }

  BenchmarkOptions bench_options(const json& request) const {
    BenchmarkOptions options;
    if (request.contains("max_seconds")) options.max_seconds = request["max_seconds"].get<double>();
    if (request.contains("max_samples")) options.max_samples = request["max_samples"].get<int>();
    return options;
  }

  /// Loads (or reuses) the kernel of a cubin file for this prepared problem.
  LoadedKernel& kernel_for(const std::string& cubin_path) {
    auto found = kernels_.find(cubin_path);
    if (found != kernels_.end()) return found->second;
    return kernels_.emplace(cubin_path, LoadedKernel::load(read_binary(cubin_path))).first->second;
  }

  json failure(const char* status, const std::string& message) {
    return {{"ok", true}, {"status", status}, {"message", message}};
  }

  /// Classifies a CUDA error of a trial; sticky ones end this worker after the answer.
  json cuda_failure(cudaError_t status, const char* when) {
    if (is_sticky(status)) {
      faulted_ = true;
      return failure("device_fault", std::string(when) + ": " + describe(status));
    }
    if (status == cudaErrorLaunchOutOfResources || status == cudaErrorInvalidConfiguration)
      return failure("resources_exceeded", std::string(when) + ": " + describe(status));
    return failure("launch_failed", std::string(when) + ": " + describe(status));
  }

  /// Prepares the weight once per problem with `kernel`'s preparation kernel (the same step
  /// for every config of a family), timed on its own like a kernel; its median is reported
  /// with every trial that reads the prepared weight, never inside a kernel's timing.
  std::optional<json> ensure_weight_prepared(LoadedKernel& kernel, WeightPrep prep) {
    if (prep == WeightPrep::kNone || prep_ms_) return std::nullopt;
    void* prepared = verifier_->prepared_weight(prepared_weight_bytes(prep, shape_));
    auto launch = [&](cudaStream_t stream) {
      return kernel.prepare_weight(prep, shape_, verifier_->weight(), prepared, stream);
    };
    cudaError_t status = launch(stream_.get());
    if (status != cudaSuccess) return cuda_failure(status, "weight preparation launch");
    status = cudaStreamSynchronize(stream_.get());
    if (status != cudaSuccess) return cuda_failure(status, "weight preparation");
    try {
      BenchmarkOptions options;
      options.max_seconds = 1.0;
      prep_ms_ = benchmarker_->time(launch, options).median_ms;
    } catch (const CudaError& error) {
      const cudaError_t last = cudaGetLastError();
      if (is_sticky(last) || is_sticky(cudaStreamSynchronize(stream_.get()))) faulted_ = true;
      return failure(faulted_ ? "device_fault" : "launch_failed",
                     std::string("timing the weight preparation: ") + error.what());
    }
    return std::nullopt;
  }

  json trial(const json& request) {
    if (!verifier_) return {{"ok", false}, {"error", "trial before prepare"}};
    const LaunchSpec spec = launch_spec_from_json(request.at("launch"));
    LoadedKernel* kernel = nullptr;
    try {
      kernel = &kernel_for(request.at("cubin_path").get<std::string>());
    } catch (const CudaError& error) {
      return failure("launch_failed", std::string("loading the cubin: ") + error.what());
    }
    if (auto failed = ensure_weight_prepared(*kernel, spec.weight_prep)) return *failed;
    LaunchPlan plan;
    try {
      plan = make_launch_plan(spec, shape_, verifier_->operands(spec.workspace_bytes), maps_);
    } catch (const UsageError& error) {
      return failure("invalid", error.what());
    } catch (const CudaError& error) {
      return failure("launch_failed", std::string("encoding the tensor maps: ") + error.what());
    }

    // Verification: poisoned output, one launch, full comparison.
    const auto verify_start = std::chrono::steady_clock::now();
    verifier_->poison_output();
    cudaError_t status = kernel->launch(plan, stream_.get());
    if (status != cudaSuccess) return cuda_failure(status, "launch");
    status = cudaStreamSynchronize(stream_.get());
    if (status != cudaSuccess) return cuda_failure(status, "first run");
    const Verdict verdict = verifier_->check_output(shape_.policy);
    const double verify_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - verify_start).count();
    json answer = {
        {"ok", true}, {"verify_ms", verify_ms}, {"error", to_json(verdict.error)}, {"registers", kernel->registers()}};
    if (spec.weight_prep != WeightPrep::kNone) answer["prep_ms"] = *prep_ms_;
    if (!verdict.passed) {
      answer["status"] = "wrong_result";
      answer["message"] = verdict.message;
      return answer;
    }

    const auto bench_start = std::chrono::steady_clock::now();
    try {
      auto launch = [&](cudaStream_t stream) { return kernel->launch(plan, stream); };
      answer["timing"] = to_json(benchmarker_->time(launch, bench_options(request)));
    } catch (const CudaError& error) {
      const cudaError_t last = cudaGetLastError();
      if (is_sticky(last) || is_sticky(cudaStreamSynchronize(stream_.get()))) faulted_ = true;
      return failure(faulted_ ? "device_fault" : "launch_failed", std::string("while timing: ") + error.what());
    }
    answer["bench_ms"] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - bench_start).count();
    answer["status"] = "ok";
    return answer;
  }

  /// Re-measures finalists and every baseline of the policy interleaved, round after round (in
  /// a shuffled order per round), so that clock or thermal drift hits all of them alike before
  /// a winner is declared.
  json finals(const json& request) {
    if (!verifier_) return {{"ok", false}, {"error", "finals before prepare"}};
    const int rounds = request.value("rounds", 30);
    std::vector<std::pair<LoadedKernel*, LaunchSpec>> kernels;
    for (const auto& entry : request.at("kernels")) {
      LoadedKernel& kernel = kernel_for(entry.at("cubin_path").get<std::string>());
      const LaunchSpec spec = launch_spec_from_json(entry.at("launch"));
      if (auto failed = ensure_weight_prepared(kernel, spec.weight_prep))
        return {{"ok", false}, {"error", "weight preparation failed: " + failed->value("message", std::string())}};
      kernels.emplace_back(&kernel, spec);
    }
    // The finalists take turns on one stream, so they share one stream-K workspace: sized for
    // the largest before any plan points into it (a larger request later would reallocate it).
    std::size_t workspace_bytes = 0;
    for (const auto& [kernel, spec] : kernels)
      workspace_bytes = std::max(workspace_bytes, std::size_t(spec.workspace_bytes));
    const LaunchOperands operands = verifier_->operands(workspace_bytes);
    std::vector<std::pair<LoadedKernel*, LaunchPlan>> entries;
    for (const auto& [kernel, spec] : kernels)
      entries.emplace_back(kernel, make_launch_plan(spec, shape_, operands, maps_));
    const std::size_t baselines = verifier_->baselines().size();
    for (auto& [kernel, plan] : entries)  // warm-up
      FUSETUNE_CUDA_CHECK(kernel->launch(plan, stream_.get()));
    // Launch i < baselines is baseline i, the rest are the finalists in order.
    std::vector<LaunchFn> launches;
    for (std::size_t b = 0; b < baselines; ++b)
      launches.push_back([this, b](cudaStream_t stream) { return verifier_->launch_baseline(b, stream); });
    for (auto& [kernel, plan] : entries)
      launches.push_back([kernel = kernel, &plan = plan](cudaStream_t stream) { return kernel->launch(plan, stream); });
    const std::vector<std::vector<double>> samples = benchmarker_->interleaved(launches, rounds);
    json timings = json::array();
    for (std::size_t e = 0; e < entries.size(); ++e)
      timings.push_back(to_json(Benchmarker::summarize(samples[baselines + e])));
    // The +epilogue baseline's output of its last sample is still in its buffer: its error.
    const json error = to_json(verifier_->baseline_error());
    json baseline_answers = json::array();
    for (std::size_t b = 0; b < baselines; ++b)
      baseline_answers.push_back({{"name", verifier_->baselines()[b]},
                                  {"timing", to_json(Benchmarker::summarize(samples[b]))},
                                  {"error", error}});
    return {{"ok", true}, {"timings", timings}, {"baselines", baseline_answers}};
  }

  DeviceInfo device_;
  ProblemShape shape_;
  Stream stream_;
  CublasHandle cublas_;
  std::unique_ptr<Benchmarker> benchmarker_;
  std::unique_ptr<Verifier> verifier_;
  std::map<std::string, LoadedKernel> kernels_;
  TensorMapCache maps_;
  std::optional<double> prep_ms_;  ///< median ms of the weight preparation, once prepared
  bool faulted_ = false;
};

}  // namespace

int run_worker(int device_ordinal) {
  // If the tuner dies (even by SIGKILL), the worker goes with it instead of holding the GPU.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::unique_ptr<WorkerSession> session;
  std::string line;
  while (std::getline(std::cin, line)) {
    json answer;
    try {
      const json request = json::parse(line);
      if (request.at("op") == "quit") return 0;
      if (!session) session = std::make_unique<WorkerSession>(device_ordinal);
      answer = session->handle(request);
    } catch (const std::exception& error) {
      answer = {{"ok", false}, {"error", error.what()}};
    }
    std::cout << answer.dump() << "\n" << std::flush;
    if (session && session->faulted()) return 3;
  }
  return 0;
}

WorkerProcess::WorkerProcess(std::string executable, int device_ordinal)
    : executable_(std::move(executable)), device_ordinal_(device_ordinal) {}

WorkerProcess::~WorkerProcess() { stop(); }

void WorkerProcess::start() {
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0)
    throw CudaError(std::string("cannot create pipes for the worker: ") + std::strerror(errno));
  char stderr_template[] = "/tmp/fusetune-worker-XXXXXX";
  const int stderr_fd = mkstemp(stderr_template);
  if (stderr_fd < 0) throw CudaError(std::string("cannot create the worker's log: ") + std::strerror(errno));
  stderr_path_ = stderr_template;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  const std::string device = std::to_string(device_ordinal_);
  const char* argv[] = {executable_.c_str(), "worker", "--device", device.c_str(), nullptr};
  const int error = posix_spawn(&pid_, executable_.c_str(), &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(stderr_fd);
  if (error != 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    pid_ = -1;
    throw CudaError("cannot start the worker " + executable_ + ": " + std::strerror(error));
  }
  to_worker_ = in_pipe[1];
  from_worker_ = out_pipe[0];
  read_buffer_.clear();
}

std::string WorkerProcess::stderr_tail() const {
  std::ifstream in(stderr_path_);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > 300) text = text.substr(text.size() - 300);
  for (char& c : text)
    if (c == '\n') c = ' ';
  return text;
}

void WorkerProcess::reap(bool kill_first) {
  if (pid_ <= 0) return;
  if (kill_first) kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  if (WIFSIGNALED(status))
    failure_detail_ = "worker killed by signal " + std::to_string(WTERMSIG(status));
  else
    failure_detail_ = "worker exited with code " + std::to_string(WEXITSTATUS(status));
  const std::string tail = stderr_tail();
  if (!tail.empty()) failure_detail_ += "; its last words: " + tail;
  close(to_worker_);
  close(from_worker_);
  std::filesystem::remove(stderr_path_);
  pid_ = -1;
}

void WorkerProcess::stop() {
  if (pid_ <= 0) return;
  const std::string quit = "{\"op\":\"quit\"}\n";
  (void)!write(to_worker_, quit.data(), quit.size());
  for (int waited = 0; waited < 50; ++waited) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      close(to_worker_);
      close(from_worker_);
      std::filesystem::remove(stderr_path_);
      pid_ = -1;
      return;
    }
    usleep(20000);
  }
  reap(true);
}

std::optional<nlohmann::json> WorkerProcess::request(const nlohmann::json& message, double timeout_s) {
  failure_ = Failure::kNone;
  failure_detail_.clear();
  if (pid_ <= 0) start();
  const std::string line = message.dump() + "\n";
  signal(SIGPIPE, SIG_IGN);
  if (write(to_worker_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    failure_ = Failure::kDied;
    reap(false);
    return std::nullopt;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    const auto newline = read_buffer_.find('\n');
    if (newline != std::string::npos) {
      const std::string answer = read_buffer_.substr(0, newline);
      read_buffer_.erase(0, newline + 1);
      return nlohmann::json::parse(answer);
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      failure_ = Failure::kTimedOut;
      reap(true);
      failure_detail_ = "no answer within " + std::to_string(timeout_s) + " s; worker killed";
      return std::nullopt;
    }
    pollfd fd{from_worker_, POLLIN, 0};
    const int ready = poll(&fd, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready <= 0) continue;
    char chunk[65536];
    const ssize_t got = read(from_worker_, chunk, sizeof chunk);
    if (got <= 0) {
      failure_ = Failure::kDied;
      reap(false);
      return std::nullopt;
    }
    read_buffer_.append(chunk, static_cast<size_t>(got));
  }
}

}  // namespace fusetune
