// Option tables of every command. Values are validated here, so that the commands get
// well-formed options or the user gets a one-line message and exit code 2.
#include "options.h"

#include <boost/program_options.hpp>

#include <sstream>

#include "fusetune/errors.h"
#include "fusetune/fused_linear.h"

namespace fusetune::cli {

namespace po = boost::program_options;

namespace {

constexpr const char* kUsage =
    "usage: fusetune <command> [options]\n"
    "commands:\n"
    "  tune    tune one problem (default: the headline 1024x8192x8192 fp32 highest) into the database\n"
    "  best    print the best config of a problem per device\n"
    "  list    print every trial of a problem, fastest first (--all: also those the resolver never runs)\n"
    "  check   compile every variant of a search space with NVRTC (no GPU needed)\n"
    "  bench   time the winner of each policy against its cuBLAS baselines in one run\n"
    "run `fusetune <command> --help` for its options\n";

/// Options shared by commands that name a problem.
struct ProblemArgs {
  std::string shape = headline_shape().dims();
  std::string dtype = "fp32";
  std::string policy;  ///< "" = the dtype's: highest for fp32, half for bf16/fp16
  void add_to(po::options_description& description) {
    description.add_options()("shape", po::value(&shape)->default_value(shape),
                              "problem MxNxK (M batch, N out features, K in features)")(
        "dtype", po::value(&dtype)->default_value(dtype), "element type: fp32, bf16, fp16")(
        "policy", po::value(&policy),
        "precision policy: highest or high (fp32), half (bf16, fp16); default highest for fp32, half otherwise");
  }
  ProblemShape parse() const {
    const auto parsed_dtype = parse_dtype(dtype);
    if (!parsed_dtype) throw UsageError("unknown --dtype '" + dtype + "'; use fp32, bf16 or fp16");
    const auto parsed_policy = policy.empty() ? default_policy(*parsed_dtype) : parse_policy(policy);
    if (!parsed_policy) throw UsageError("unknown --policy '" + policy + "'; use highest, high or half");
    ProblemShape parsed = parse_dims(shape, *parsed_dtype, *parsed_policy);
    validate_dtype_policy(parsed);
    return parsed;
  }
};

/// Parses the options after the command word; returns false if --help was asked.
bool parse_options(const std::string& command, po::options_description& description,
                   const std::vector<std::string>& args, std::string& help) {
  description.add_options()("help,h", "show this help");
  po::variables_map values;
  try {
    po::store(po::command_line_parser(args).options(description).run(), values);
    if (values.count("help")) {
      std::ostringstream text;
      text << "usage: fusetune " << command << " [options]\n" << description;
      help = text.str();
      return false;
    }
    po::notify(values);
  } catch (const po::error& error) {
    throw UsageError("fusetune " + command + ": " + error.what() + "; see `fusetune " + command + " --help`");
  }
  return true;
}

template <typename T>
void require_positive(const char* name, T value) {
  if (value <= 0) throw UsageError(std::string("--") + name + " must be positive");
}

}  // namespace

Command parse_command_line(int argc, const char* const argv[]) {
  if (argc < 2) return HelpRequest{kUsage};
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  std::string help;

  if (command == "--help" || command == "-h" || command == "help") return HelpRequest{kUsage};
  if (command == "tune") {
    TuneCommand tune;
    TuneOptions& o = tune.options;
    ProblemArgs problem;
    po::options_description description("tune options");
    problem.add_to(description);
    o.db_path = default_db_path();
    bool quiet = false;
    description.add_options()("space", po::value(&o.search_space),
                              "search space: family name or .json path (default: every family that implements the "
                              "dtype and policy, tuned together)")(
        "db", po::value(&o.db_path)->default_value(o.db_path), "SQLite database ($FUSETUNE_DB overrides the default)")(
        "device", po::value(&o.device)->default_value(o.device), "CUDA device ordinal")(
        "max-trials", po::value(&o.max_trials)->default_value(0), "budget: configs to measure (0 = all)")(
        "max-minutes", po::value(&o.max_minutes)->default_value(0.0), "budget: minutes of tuning (0 = no limit)")(
        "strategy", po::value(&o.strategy)->default_value(o.strategy), "exhaustive or random")(
        "seed", po::value(&o.seed)->default_value(0), "seed of inputs and random order (0 = from the clock)")(
        "retune", po::bool_switch(&o.retune), "re-measure configs already in the database")(
        "cache-dir", po::value(&o.cache_dir),
        "compiled-kernel cache (default $FUSETUNE_CACHE_DIR or ~/.cache/fusetune)")(
        "template-dir", po::value(&o.template_dir), "extra kernel templates (*.cuh) to include")(
        "compile-threads", po::value(&o.compile_threads)->default_value(0), "parallel NVRTC compilations (0 = cores)")(
        "trial-timeout", po::value(&o.trial_timeout_s)->default_value(o.trial_timeout_s),
        "seconds before a kernel is a timeout")("finalists", po::value(&o.finalists)->default_value(o.finalists),
                                                "configs re-measured against the baseline")(
        "top", po::value(&tune.top)->default_value(tune.top), "rows in the summary table")(
        "quiet", po::bool_switch(&quiet), "no progress bar");
    if (!parse_options(command, description, args, help)) return HelpRequest{help};
    o.shape = problem.parse();
    o.progress = !quiet;
    if (o.max_trials < 0) throw UsageError("--max-trials must be 0 (all) or positive");
    if (o.max_minutes < 0) throw UsageError("--max-minutes must be 0 (no limit) or positive");
    if (o.compile_threads < 0) throw UsageError("--compile-threads must be 0 (cores) or positive");
    require_positive("trial-timeout", o.trial_timeout_s);
    require_positive("finalists", o.finalists);
    require_positive("top", tune.top);
    if (o.strategy != "exhaustive" && o.strategy != "random")
      throw UsageError("unknown --strategy '" + o.strategy + "'; use exhaustive or random");
    if (o.device < 0) throw UsageError("--device must be a device ordinal >= 0");
    return tune;
  }
  if (command == "best" || command == "list") {
    QueryCommand query;
    query.list = command == "list";
    query.db_path = default_db_path();
    ProblemArgs problem;
    po::options_description description(command + " options");
    problem.add_to(description);
    description.add_options()("db", po::value(&query.db_path)->default_value(query.db_path), "SQLite database");
    if (query.list)
      description.add_options()("limit", po::value(&query.limit)->default_value(query.limit),
                                "rows to print (0 = all)")(
          "all", po::bool_switch(&query.all),
          "also list the trials measured with an older template or not in their space any more (history: the resolver "
          "skips them)");
    if (!parse_options(command, description, args, help)) return HelpRequest{help};
    query.shape = problem.parse();
    if (query.limit < 0) throw UsageError("--limit must be 0 (all) or positive");
    return query;
  }
  if (command == "check") {
    CheckCommand check;
    po::options_description description("check options");
    description.add_options()("space", po::value(&check.search_space)->default_value(check.search_space),
                              "search space: family name or .json path")(
        "arch", po::value(&check.arch)->default_value(check.arch), "NVRTC target, e.g. sm_90a")(
        "template-dir", po::value(&check.template_dir), "extra kernel templates (*.cuh) to include")(
        "cache-dir", po::value(&check.cache_dir), "keep the cubins in this cache (default: none, compile everything)")(
        "compile-threads", po::value(&check.compile_threads)->default_value(0),
        "parallel NVRTC compilations (0 = cores)")("quiet", po::bool_switch(&check.quiet), "no progress bar");
    if (!parse_options(command, description, args, help)) return HelpRequest{help};
    if (check.arch.rfind("sm_", 0) != 0) throw UsageError("--arch '" + check.arch + "' is not an sm_XY target");
    if (check.compile_threads < 0) throw UsageError("--compile-threads must be 0 (cores) or positive");
    return check;
  }
  if (command == "bench") {
    BenchCommand bench;
    BenchOptions& o = bench.options;
    o.db_path = default_db_path();
    std::string shape = o.dims.dims();
    bool no_peak = false;
    po::options_description description("bench options");
    description.add_options()("shape", po::value(&shape)->default_value(shape), "problem MxNxK")(
        "db", po::value(&o.db_path)->default_value(o.db_path), "SQLite database the winners are resolved from")(
        "device", po::value(&o.device)->default_value(o.device), "CUDA device ordinal")(
        "rounds", po::value(&o.rounds)->default_value(o.rounds), "interleaved samples of each kernel")(
        "seed", po::value(&o.seed)->default_value(o.seed), "seed of the random inputs")(
        "cache-dir", po::value(&o.cache_dir),
        "compiled-kernel cache (default $FUSETUNE_CACHE_DIR or ~/.cache/fusetune)")(
        "markdown", po::value(&bench.markdown_path), "also write the table as markdown to this file")(
        "no-peak", po::bool_switch(&no_peak), "skip the cuBLAS bf16 8192^3 peak measurement");
    if (!parse_options(command, description, args, help)) return HelpRequest{help};
    o.dims = parse_dims(shape, Dtype::kFloat32, Policy::kHighest);
    o.measure_peak = !no_peak;
    require_positive("rounds", o.rounds);
    if (o.device < 0) throw UsageError("--device must be a device ordinal >= 0");
    return bench;
  }
  if (command == "worker") {
    WorkerCommand worker;
    po::options_description description("worker options (internal: the tuner starts workers itself)");
    description.add_options()("device", po::value(&worker.device)->default_value(0), "CUDA device ordinal");
    if (!parse_options(command, description, args, help)) return HelpRequest{help};
    return worker;
  }
  throw UsageError("unknown command '" + command + "'; use tune, best, list, check or bench (see fusetune --help)");
}

}  // namespace fusetune::cli
