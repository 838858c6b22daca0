// Compiler: NVRTC compilation of generated sources to cubins for one architecture, with an
// on-disk cache keyed by a hash of source, headers, options, NVRTC version and arch.
// One compile path serves the tuner and the library: what is tuned is what ships.
#pragma once

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "source_generator.h"

namespace fusetune {

struct CompileOutput {
  bool ok = false;
  bool resources_exceeded = false;  ///< ptxas ran out of registers or shared memory
  std::string cubin;                ///< the binary, when ok
  std::string cubin_path;           ///< where it is cached on disk ("" without a cache)
  std::string log;                  ///< NVRTC/ptxas log (errors, or -v resource usage)
  int registers = 0;                ///< registers per thread from ptxas' report, 0 if unknown
  int spill_bytes = 0;              ///< spill stores + loads in bytes from ptxas' report
  double compile_ms = 0;            ///< 0 when served from the cache
  bool from_cache = false;
};

class Compiler {
 public:
  /// `arch` like "sm_90a"; `cache_dir` "" disables the disk cache (the directory is created).
  Compiler(TemplateLibrary templates, std::string arch, std::string cache_dir);

  /// Compiles one source. Thread-safe: the tuner compiles many configs in parallel.
  /// Failures are returned (ok=false with the log), environment errors throw CudaError.
  CompileOutput compile(const GeneratedSource& source) const;

  const std::vector<std::string>& options() const { return options_; }
  const std::string& arch() const { return arch_; }
  const TemplateLibrary& templates() const { return templates_; }

 private:
  std::string cache_key(const GeneratedSource& source) const;
  TemplateLibrary templates_;
  std::string arch_;
  std::string cache_dir_;
  std::vector<std::string> options_;
  std::string nvrtc_version_;
};

/// Compiles a list of sources on a pool of threads, in order, while the caller consumes
/// the results in the same order: the GPU never waits for more than one compilation.
class CompilePool {
 public:
  /// Starts `threads` compiling `sources` in order.
  CompilePool(const Compiler& compiler, std::vector<GeneratedSource> sources, int threads)
      : compiler_(compiler), sources_(std::move(sources)), promises_(sources_.size()) {
    for (auto& promise : promises_) futures_.push_back(promise.get_future());
    for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { work(); });
  }
  ~CompilePool() {
    stop_ = true;
    for (auto& thread : threads_) thread.join();
  }
  /// Blocks until source i is compiled; rethrows an environment error of its compilation.
  CompileOutput get(size_t i) { return futures_[i].get(); }

 private:
  void work() {
    for (size_t i; !stop_ && (i = next_++) < sources_.size();) {
      try {
        promises_[i].set_value(compiler_.compile(sources_[i]));
      } catch (...) {
        promises_[i].set_exception(std::current_exception());
      }
    }
  }
  const Compiler& compiler_;
  std::vector<GeneratedSource> sources_;
  std::vector<std::promise<CompileOutput>> promises_;
  std::vector<std::future<CompileOutput>> futures_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

/// $FUSETUNE_CACHE_DIR, else $XDG_CACHE_HOME/fusetune, else ~/.cache/fusetune.
std::string default_cache_dir();

}  // namespace fusetune
