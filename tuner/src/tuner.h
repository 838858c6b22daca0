// Tuner: for one problem, generates, compiles (in parallel), verifies and times every
// config of a search space in a worker process, stores each trial as it completes,
// re-measures the finalists interleaved with the cuBLAS baseline and records the best.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fusetune/problem.h"
#include "search_space.h"
#include "tuning_db.h"

namespace fusetune {

/// Everything `fusetune tune` can be asked; defaults are the documented ones.
struct TuneOptions {
  ProblemShape shape = headline_shape();
  /// An embedded family name or a .json path; "" = every embedded family that implements the
  /// shape's (dtype, policy), tuned together (for highest: FFMA and 3xTF32 compete).
  std::string search_space;
  std::string db_path;  ///< the SQLite file (created if absent)
  int device = 0;
  int max_trials = 0;                   ///< budget: configs to measure, 0 = the whole space
  double max_minutes = 0;               ///< budget: stop starting trials after this, 0 = none
  std::string strategy = "exhaustive";  ///< "exhaustive" (space order) or "random" (seeded shuffle)
  std::uint64_t seed = 0;               ///< inputs and random order; 0 = from the clock
  bool retune = false;                  ///< re-measure configs already in the database
  std::string cache_dir;                ///< compiled cubins; "" = default_cache_dir()
  std::string template_dir;             ///< extra .cuh templates (test families), "" = none
  int compile_threads = 0;              ///< 0 = one per core
  double trial_timeout_s = 60;          ///< a kernel still running after this is a timeout
  int finalists = 5;                    ///< per group of choose_finalists: re-measured interleaved with the baselines
  int final_rounds = 30;
  std::string worker_executable;  ///< the fusetune binary that serves `worker`
  std::string argv;               ///< recorded in the run row
  bool progress = true;
  std::FILE* log = stderr;  ///< progress and notes
};

/// What a tuning run found, for the summary table.
struct TuneReport {
  DeviceFingerprint device;
  ProblemShape shape;
  std::vector<std::string> families;       ///< the search spaces tuned
  std::optional<BaselineResult> baseline;  ///< the target baseline (the first of `baselines`)
  std::vector<BaselineResult> baselines;   ///< every baseline of the policy, timed in the finals
  /// The target baseline as the database held it before this run (the previous run's on this
  /// device and shape), if any: see baseline_drift_note.
  std::optional<BaselineResult> previous_baseline;
  /// Every trial of the problem on this device: this run's finalists first, by their finals'
  /// medians (rank_finalists_first), then the others, fastest ok first.
  std::vector<StoredTrial> ranking;
  int finalists = 0;                         ///< how many of `ranking`'s first rows the finals re-measured
  std::optional<StoredTrial> best;           ///< the fastest finalist (the finals decide the winner)
  int measured = 0;                          ///< trials evaluated in this run
  int skipped = 0;                           ///< already in the database with the same template
  std::map<std::string, int> status_counts;  ///< over this run's trials
};

/// Loads a search space by embedded family name ("ffma") or from a .json path.
SearchSpace load_search_space(const std::string& name_or_path);
/// The families compiled into this binary.
std::vector<std::string> embedded_families();
/// The search spaces `name_or_path` names for `shape`: that one (UsageError if it does not
/// implement the shape's dtype and policy), or with "" every embedded family that does
/// (UsageError if none).
std::vector<SearchSpace> search_spaces_for(const std::string& name_or_path, const ProblemShape& shape);

/// A one-line note when a baseline's median in this run differs from its previous run's by
/// more than `tolerance` (a fraction), else nothing. cuBLAS's times move with the GPU's state:
/// on the H100 they ran 10-20% slow in finals straight after a full tune, a hot GPU under its
/// power cap, while the tuned kernels barely moved (bench/RESULTS.md, sessions 9 and 10), so a
/// ratio from such a run flatters the winner.
std::optional<std::string> baseline_drift_note(const BaselineResult& previous, const BaselineResult& now,
                                               double tolerance = 0.05);

/// `trials` (fastest first, as TuningDb::trials returns them) reordered so that those named in
/// `finalists` come first, fastest first by their stored (finals') medians, then the rest in
/// their order. The finals time every finalist in one process, interleaved with the baseline;
/// the other rows keep a single measurement from the sweep, taken while the GPU's clock may
/// have been higher or lower (a hot H100 under its power cap runs 5-20% slower, bench/RESULTS.md
/// sessions 9-11), so only the finalists' times compare with each other.
std::vector<StoredTrial> rank_finalists_first(std::vector<StoredTrial> trials, const std::set<std::string>& finalists);

/// The finals' entrants among `trials` (fastest first, as TuningDb::trials returns them) that
/// `eligible` admits: the `count` fastest timed only in a sweep, and the `count` fastest whose
/// times come from an earlier run's finals (the standing winner among them), in `trials`'
/// order. Sweep and finals times do not compare: chosen together by time, a re-run with every
/// config measured took five configs whose sweep times were faster than the winner's finals
/// time, left the winner out, and stored a slower one (H100: bf16 1.000x cuBLAS in
/// `fusetune bench` before, 1.011x after; bench/RESULTS.md, session 17).
std::vector<StoredTrial> choose_finalists(const std::vector<StoredTrial>& trials, int count,
                                          const std::function<bool(const TrialResult&)>& eligible);

/// Runs the tuning. Throws UsageError/DataError/CudaError on environment problems;
/// failures of single configs are recorded as trial statuses.
TuneReport tune(const TuneOptions& options);

}  // namespace fusetune
