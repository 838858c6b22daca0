// The command's handling of bad input: one line naming the problem, exit code 2 for usage
// errors and 1 for data/environment errors, and the database left untouched.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "source_generator.h"
#include "test_support.h"
#include "tuner.h"
#include "tuning_db.h"

namespace fusetune::testing {
namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

CommandResult fusetune(const std::string& args) { return run_command(cli_path() + " " + args); }

/// The message is one line (plus the trailing newline) that starts with "fusetune:".
void expect_one_line_error(const CommandResult& result, int exit_code, const std::string& needle) {
  EXPECT_EQ(result.exit_code, exit_code) << result.output;
  std::string text = result.output;
  while (!text.empty() && (text.front() == '\n')) text.erase(0, 1);
  EXPECT_EQ(text.rfind("fusetune: ", 0), 0u) << result.output;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << result.output;
  EXPECT_NE(text.find(needle), std::string::npos) << "expected '" << needle << "' in: " << result.output;
}

TEST(Cli, HelpListsTheCommands) {
  const auto result = fusetune("--help");
  EXPECT_EQ(result.exit_code, 0);
  for (const char* command : {"tune", "best", "list", "check"})
    EXPECT_NE(result.output.find(command), std::string::npos);
  const auto tune_help = fusetune("tune --help");
  EXPECT_EQ(tune_help.exit_code, 0);
  EXPECT_NE(tune_help.output.find("--max-trials"), std::string::npos);
}

TEST(Cli, UsageErrorsExitWithTwo) {
  expect_one_line_error(fusetune("frobnicate"), 2, "unknown command 'frobnicate'");
  expect_one_line_error(fusetune("tune --bogus"), 2, "bogus");
  expect_one_line_error(fusetune("tune --shape 0x8x8"), 2, "is zero");
  expect_one_line_error(fusetune("tune --shape -4x8x8"), 2, "negative");
  expect_one_line_error(fusetune("best --shape 8xabcx8"), 2, "not a whole number");
  expect_one_line_error(fusetune("list --shape 99999999999999999999x8x8"), 2, "overflows");
  expect_one_line_error(fusetune("tune --dtype int4"), 2, "unknown --dtype");
  expect_one_line_error(fusetune("tune --policy fastest"), 2, "unknown --policy");
  expect_one_line_error(fusetune("tune --max-trials -3"), 2, "--max-trials");
  expect_one_line_error(fusetune("tune --device notanumber"), 2, "device");
  expect_one_line_error(fusetune("check --space nosuchfamily"), 2, "unknown search space 'nosuchfamily'");
  expect_one_line_error(fusetune("tune --dtype bf16 --policy highest"), 2, "does not go with policy highest");
  expect_one_line_error(fusetune("best --dtype fp32 --policy half"), 2, "does not go with policy half");
  expect_one_line_error(fusetune("tune --space ffma --dtype bf16"), 2, "'ffma' does not implement bf16");
  expect_one_line_error(fusetune("bench --rounds 0"), 2, "--rounds must be positive");
  expect_one_line_error(fusetune("bench --shape 1x0x1"), 2, "is zero");
}

TEST(Cli, BenchHelpNamesItsOptions) {
  const auto result = fusetune("bench --help");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  for (const char* option : {"--shape", "--db", "--rounds", "--markdown"})
    EXPECT_NE(result.output.find(option), std::string::npos) << option;
}

TEST(Cli, BenchWithoutAGpuSaysSo) {
  if (!gpu_unavailable_reason()) GTEST_SKIP() << "a GPU is present: this checks the behaviour without one";
  expect_one_line_error(fusetune("bench --no-peak"), 1, "GPU");
}

/// The template hash this build stores for an embedded family.
std::string current_hash(const std::string& family) {
  return TemplateLibrary::embedded().include_closure_hash(load_search_space(family).template_file());
}

/// A database with an ok trial, a failed one with error statistics and the policy's baselines,
/// measured with the template of `template_hash` ("" = the family's current one).
void write_trials(const std::string& path, const ProblemShape& shape, const std::string& family,
                  const std::string& template_hash = "") {
  TuningDb db = TuningDb::open(path);
  const auto device = db.upsert_device({"NVIDIA H100 80GB HBM3", 9, 0, 132, 52428800, 13000, "13.0"});
  const auto run = db.begin_run(device, {"test", "test", "hash"});
  // Knobs of a config the family's space has (best and list hide the others), under short names.
  const KnobValues knobs = load_search_space(family).valid_configs(DeviceLimits{}).front().knobs;
  TrialResult ok;
  ok.shape = shape;
  ok.config = KernelConfig{family, family + "_fast", knobs};
  ok.template_hash = template_hash.empty() ? current_hash(family) : template_hash;
  ok.status = TrialStatus::kOk;
  ok.timing = TimingStats{0.25, 0.24, 0.26, 10};
  ok.error = ErrorStats{6.5e-7, 1.25e-5, 0, 0};
  ok.prep_ms = 0.3125;
  db.record_trial(run, device, ok);
  TrialResult wrong = ok;
  wrong.config = KernelConfig{family, family + "_wrong", knobs};
  wrong.status = TrialStatus::kWrongResult;
  wrong.timing.reset();
  wrong.error = ErrorStats{3.5e-3, 0.125, 17, 0};
  wrong.message = "relative error above the bound";
  db.record_trial(run, device, wrong);
  db.update_best(device, shape);
  for (const char* name : {"cublas_bf16", "cublas_bf16+epilogue", "cublas_sgemm+epilogue"})
    db.record_baseline(run, device, shape, {name, TimingStats{0.5, 0.5, 0.5, 30}, ErrorStats{7.25e-7, 1e-5, 0, 0}});
}

TEST(Cli, BestAndListShowTheErrorBesideTheTime) {
  TempDir dir;
  const std::string path = dir.file("shown.db");
  write_trials(path, ProblemShape{64, 128, 256, Dtype::kBFloat16, Policy::kHalf}, "wgmma_bf16");
  const auto best = fusetune("best --shape 64x128x256 --dtype bf16 --db " + path);
  EXPECT_EQ(best.exit_code, 0) << best.output;
  for (const char* shown : {"wgmma_bf16_fast", "0.2500", "6.50e-07", "1.25e-05", "rel_err", "50%",
                            "baseline cublas_bf16: 0.5000 ms", "baseline cublas_bf16+epilogue", "weight prep 0.3125"})
    EXPECT_NE(best.output.find(shown), std::string::npos) << shown << " in:\n" << best.output;
  EXPECT_EQ(best.output.find("cublas_sgemm"), std::string::npos) << "not a baseline of bf16:\n" << best.output;
  EXPECT_EQ(best.output.find("wgmma_bf16_wrong"), std::string::npos) << best.output;

  const auto list = fusetune("list --shape 64x128x256 --dtype bf16 --db " + path);
  EXPECT_EQ(list.exit_code, 0) << list.output;
  for (const char* shown : {"wgmma_bf16_fast", "wgmma_bf16_wrong", "3.50e-03", "1.25e-01", "wrong_result"})
    EXPECT_NE(list.output.find(shown), std::string::npos) << shown << " in:\n" << list.output;
  // The stored best is named in its row (the finals chose it; list sorts by each row's latest time).
  const std::size_t fast_row = list.output.find("wgmma_bf16_fast");
  ASSERT_NE(fast_row, std::string::npos);
  EXPECT_NE(
      list.output.substr(fast_row, list.output.find('\n', fast_row) - fast_row).find("ok (stored best; weight prep"),
      std::string::npos)
      << list.output;
  EXPECT_EQ(list.output.find("stored best", list.output.find("wgmma_bf16_wrong")), std::string::npos) << list.output;
  // Another policy of the same dims has no trials.
  EXPECT_EQ(fusetune("best --shape 64x128x256 --db " + path).exit_code, 1);
}

TEST(Cli, ListPutsTheFinalsBeforeFasterSweepTimes) {
  TempDir dir;
  const std::string path = dir.file("finals.db");
  const ProblemShape shape{64, 128, 256, Dtype::kBFloat16, Policy::kHalf};
  write_trials(path, shape, "wgmma_bf16");  // wgmma_bf16_fast, 0.25 ms, the stored best
  {
    // The best was re-timed in the finals; another config's sweep time, taken while the GPU ran
    // faster, beats it on paper.
    TuningDb db = TuningDb::open(path);
    const auto stored = db.trials("", shape);
    const auto fast = std::find_if(stored.begin(), stored.end(), [](const StoredTrial& trial) {
      return trial.result.config.name == "wgmma_bf16_fast";
    });
    ASSERT_NE(fast, stored.end());
    TrialResult finals = fast->result;
    finals.timed_in_finals = true;
    db.record_trial(fast->run_id, 1, finals);
    TrialResult sweep = fast->result;
    sweep.config.name = "wgmma_bf16_sweep";
    sweep.timing = TimingStats{0.2, 0.19, 0.21, 10};
    db.record_trial(fast->run_id, 1, sweep);
    // As the tuner's finals leave it: only finalists count, so the finalist stays the best.
    db.update_best(1, shape, {}, [](const std::string&, const std::string& name) { return name == "wgmma_bf16_fast"; });
  }
  const auto list = fusetune("list --shape 64x128x256 --dtype bf16 --db " + path);
  EXPECT_EQ(list.exit_code, 0) << list.output;
  const std::size_t finals_row = list.output.find("wgmma_bf16_fast"), sweep_row = list.output.find("wgmma_bf16_sweep");
  ASSERT_NE(finals_row, std::string::npos) << list.output;
  ASSERT_NE(sweep_row, std::string::npos) << list.output;
  EXPECT_LT(finals_row, sweep_row) << list.output;
  auto row = [&](std::size_t at) { return list.output.substr(at, list.output.find('\n', at) - at); };
  EXPECT_NE(row(finals_row).find("ok (stored best, finals; weight prep"), std::string::npos) << list.output;
  EXPECT_EQ(row(sweep_row).find("finals"), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("\"finals\" rows were re-timed together with the baseline"), std::string::npos)
      << list.output;
}

TEST(Cli, RowsTheResolverNeverRunsAreMarkedAndListedOnlyWithAll) {
  TempDir dir;
  const std::string path = dir.file("stale.db");
  const ProblemShape shape{64, 128, 256, Dtype::kBFloat16, Policy::kHalf};
  write_trials(path, shape, "wgmma_bf16", "oldtemplate00001");  // the stored best is stale: 0.25 ms
  const KernelConfig simt_config = load_search_space("simt_bf16").valid_configs(DeviceLimits{}).front();
  // A family whose template did not change: current rows, one of a config whose space has
  // dropped a knob value since (here: no knobs at all), one slower and one about as fast as
  // the stale best.
  auto record_simt = [&](const KernelConfig& config, double median_ms) {
    TuningDb db = TuningDb::open(path);
    const auto device = db.upsert_device({"NVIDIA H100 80GB HBM3", 9, 0, 132, 52428800, 13000, "13.0"});
    TrialResult simt;
    simt.shape = shape;
    simt.config = config;
    simt.template_hash = current_hash("simt_bf16");
    simt.status = TrialStatus::kOk;
    simt.timing = TimingStats{median_ms, median_ms, median_ms, 10};
    simt.error = ErrorStats{8.5e-4, 2.5e-3, 0, 0};
    db.record_trial(db.begin_run(device, {"test", "test", "hash"}), device, simt);
  };
  record_simt(KernelConfig{"simt_bf16", "simt_bf16_dropped", {}}, 0.2);
  record_simt(simt_config, 0.75);
  const std::string args = " --shape 64x128x256 --dtype bf16 --db " + path;
  const std::string simt_row = "   1  " + simt_config.name;

  // best: a current row 3x slower than the stale best does not stand in for it (the resolver
  // goes on to nearer shapes or its default); the stale best is shown marked, with what to run.
  const auto best = fusetune("best" + args);
  EXPECT_EQ(best.exit_code, 0) << best.output;
  EXPECT_EQ(best.output.find(simt_row), std::string::npos) << best.output;
  EXPECT_NE(best.output.find("no usable row took at most 1.1x the stored best's time"), std::string::npos)
      << best.output;
  EXPECT_NE(best.output.find("   -  wgmma_bf16_fast"), std::string::npos) << best.output;
  EXPECT_NE(best.output.find("ok (older template; weight prep 0.3125 ms, once)"), std::string::npos) << best.output;
  EXPECT_NE(best.output.find("re-run `fusetune tune --shape 64x128x256 --dtype bf16 --policy half`"), std::string::npos)
      << best.output;

  // list: only the rows the resolver may run, and a count of the others; --all adds them
  // after, marked with why.
  const auto list = fusetune("list" + args);
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find(simt_row), std::string::npos) << list.output;
  EXPECT_EQ(list.output.find("wgmma_bf16_"), std::string::npos) << list.output;
  EXPECT_EQ(list.output.find("simt_bf16_dropped"), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("3 trials of an older template or not in their space not shown"), std::string::npos)
      << list.output;
  const auto all = fusetune("list --all" + args);
  EXPECT_EQ(all.exit_code, 0) << all.output;
  const auto first = all.output.find(simt_row);
  const auto fast = all.output.find("   -  wgmma_bf16_fast");
  const auto wrong = all.output.find("wrong_result (older template): relative error above the bound");
  const auto dropped = all.output.find("   -  simt_bf16_dropped");
  ASSERT_NE(first, std::string::npos) << all.output;
  ASSERT_NE(fast, std::string::npos) << all.output;
  ASSERT_NE(wrong, std::string::npos) << all.output;
  ASSERT_NE(dropped, std::string::npos) << all.output;
  EXPECT_NE(all.output.find("ok (not in its space)"), std::string::npos) << all.output;
  EXPECT_LT(first, fast) << all.output;
  EXPECT_EQ(all.output.find("not shown"), std::string::npos) << all.output;

