// The tuner end to end on the GPU: a variant that faults the GPU and one that hangs are
// recorded with their status while the run goes on; a run killed with SIGKILL resumes and
// loses no completed trial; a re-run skips what is measured unless --retune; the tensor-core
// families tune per (dtype, policy) with their baselines and the separately timed weight
// preparation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "fusetune/errors.h"
#include "test_support.h"
#include "tuner.h"
#include "tuning_db.h"

namespace fusetune::testing {
namespace {

TuneOptions fault_options(const TempDir& dir) {
  TuneOptions options;
  options.shape = ProblemShape{64, 96, 80};
  options.search_space = source_path("tests/data/faults.json");
  options.template_dir = source_path("tests/data");
  options.db_path = dir.file("faults.db");
  options.cache_dir = dir.file("cache");
  options.worker_executable = cli_path();
  options.trial_timeout_s = 8;
  options.progress = false;
  options.finalists = 1;
  options.final_rounds = 3;
  return options;
}

TEST(TunerGpu, FaultingAndHangingVariantsAreRecordedAndTheRunGoesOn) {
  FUSETUNE_SKIP_WITHOUT_GPU();
  TempDir dir;
  const TuneReport report = tune(fault_options(dir));
  EXPECT_EQ(report.measured, 3);
  std::map<std::string, TrialStatus> statuses;
  for (const auto& stored : report.ranking) statuses[stored.result.config.name] = stored.result.status;
  EXPECT_EQ(statuses.at("faults_f1"), TrialStatus::kDeviceFault);
  EXPECT_EQ(statuses.at("faults_f2"), TrialStatus::kTimeout);
  EXPECT_EQ(statuses.at("faults_f0"), TrialStatus::kOk);  // evaluated after both failures
  ASSERT_TRUE(report.best.has_value());
  EXPECT_EQ(report.best->result.config.name, "faults_f0");
  ASSERT_TRUE(report.baseline.has_value());
  EXPECT_GT(report.baseline->timing.median_ms, 0.0);

  // Failures are stored, so a re-run retries nothing; --retune measures everything again.
  const TuneReport again = tune(fault_options(dir));
  EXPECT_EQ(again.measured, 0);
  EXPECT_EQ(again.skipped, 3);
  TuneOptions retune = fault_options(dir);
  retune.retune = true;
  EXPECT_EQ(tune(retune).measured, 3);
}

std::size_t trial_count(const std::string& db_path, const ProblemShape& shape) {
  if (!std::filesystem::exists(db_path)) return 0;
  try {
    return TuningDb::open_read_only(db_path).trials("", shape).size();
  } catch (const fusetune::DataError&) {
    return 0;  // created but not yet migrated
  }
}

TEST(TunerGpu, AKilledRunResumesWithEveryCompletedTrialKept) {
  FUSETUNE_SKIP_WITHOUT_GPU();
  TempDir dir;
  const ProblemShape shape{256, 256, 256};
  const std::string db = dir.file("resume.db");
  const std::vector<std::string> args = {cli_path(),        "tune",   "--quiet", "--shape", "256x256x256",
                                         "--space",         "ffma",   "--db",    db,        "--cache-dir",
                                         dir.file("cache"), "--seed", "5"};
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  // Kill the tuner (SIGKILL, no chance to clean up) once some trials are stored.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (trial_count(db, shape) < 25 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the tuner finished before it could be killed";
  const std::size_t before = trial_count(db, shape);
  ASSERT_GE(before, 25u) << "the tuner stored too few trials before the kill";

  std::string command;
  for (const auto& arg : args) command += (command.empty() ? "" : " ") + arg;
  const auto resumed = run_command(command);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find(std::to_string(before) + " already in"), std::string::npos) << resumed.output;
  const std::size_t total = load_search_space("ffma").enumerate().size();
  EXPECT_EQ(trial_count(db, shape), total);
  EXPECT_NE(resumed.output.find("winner:"), std::string::npos) << resumed.output;
}

TuneOptions small_options(const TempDir& dir, const ProblemShape& shape, const std::string& space, int trials) {
  TuneOptions options;
  options.shape = shape;
  options.search_space = space;
  options.db_path = dir.file("families.db");
  options.cache_dir = dir.file("cache");
  options.worker_executable = cli_path();
  options.progress = false;
  options.max_trials = trials;
  options.strategy = "random";
  options.seed = 7;
  options.finalists = 2;
  options.final_rounds = 3;
  return options;
}

TEST(TunerGpu, Bf16FamiliesTuneTogetherAgainstTheirBaselines) {
  FUSETUNE_SKIP_WITHOUT_GPU();
  TempDir dir;
  const ProblemShape shape{200, 384, 520, Dtype::kBFloat16, Policy::kHalf};
  const TuneReport report = tune(small_options(dir, shape, "", 10));
  EXPECT_EQ(report.families, (std::vector<std::string>{"simt_bf16", "skinny_bf16", "wgmma_bf16"}));
  EXPECT_EQ(report.measured, 10);
  ASSERT_EQ(report.baselines.size(), 2u);
  EXPECT_EQ(report.baselines[0].name, "cublas_bf16");
  EXPECT_EQ(report.baselines[1].name, "cublas_bf16+epilogue");
  EXPECT_LE(report.baselines[1].error.relative_l2, relative_error_bound(Policy::kHalf));
  ASSERT_TRUE(report.best.has_value());
  EXPECT_LE(report.best->result.error->relative_l2, relative_error_bound(Policy::kHalf));
  // The finals pick the winner: the fastest of the re-measured rows at the top of the ranking.
  ASSERT_GT(report.finalists, 0);
  ASSERT_GE(static_cast<int>(report.ranking.size()), report.finalists);
  EXPECT_EQ(report.best->result.config.name, report.ranking.front().result.config.name);
  for (int f = 1; f < report.finalists; ++f)
    EXPECT_LE(report.ranking[f - 1].result.timing->median_ms, report.ranking[f].result.timing->median_ms);
  // Every config that fits the device (enumerate() also lists those whose ring is too deep
  // for its shared memory) and takes the shape (skinny ones take m up to 16) runs correctly.
  int ok = 0;
  for (const auto& stored : report.ranking) {
    const TrialResult& r = stored.result;
    EXPECT_EQ(r.shape, shape);
    const bool refused_m = r.status == TrialStatus::kInvalid && r.config.family == "skinny_bf16";
    EXPECT_TRUE(r.status == TrialStatus::kOk || r.status == TrialStatus::kResourcesExceeded || refused_m)
        << r.config.name << ": " << to_string(r.status) << " " << r.message;
    if (r.status == TrialStatus::kOk) ++ok;
  }
  EXPECT_GE(ok, 3);
  const TuningDb db = TuningDb::open_read_only(dir.file("families.db"));
  EXPECT_TRUE(db.latest_baseline(report.device.key(), shape, "cublas_bf16").has_value());
  // The finalists' rows hold their finals times and say so; the others hold sweep times.
  int timed_in_finals = 0;
  for (const auto& stored : db.trials(report.device.key(), shape)) timed_in_finals += stored.result.timed_in_finals;
  EXPECT_EQ(timed_in_finals, report.finalists);
  const auto best = db.best(report.device.key(), shape);
  ASSERT_TRUE(best.has_value());
  EXPECT_TRUE(best->result.timed_in_finals);

  // A second run (four configs more) holds its finals between the fastest of its sweep and those
  // of the first run's finals, the standing winner among them (choose_finalists).
  const TuneReport rerun = tune(small_options(dir, shape, "", 4));
  EXPECT_EQ(rerun.skipped, 10);
  std::set<std::string> rerun_finalists;
  for (int f = 0; f < rerun.finalists; ++f) rerun_finalists.insert(rerun.ranking[f].result.config.name);
  EXPECT_EQ(rerun_finalists.count(report.best->result.config.name), 1u) << report.best->result.config.name;
  EXPECT_GT(rerun.finalists, 2) << "the first run's two finalists and the sweep's fastest";
  EXPECT_LE(rerun.finalists, 4);
}

TEST(TunerGpu, ThreeTf32TrialsReportTheirWeightPreparationApart) {
  FUSETUNE_SKIP_WITHOUT_GPU();
  TempDir dir;
  const ProblemShape shape{130, 260, 1028, Dtype::kFloat32, Policy::kHighest};
  TuneOptions options = small_options(dir, shape, "wgmma_3xtf32", 4);
  options.strategy = "exhaustive";  // the first four: one 64 x 64 config at every promotion interval
  const TuneReport report = tune(options);
  ASSERT_TRUE(report.best.has_value());
  EXPECT_EQ(report.best->result.config.family, "wgmma_3xtf32");
  EXPECT_LE(report.best->result.error->relative_l2, relative_error_bound(Policy::kHighest));
  ASSERT_EQ(report.baselines.size(), 1u);
  EXPECT_EQ(report.baselines[0].name, "cublas_sgemm+epilogue");
  for (const auto& stored : report.ranking)
    if (stored.result.status == TrialStatus::kOk) EXPECT_GT(stored.result.prep_ms, 0.0) << stored.result.config.name;
}

}  // namespace
}  // namespace fusetune::testing
