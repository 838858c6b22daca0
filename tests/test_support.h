// Shared test fixtures: temporary directories, paths into the source tree, and whether a
// usable GPU is present (GPU tests skip with the reason where not).
#pragma once

#include <optional>
#include <string>

namespace fusetune::testing {

/// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// nullopt when a CUDA device can be used, else why not (for GTEST_SKIP).
std::optional<std::string> gpu_unavailable_reason();

/// Absolute path of a file in the source tree, e.g. source_path("search_spaces/ffma.json").
std::string source_path(const std::string& relative);

/// Result of running a command through the shell: exit code and combined output.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
/// Runs `command` with /bin/sh, capturing stdout and stderr together.
CommandResult run_command(const std::string& command);
/// The built `fusetune` executable.
std::string cli_path();

}  // namespace fusetune::testing

#define FUSETUNE_SKIP_WITHOUT_GPU()                                                                                   \
  do {                                                                                                                \
    if (auto reason = ::fusetune::testing::gpu_unavailable_reason()) GTEST_SKIP() << "needs a CUDA GPU: " << *reason; \
  } while (0)