  // A current row within 1.1x of the stale best stands in for it, as in the resolver.
  KernelConfig close = load_search_space("simt_bf16").valid_configs(DeviceLimits{}).back();
  record_simt(close, 0.27);
  const auto closer = fusetune("best" + args);
  EXPECT_EQ(closer.exit_code, 0) << closer.output;
  EXPECT_NE(closer.output.find("   1  " + close.name), std::string::npos) << closer.output;
  EXPECT_NE(closer.output.find("   -  wgmma_bf16_fast"), std::string::npos) << closer.output;
}

TEST(Cli, CheckCompilesAWholeWgmmaSpaceWithoutAGpu) {
  const auto result = fusetune("check --quiet --space wgmma_bf16");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("0 failed, 0 over resource limits"), std::string::npos) << result.output;
}

TEST(Cli, MissingOrMalformedSearchSpaceFile) {
  TempDir dir;
  expect_one_line_error(fusetune("check --space " + dir.file("absent.json")), 1, "absent.json");
  std::ofstream(dir.file("broken.json")) << "{\"family\": \"x\", ";
  expect_one_line_error(fusetune("check --space " + dir.file("broken.json")), 1, "broken.json");
}

TEST(Cli, QueriesOfMissingCorruptOrForeignDatabasesLeaveThemUntouched) {
  TempDir dir;
  expect_one_line_error(fusetune("best --db " + dir.file("absent.db")), 1, "absent.db");
  EXPECT_FALSE(std::filesystem::exists(dir.file("absent.db")));

  const std::string corrupt = dir.file("corrupt.db");
  std::ofstream(corrupt, std::ios::binary) << std::string(4096, '\x5a');
  const std::string corrupt_before = read_bytes(corrupt);
  expect_one_line_error(fusetune("list --db " + corrupt), 1, "corrupt.db");
  EXPECT_EQ(read_bytes(corrupt), corrupt_before);

  const std::string foreign = dir.file("foreign.db");
  ASSERT_EQ(run_command("python3 -c \"import sqlite3; c=sqlite3.connect('" + foreign +
                        "'); c.execute('create table photos(id integer)'); c.commit()\"")
                .exit_code,
            0);
  const std::string foreign_before = read_bytes(foreign);
  expect_one_line_error(fusetune("best --db " + foreign), 1, "not a fusetune database");
  expect_one_line_error(fusetune("tune --db " + foreign), 1, "not a fusetune database");
  EXPECT_EQ(read_bytes(foreign), foreign_before);
}

TEST(Cli, TuneIntoAnUnwritablePathFailsBeforeAnyWork) {
  expect_one_line_error(fusetune("tune --db /nonexistent-dir/sub/x.db"), 1, "/nonexistent-dir/sub");
}

TEST(Cli, TuneWithoutAGpuSaysSoAndCreatesNothing) {
  if (!gpu_unavailable_reason()) GTEST_SKIP() << "a GPU is present: this checks the behaviour without one";
  TempDir dir;
  const auto result = fusetune("tune --db " + dir.file("t.db") + " --cache-dir " + dir.file("cache"));
  expect_one_line_error(result, 1, "GPU");
  EXPECT_FALSE(std::filesystem::exists(dir.file("t.db")));
}

TEST(Cli, CheckCompilesATestSpaceWithoutAGpu) {
  const auto result = fusetune("check --quiet --space " + source_path("tests/data/faults.json") + " --template-dir " +
                               source_path("tests/data"));
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("3 variants: 3 compiled, 0 failed"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace fusetune::testing
