// Command-line parsing of `fusetune <command> [options]` with Boost.Program_options into
// typed option structs. The library itself never sees Boost.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "bench.h"
#include "tuner.h"

namespace fusetune::cli {

struct HelpRequest {
  std::string text;
};

struct TuneCommand {
  TuneOptions options;
  int top = 10;  ///< rows of the summary table
};

/// `best` and `list`: what the database holds for one problem.
struct QueryCommand {
  bool list = false;  ///< list every trial (list) or the best row per device (best)
  ProblemShape shape = headline_shape();
  std::string db_path;
  int limit = 20;
  bool all = false;  ///< list: also the trials of an older template (history the resolver skips)
};

struct CheckCommand {
  std::string search_space = "ffma";
  std::string arch = "sm_90a";
  std::string template_dir;
  std::string cache_dir;  ///< "" = compile without caching, so every variant is really compiled
  int compile_threads = 0;
  bool quiet = false;
};

/// `bench`: the resolved winner of each policy against its cuBLAS baselines, in one run.
struct BenchCommand {
  BenchOptions options;
  std::string markdown_path;  ///< also write the table as markdown here ("" = no)
};

struct WorkerCommand {
  int device = 0;
};

using Command = std::variant<HelpRequest, TuneCommand, QueryCommand, CheckCommand, BenchCommand, WorkerCommand>;

/// Parses argv. Throws UsageError (exit code 2) with a one-line message on anything
/// malformed: unknown command or option, bad value, malformed shape.
Command parse_command_line(int argc, const char* const argv[]);

}  // namespace fusetune::cli
