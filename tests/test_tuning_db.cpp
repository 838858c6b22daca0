// Tests of TuningDb: round trips of every stored field, upsert, orderings, best selection under
// the policy's error bound, migration of a version-1 file, two writer processes, durability
// across SIGKILL, and the refusal (file untouched) of files that are not fusetune databases.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "fusetune/errors.h"
#include "test_support.h"
#include "tuning_db.h"

namespace fusetune {
/// The migration scripts in order (generated at build time from db/migrations/).
const std::vector<std::string>& embedded_migrations();
}  // namespace fusetune

namespace fusetune {
namespace {

using testing::TempDir;

DeviceFingerprint h100() { return DeviceFingerprint{"NVIDIA H100 80GB HBM3", 9, 0, 132, 52428800, 13000, "13.0"}; }

DeviceFingerprint a100() { return DeviceFingerprint{"NVIDIA A100-SXM4-80GB", 8, 0, 108, 41943040, 13000, "13.0"}; }

ProblemShape headline_highest() { return ProblemShape{1024, 8192, 8192, Dtype::kFloat32, Policy::kHighest}; }

KernelConfig ffma_config(const std::string& name) {
  return KernelConfig{"ffma", name, KnobValues{{"tile_m", 128}, {"tile_n", 64}, {"stages", 3}}};
}

/// An ok trial timed at `median_ms` with relative error `rel_error`.
TrialResult ok_trial(const std::string& name, double median_ms, double rel_error = 1e-7,
                     const ProblemShape& shape = headline_highest()) {
  TrialResult trial;
  trial.shape = shape;
  trial.config = ffma_config(name);
  trial.template_hash = "templatehash0001";
  trial.status = TrialStatus::kOk;
  trial.compile_ms = 812.5;
  trial.verify_ms = 40.25;
  trial.bench_ms = 120.75;
  trial.timing = TimingStats{median_ms, median_ms * 0.98, median_ms * 1.05, 37};
  trial.error = ErrorStats{rel_error, 3.5e-5, 0, 0};
  trial.registers = 168;
  return trial;
}

/// A trial that failed before running: no timing, no error statistics.
TrialResult failed_trial(const std::string& name, TrialStatus status, const ProblemShape& shape = headline_highest()) {
  TrialResult trial;
  trial.shape = shape;
  trial.config = ffma_config(name);
  trial.template_hash = "templatehash0001";
  trial.status = status;
  trial.message = "error: identifier \"kTileQ\" is undefined";
  trial.compile_ms = 95;
  return trial;
}

std::optional<std::string> file_bytes(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) return std::nullopt;
  std::ifstream stream(path, std::ios::binary);
  if (!stream) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream << bytes;
}

/// Runs SQL on a file through the sqlite3 C API directly, as another program would.
void raw_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

std::int64_t raw_query_int(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::int64_t value = -1;
  if (sqlite3_step(statement) == SQLITE_ROW) value = sqlite3_column_int64(statement, 0);
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return value;
}

/// Runs `body` in a forked child; returns the child's wait status. The child exits 0 when
/// `body` returns, 1 when it throws; it never returns into the test framework.
int run_in_child(const std::function<void()>& body) {
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int code = 0;
    try {
      body();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "child: %s\n", error.what());
      code = 1;
    }
    _exit(code);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

class TuningDbTest : public ::testing::Test {
 protected:
  /// A database with the H100 device and one run, both ids kept.
  TuningDb open_with_run() {
    TuningDb db = TuningDb::open(path_);
    device_id_ = db.upsert_device(h100());
    run_id_ = db.begin_run(device_id_, RunInfo{"0.1.0", "fusetune tune --dims 1024x8192x8192", "sshash"});
    return db;
  }

  TempDir dir_;
  std::string path_ = dir_.file("tuning.db");
  std::int64_t device_id_ = 0;
  std::int64_t run_id_ = 0;
};

TEST(DeviceFingerprint, KeyJoinsEveryField) {
  EXPECT_EQ(h100().key(), "NVIDIA H100 80GB HBM3|9.0|132|52428800|13000|13.0");
  DeviceFingerprint other = h100();
  other.driver_version = 12080;
  EXPECT_NE(other.key(), h100().key());
}

TEST_F(TuningDbTest, CreatesCurrentSchemaInWalModeWithApplicationId) {
  {
    TuningDb db = TuningDb::open(path_);
    EXPECT_EQ(db.schema_version(), TuningDb::current_schema_version());
    EXPECT_EQ(TuningDb::current_schema_version(), int(embedded_migrations().size()));
    EXPECT_GE(TuningDb::current_schema_version(), 2);
  }
  EXPECT_EQ(raw_query_int(path_, "PRAGMA application_id"), 0x46545544);
  EXPECT_EQ(raw_query_int(path_, "PRAGMA user_version"), TuningDb::current_schema_version());
  // WAL is persistent: the file header says so after the connection closed.
  EXPECT_EQ(raw_query_int(path_, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
  EXPECT_EQ(raw_query_int(path_,
                          "SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND "
                          "name IN ('device', 'run', 'trial', 'baseline', 'best') AND strict = 1"),
            5);
}

TEST_F(TuningDbTest, UpsertDeviceReturnsSameIdForSameFingerprint) {
  TuningDb db = TuningDb::open(path_);
  const auto first = db.upsert_device(h100());
  EXPECT_EQ(db.upsert_device(h100()), first);
  EXPECT_NE(db.upsert_device(a100()), first);
}

TEST_F(TuningDbTest, RunsKeepTheSeedOfTheirInputs) {
  TuningDb db = TuningDb::open(path_);
  const auto device = db.upsert_device(h100());
  const auto run = db.begin_run(device, RunInfo{"0.1.0", "fusetune tune --seed 12345", "sshash", 12345});
  EXPECT_EQ(raw_query_int(path_, "SELECT seed FROM run WHERE id = " + std::to_string(run)), 12345);
}

TEST_F(TuningDbTest, OkTrialRoundTripsEveryField) {
  TuningDb db = open_with_run();
  TrialResult trial = ok_trial("ffma_t128x64_s3", 2.625, 6.5e-7);
  trial.error->allclose_violations = 0;
  trial.error->non_finite = 0;
  const auto id = db.record_trial(run_id_, device_id_, trial);
  const auto stored = db.trials(h100().key(), trial.shape);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].id, id);
  EXPECT_EQ(stored[0].run_id, run_id_);
  EXPECT_EQ(stored[0].device_key, h100().key());
  const TrialResult& back = stored[0].result;
  EXPECT_EQ(back.shape, trial.shape);
  EXPECT_EQ(back.config, trial.config);
  EXPECT_EQ(back.template_hash, trial.template_hash);
  EXPECT_EQ(back.status, TrialStatus::kOk);
  EXPECT_EQ(back.message, "");
  EXPECT_DOUBLE_EQ(back.compile_ms, 812.5);
  EXPECT_DOUBLE_EQ(back.verify_ms, 40.25);
  EXPECT_DOUBLE_EQ(back.bench_ms, 120.75);
  ASSERT_TRUE(back.timing.has_value());
  EXPECT_DOUBLE_EQ(back.timing->median_ms, trial.timing->median_ms);
  EXPECT_DOUBLE_EQ(back.timing->min_ms, trial.timing->min_ms);
  EXPECT_DOUBLE_EQ(back.timing->max_ms, trial.timing->max_ms);
  EXPECT_EQ(back.timing->samples, 37);
  ASSERT_TRUE(back.error.has_value());
  EXPECT_DOUBLE_EQ(back.error->relative_l2, 6.5e-7);
  EXPECT_DOUBLE_EQ(back.error->max_abs, 3.5e-5);
  EXPECT_EQ(back.error->allclose_violations, 0);
  EXPECT_EQ(back.error->non_finite, 0);
  EXPECT_EQ(back.registers, 168);
  EXPECT_DOUBLE_EQ(back.prep_ms, 0.0);
}

TEST_F(TuningDbTest, WeightPreparationTimeRoundTripsAndDefaultsToZero) {
  TuningDb db = open_with_run();
  TrialResult prepared = ok_trial("wgmma_3xtf32_a", 1.25);
  prepared.prep_ms = 0.3125;
  db.record_trial(run_id_, device_id_, prepared);
  db.record_trial(run_id_, device_id_, ok_trial("ffma_b", 2.5));
  const auto stored = db.trials(h100().key(), headline_highest());
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].result.config.name, "wgmma_3xtf32_a");
  EXPECT_DOUBLE_EQ(stored[0].result.prep_ms, 0.3125);
  EXPECT_DOUBLE_EQ(stored[1].result.prep_ms, 0.0);
  EXPECT_DOUBLE_EQ(db.update_best(device_id_, headline_highest())->result.prep_ms, 0.3125);
  EXPECT_EQ(raw_query_int(path_, "SELECT count(*) FROM trial WHERE prep_ms > 0"), 1);
}

TEST_F(TuningDbTest, FinalsFlagRoundTripsAndASweepClearsIt) {
  TuningDb db = open_with_run();
  TrialResult finalist = ok_trial("ffma_a", 2.5);
  finalist.timed_in_finals = true;
  db.record_trial(run_id_, device_id_, finalist);
  db.record_trial(run_id_, device_id_, ok_trial("ffma_b", 2.25));
  auto stored = db.trials(h100().key(), headline_highest());
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].result.config.name, "ffma_b");
  EXPECT_FALSE(stored[0].result.timed_in_finals);
  EXPECT_TRUE(stored[1].result.timed_in_finals);
  EXPECT_EQ(raw_query_int(path_, "SELECT count(*) FROM trial WHERE timed_in_finals = 1"), 1);
  // A later sweep (a --retune) measures the config again: its row then holds a sweep time.
  db.record_trial(run_id_, device_id_, ok_trial("ffma_a", 2.75));
  stored = db.trials(h100().key(), headline_highest());
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_FALSE(stored[1].result.timed_in_finals);
  EXPECT_DOUBLE_EQ(stored[1].result.timing->median_ms, 2.75);
}

TEST_F(TuningDbTest, FailedTrialRoundTripsWithoutTimingOrError) {
  TuningDb db = open_with_run();
  const TrialResult trial = failed_trial("ffma_t256x256_s4", TrialStatus::kCompileFailed);
  db.record_trial(run_id_, device_id_, trial);
  const auto stored = db.trials(h100().key(), trial.shape);
  ASSERT_EQ(stored.size(), 1u);
  const TrialResult& back = stored[0].result;
  EXPECT_EQ(back.status, TrialStatus::kCompileFailed);
  EXPECT_EQ(back.message, trial.message);
  EXPECT_DOUBLE_EQ(back.compile_ms, 95);
  EXPECT_FALSE(back.timing.has_value());
  EXPECT_FALSE(back.error.has_value());
  EXPECT_EQ(back.registers, 0);
}

TEST_F(TuningDbTest, WrongResultKeepsErrorCountsAndNanError) {
  TuningDb db = open_with_run();
  TrialResult trial = failed_trial("ffma_t64x64_s2", TrialStatus::kWrongResult);
  trial.error = ErrorStats{std::nan(""), std::numeric_limits<double>::infinity(), 4096, 17};
  db.record_trial(run_id_, device_id_, trial);
  const auto stored = db.trials("", trial.shape);
  ASSERT_EQ(stored.size(), 1u);
  ASSERT_TRUE(stored[0].result.error.has_value());
  EXPECT_TRUE(std::isnan(stored[0].result.error->relative_l2));
  EXPECT_TRUE(std::isinf(stored[0].result.error->max_abs));
  EXPECT_EQ(stored[0].result.error->allclose_violations, 4096);
  EXPECT_EQ(stored[0].result.error->non_finite, 17);
}

TEST_F(TuningDbTest, RecordTrialRejectsInconsistentRows) {
  TuningDb db = open_with_run();
  TrialResult untimed = ok_trial("ffma_t128x64_s3", 1.0);
  untimed.timing.reset();
  EXPECT_THROW(db.record_trial(run_id_, device_id_, untimed), DataError);  // CHECK constraint
  // Foreign keys are enforced: no trial of an unknown run or device.
  EXPECT_THROW(db.record_trial(run_id_ + 99, device_id_, ok_trial("ffma_a", 1.0)), DataError);
  EXPECT_THROW(db.record_trial(run_id_, device_id_ + 99, ok_trial("ffma_b", 1.0)), DataError);
  EXPECT_TRUE(db.trials("", headline_highest()).empty());  // failed transactions left nothing
  // The connection is usable afterwards: the failed transactions were rolled back.
  db.record_trial(run_id_, device_id_, ok_trial("ffma_c", 1.0));
  EXPECT_EQ(db.trials("", headline_highest()).size(), 1u);
}

TEST_F(TuningDbTest, RecordTrialWithSameKeyReplacesIt) {
  TuningDb db = open_with_run();
  const auto first = db.record_trial(run_id_, device_id_, failed_trial("ffma_a", TrialStatus::kTimeout));
  const auto second_run = db.begin_run(device_id_, RunInfo{"0.1.0", "fusetune tune --retune", "sshash"});
  const auto replaced = db.record_trial(second_run, device_id_, ok_trial("ffma_a", 3.0));
  EXPECT_EQ(replaced, first);
  auto stored = db.trials(h100().key(), headline_highest());
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].run_id, second_run);
  EXPECT_EQ(stored[0].result.status, TrialStatus::kOk);
  EXPECT_EQ(stored[0].result.message, "");
  ASSERT_TRUE(stored[0].result.timing.has_value());
  EXPECT_DOUBLE_EQ(stored[0].result.timing->median_ms, 3.0);

  // Another template hash is another key: both rows are kept.
  TrialResult other_template = ok_trial("ffma_a", 2.0);
  other_template.template_hash = "templatehash0002";
  EXPECT_NE(db.record_trial(second_run, device_id_, other_template), first);
  EXPECT_EQ(db.trials(h100().key(), headline_highest()).size(), 2u);
}

TEST_F(TuningDbTest, MeasuredConfigNamesFiltersByDeviceShapeFamilyAndTemplateHash) {
  TuningDb db = open_with_run();
  const auto other_device = db.upsert_device(a100());
  const ProblemShape shape = headline_highest();
  ProblemShape other_shape = shape;
  other_shape.m = 512;
  ProblemShape other_policy = shape;
  other_policy.policy = Policy::kHigh;

  db.record_trial(run_id_, device_id_, ok_trial("ffma_b", 2.0));
  db.record_trial(run_id_, device_id_, failed_trial("ffma_a", TrialStatus::kResourcesExceeded));
  db.record_trial(run_id_, other_device, ok_trial("ffma_c", 2.0));
  db.record_trial(run_id_, device_id_, ok_trial("ffma_d", 2.0, 1e-7, other_shape));
  db.record_trial(run_id_, device_id_, ok_trial("ffma_e", 2.0, 1e-7, other_policy));
  TrialResult other_hash = ok_trial("ffma_f", 2.0);
  other_hash.template_hash = "templatehash0002";
  db.record_trial(run_id_, device_id_, other_hash);
  TrialResult other_family = ok_trial("tf32_g", 2.0);
  other_family.config.family = "tf32";
  db.record_trial(run_id_, device_id_, other_family);

  EXPECT_EQ(db.measured_config_names(device_id_, shape, "ffma", "templatehash0001"),
            (std::vector<std::string>{"ffma_a", "ffma_b"}));
  EXPECT_EQ(db.measured_config_names(device_id_, shape, "ffma", "templatehash0002"),
            (std::vector<std::string>{"ffma_f"}));
  EXPECT_EQ(db.measured_config_names(device_id_, shape, "tf32", "templatehash0001"),
            (std::vector<std::string>{"tf32_g"}));
  EXPECT_EQ(db.measured_config_names(other_device, shape, "ffma", "templatehash0001"),
            (std::vector<std::string>{"ffma_c"}));
  EXPECT_EQ(db.measured_config_names(device_id_, other_shape, "ffma", "templatehash0001"),
            (std::vector<std::string>{"ffma_d"}));
  EXPECT_EQ(db.measured_config_names(device_id_, other_policy, "ffma", "templatehash0001"),
            (std::vector<std::string>{"ffma_e"}));
}

TEST_F(TuningDbTest, TrialsListFastestOkFirstThenFailuresGroupedByStatus) {
  TuningDb db = open_with_run();
  db.record_trial(run_id_, device_id_, failed_trial("ffma_x1", TrialStatus::kTimeout));
  db.record_trial(run_id_, device_id_, ok_trial("ffma_slow", 5.0));
  db.record_trial(run_id_, device_id_, failed_trial("ffma_x2", TrialStatus::kCompileFailed));
  db.record_trial(run_id_, device_id_, ok_trial("ffma_fast", 1.5));
  db.record_trial(run_id_, device_id_, failed_trial("ffma_x3", TrialStatus::kTimeout));
  db.record_trial(run_id_, device_id_, ok_trial("ffma_mid", 2.5));
  db.record_trial(run_id_, device_id_, failed_trial("ffma_x4", TrialStatus::kCompileFailed));
  const auto other_device = db.upsert_device(a100());
  db.record_trial(run_id_, other_device, ok_trial("ffma_a100", 0.5));

  std::vector<std::string> names;
  for (const auto& stored : db.trials(h100().key(), headline_highest())) names.push_back(stored.result.config.name);
  EXPECT_EQ(names, (std::vector<std::string>{"ffma_fast", "ffma_mid", "ffma_slow", "ffma_x2", "ffma_x4", "ffma_x1",
                                             "ffma_x3"}));

  // "" means any device: the A100 trial is fastest of all.
  const auto everywhere = db.trials("", headline_highest());
  ASSERT_EQ(everywhere.size(), 8u);
  EXPECT_EQ(everywhere[0].result.config.name, "ffma_a100");
  EXPECT_EQ(everywhere[0].device_key, a100().key());
  EXPECT_TRUE(db.trials("no such device", headline_highest()).empty());
}

TEST_F(TuningDbTest, UpdateBestPicksFastestOkWithinErrorBound) {
  TuningDb db = open_with_run();
  const ProblemShape shape = headline_highest();  // bound 2e-6
  db.record_trial(run_id_, device_id_, ok_trial("ffma_accurate_slow", 3.0, 1e-7));
  const auto expected = db.record_trial(run_id_, device_id_, ok_trial("ffma_accurate", 2.0, 1.9e-6));
  db.record_trial(run_id_, device_id_, ok_trial("ffma_too_inexact", 1.0, 8.4e-6));
  db.record_trial(run_id_, device_id_, failed_trial("ffma_faulted", TrialStatus::kDeviceFault));

  const auto best = db.update_best(device_id_, shape);
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(best->id, expected);
  EXPECT_EQ(best->result.config.name, "ffma_accurate");

  const auto stored = db.best(h100().key(), shape);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->id, expected);
  EXPECT_EQ(db.best("", shape)->id, expected);
  EXPECT_FALSE(db.best(a100().key(), shape).has_value());

  // The same error passes the looser bound of the high policy.
  ProblemShape high = shape;
  high.policy = Policy::kHigh;  // bound 5e-4
  const auto tf32 = db.record_trial(run_id_, device_id_, ok_trial("ffma_too_inexact", 1.0, 8.4e-6, high));
  EXPECT_EQ(db.update_best(device_id_, high)->id, tf32);
}

TEST_F(TuningDbTest, UpdateBestWithoutQualifyingTrialClearsBest) {
  TuningDb db = open_with_run();
  const ProblemShape shape = headline_highest();
  db.record_trial(run_id_, device_id_, ok_trial("ffma_inexact", 1.0, 1e-3));
  db.record_trial(run_id_, device_id_, failed_trial("ffma_bad", TrialStatus::kLaunchFailed));
  EXPECT_FALSE(db.update_best(device_id_, shape).has_value());
  EXPECT_FALSE(db.best(h100().key(), shape).has_value());
}

TEST_F(TuningDbTest, BestIgnoresTrialsOfAnOlderTemplate) {
  TuningDb db = open_with_run();
  const ProblemShape shape = headline_highest();
  // ffma_a was measured faster with an older ffma template; the current one built ffma_b.
  TrialResult stale = ok_trial("ffma_a", 1.0);
  stale.template_hash = "oldtemplate00001";
  db.record_trial(run_id_, device_id_, stale);
  const auto current = db.record_trial(run_id_, device_id_, ok_trial("ffma_b", 2.0));
  const std::map<std::string, std::string> hashes{{"ffma", "templatehash0001"}};
  EXPECT_EQ(db.update_best(device_id_, shape, hashes)->id, current);
  EXPECT_EQ(db.best(h100().key(), shape)->result.config.name, "ffma_b");
  // Families the map does not name are taken as they are (the database cannot judge them).
  EXPECT_EQ(db.update_best(device_id_, shape, {{"wgmma_3xtf32", "x"}})->result.config.name, "ffma_a");
  // Nothing measured with the current template: no best.
  EXPECT_FALSE(db.update_best(device_id_, shape, {{"ffma", "newertemplate001"}}).has_value());
}

TEST_F(TuningDbTest, RemeasuringTheBestTrialRecomputesBest) {
  TuningDb db = open_with_run();
  const ProblemShape shape = headline_highest();
  const auto winner = db.record_trial(run_id_, device_id_, ok_trial("ffma_a", 1.0));
  const auto runner_up = db.record_trial(run_id_, device_id_, ok_trial("ffma_b", 2.0));
  ASSERT_EQ(db.update_best(device_id_, shape)->id, winner);
  // --retune finds ffma_a now faults: the best row must not keep pointing at it.
  db.record_trial(run_id_, device_id_, failed_trial("ffma_a", TrialStatus::kDeviceFault));
  const auto best = db.best(h100().key(), shape);
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(best->id, runner_up);
}

TEST_F(TuningDbTest, BestsListsEveryTunedShapeOfTheDevice) {
  TuningDb db = open_with_run();
  const auto other_device = db.upsert_device(a100());
  std::vector<ProblemShape> shapes;
  for (std::int64_t m : {4096, 128, 1024})
    shapes.push_back(ProblemShape{m, 8192, 8192, Dtype::kFloat32, Policy::kHighest});
  for (const auto& shape : shapes) {
    db.record_trial(run_id_, device_id_,
                    ok_trial("ffma_m" + std::to_string(shape.m), 0.001 * double(shape.m), 1e-7, shape));
    ASSERT_TRUE(db.update_best(device_id_, shape).has_value());
  }
  const ProblemShape half{1024, 8192, 8192, Dtype::kBFloat16, Policy::kHalf};
  db.record_trial(run_id_, device_id_, ok_trial("bf16_a", 0.2, 3e-3, half));
  ASSERT_TRUE(db.update_best(device_id_, half).has_value());
  db.record_trial(run_id_, other_device, ok_trial("ffma_a100", 0.5));
  ASSERT_TRUE(db.update_best(other_device, headline_highest()).has_value());

  const auto bests = db.bests(h100().key(), Dtype::kFloat32, Policy::kHighest);
  ASSERT_EQ(bests.size(), 3u);
  EXPECT_EQ(bests[0].result.shape.m, 128);
  EXPECT_EQ(bests[1].result.shape.m, 1024);
  EXPECT_EQ(bests[2].result.shape.m, 4096);
  EXPECT_EQ(bests[1].result.config.name, "ffma_m1024");
  for (const auto& best : bests) EXPECT_EQ(best.device_key, h100().key());

  const auto bf16 = db.bests(h100().key(), Dtype::kBFloat16, Policy::kHalf);
  ASSERT_EQ(bf16.size(), 1u);
  EXPECT_EQ(bf16[0].result.config.name, "bf16_a");
  EXPECT_EQ(db.bests(a100().key(), Dtype::kFloat32, Policy::kHighest).size(), 1u);
  EXPECT_TRUE(db.bests(h100().key(), Dtype::kFloat16, Policy::kHalf).empty());
}

TEST_F(TuningDbTest, BaselinesRoundTripAndLatestWins) {
  TuningDb db = open_with_run();
  const ProblemShape shape = headline_highest();
  EXPECT_FALSE(db.latest_baseline(h100().key(), shape, "cublas_sgemm+epilogue").has_value());
  db.record_baseline(
      run_id_, device_id_, shape,
      BaselineResult{"cublas_sgemm+epilogue", TimingStats{2.8, 2.7, 2.9, 25}, ErrorStats{7e-7, 2e-5, 0, 0}});
  const auto later_run = db.begin_run(device_id_, RunInfo{"0.1.0", "fusetune tune", "sshash"});
  const BaselineResult latest{"cublas_sgemm+epilogue", TimingStats{2.669, 2.6, 2.75, 40},
                              ErrorStats{6.9e-7, 1.9e-5, 3, 1}};
  db.record_baseline(later_run, device_id_, shape, latest);
  db.record_baseline(
      later_run, device_id_, shape,
      BaselineResult{"cublas_tf32+epilogue", TimingStats{0.33, 0.32, 0.34, 40}, ErrorStats{1.3e-4, 1e-3, 0, 0}});

  const auto back = db.latest_baseline(h100().key(), shape, "cublas_sgemm+epilogue");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->name, latest.name);
  EXPECT_DOUBLE_EQ(back->timing.median_ms, 2.669);
  EXPECT_DOUBLE_EQ(back->timing.min_ms, 2.6);
  EXPECT_DOUBLE_EQ(back->timing.max_ms, 2.75);
  EXPECT_EQ(back->timing.samples, 40);
  EXPECT_DOUBLE_EQ(back->error.relative_l2, 6.9e-7);
  EXPECT_DOUBLE_EQ(back->error.max_abs, 1.9e-5);
  EXPECT_EQ(back->error.allclose_violations, 3);
  EXPECT_EQ(back->error.non_finite, 1);
  EXPECT_DOUBLE_EQ(db.latest_baseline("", shape, "cublas_tf32+epilogue")->timing.median_ms, 0.33);
  EXPECT_FALSE(db.latest_baseline(a100().key(), shape, "cublas_sgemm+epilogue").has_value());
  ProblemShape other = shape;
  other.k = 4096;
  EXPECT_FALSE(db.latest_baseline(h100().key(), other, "cublas_sgemm+epilogue").has_value());
}

/// Builds a schema-version-1 file by running only the first migration script, as a v1 build
/// of fusetune would have left it, with a device, a run, an ok trial and a failed one.
void create_version1_database(const std::string& path) {
  raw_sql(path, embedded_migrations().at(0));
  const std::string device_row =
      "(1, '" + h100().key() + "', 'NVIDIA H100 80GB HBM3', 9, 0, 132, 52428800, 13000, '13.0')";
  raw_sql(path,
          "INSERT INTO device (id, fingerprint, name, cc_major, cc_minor, sm_count, l2_bytes, "
          "driver_version, nvrtc_version) VALUES " +
              device_row);
  raw_sql(path,
          "INSERT INTO run (id, device_id, fusetune_version, argv, search_space_hash) "
          "VALUES (1, 1, '0.0.9', 'fusetune tune', 'sshash');"
          "INSERT INTO trial (run_id, device_id, m, n, k, dtype, policy, family, config_name, "
          "config_json, template_hash, status, compile_ms, time_median_ms, time_min_ms, "
          "time_max_ms, samples, rel_error, max_abs_error) VALUES (1, 1, 1024, 8192, 8192, "
          "'fp32', 'highest', 'ffma', 'ffma_v1', "
          "'{\"family\":\"ffma\",\"name\":\"ffma_v1\",\"knobs\":{\"tile_m\":64}}', 'th1', 'ok', "
          "700, 2.75, 2.7, 2.8, 30, 1e-7, 1e-5);"
          "INSERT INTO trial (run_id, device_id, m, n, k, dtype, policy, family, config_name, "
          "config_json, template_hash, status, message) VALUES (1, 1, 1024, 8192, 8192, "
          "'fp32', 'highest', 'ffma', 'ffma_v1_bad', "
          "'{\"family\":\"ffma\",\"name\":\"ffma_v1_bad\",\"knobs\":{\"tile_m\":512}}', "
          "'th1', 'compile_failed', 'too big');");
}

TEST_F(TuningDbTest, MigratesVersion1DatabaseKeepingItsRows) {
  create_version1_database(path_);
  ASSERT_EQ(raw_query_int(path_, "PRAGMA user_version"), 1);
  ASSERT_EQ(raw_query_int(path_, "SELECT count(*) FROM sqlite_schema WHERE name = 'baseline'"), 0);

  TuningDb db = TuningDb::open(path_, /*create=*/false);
  EXPECT_EQ(db.schema_version(), TuningDb::current_schema_version());
  const auto stored = db.trials(h100().key(), headline_highest());
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].result.config.name, "ffma_v1");
  EXPECT_EQ(stored[0].result.config.knob("tile_m"), 64);
  ASSERT_TRUE(stored[0].result.timing.has_value());
  EXPECT_DOUBLE_EQ(stored[0].result.timing->median_ms, 2.75);
  ASSERT_TRUE(stored[0].result.error.has_value());  // backfilled counts make it present
  EXPECT_DOUBLE_EQ(stored[0].result.error->relative_l2, 1e-7);
  EXPECT_EQ(stored[0].result.error->allclose_violations, 0);
  EXPECT_EQ(stored[0].result.registers, 0);
  EXPECT_DOUBLE_EQ(stored[0].result.prep_ms, 0.0);  // version 4's column, 0 for old rows
  EXPECT_FALSE(stored[0].result.timed_in_finals);   // version 5's: unknown, so not claimed
  EXPECT_EQ(stored[1].result.status, TrialStatus::kCompileFailed);
  EXPECT_FALSE(stored[1].result.error.has_value());

  // The migrated file takes new-version data: baselines and register counts.
  const auto device_id = db.upsert_device(h100());
  EXPECT_EQ(device_id, 1);
  db.record_baseline(1, device_id, headline_highest(),
                     BaselineResult{"cublas", TimingStats{2.7, 2.6, 2.8, 20}, ErrorStats{}});
  EXPECT_TRUE(db.latest_baseline(h100().key(), headline_highest(), "cublas").has_value());
  EXPECT_EQ(db.update_best(device_id, headline_highest())->result.config.name, "ffma_v1");
  EXPECT_EQ(raw_query_int(path_, "PRAGMA user_version"), TuningDb::current_schema_version());
}

TEST_F(TuningDbTest, ReadOnlyReadsVersion1WithoutMigrating) {
  create_version1_database(path_);
  const auto before = file_bytes(path_);
  {
    TuningDb db = TuningDb::open_read_only(path_);
    EXPECT_EQ(db.schema_version(), 1);
    const auto stored = db.trials("", headline_highest());
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[0].result.config.name, "ffma_v1");
    ASSERT_TRUE(stored[0].result.error.has_value());
    EXPECT_FALSE(stored[1].result.error.has_value());
    EXPECT_DOUBLE_EQ(stored[0].result.prep_ms, 0.0);  // a version-1 file has no prep_ms column
    EXPECT_FALSE(stored[0].result.timed_in_finals);   // nor timed_in_finals
    EXPECT_FALSE(db.latest_baseline("", headline_highest(), "cublas").has_value());
    EXPECT_TRUE(db.bests(h100().key(), Dtype::kFloat32, Policy::kHighest).empty());
  }
  EXPECT_EQ(file_bytes(path_), before);
  EXPECT_EQ(raw_query_int(path_, "PRAGMA user_version"), 1);
}

TEST_F(TuningDbTest, ReadOnlyNeverWrites) {
  {
    TuningDb db = open_with_run();
    db.record_trial(run_id_, device_id_, ok_trial("ffma_a", 1.0));
    db.update_best(device_id_, headline_highest());
  }
  const auto before = file_bytes(path_);
  {
    TuningDb db = TuningDb::open_read_only(path_);
    EXPECT_EQ(db.best(h100().key(), headline_highest())->result.config.name, "ffma_a");
    EXPECT_THROW(db.upsert_device(a100()), std::logic_error);
    EXPECT_THROW(db.record_trial(1, 1, ok_trial("ffma_b", 1.0)), std::logic_error);
    EXPECT_THROW(db.update_best(1, headline_highest()), std::logic_error);
  }
  EXPECT_EQ(file_bytes(path_), before);
  EXPECT_THROW(TuningDb::open_read_only(dir_.file("absent.db")), DataError);
  EXPECT_FALSE(std::filesystem::exists(dir_.file("absent.db")));
}

TEST_F(TuningDbTest, TwoProcessesWriteAtOnce) {
  { TuningDb db = TuningDb::open(path_); }  // no connection may cross fork()
  constexpr int kTrialsPerChild = 200;
  int start[2];
  ASSERT_EQ(pipe(start), 0);
  std::vector<pid_t> children;
  for (int child = 0; child < 2; ++child) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int code = 0;
      try {
        close(start[1]);
        TuningDb db = TuningDb::open(path_);
        const auto device_id = db.upsert_device(h100());
        const auto run_id = db.begin_run(device_id, RunInfo{"0.1.0", "child", "sshash"});
        char byte = 0;
        (void)!read(start[0], &byte, 1);  // returns at EOF, when the parent closes its end
        for (int i = 0; i < kTrialsPerChild; ++i) {
          db.record_trial(run_id, device_id,
                          ok_trial("ffma_c" + std::to_string(child) + "_" + std::to_string(i), 1.0 + i * 0.01));
        }
      } catch (const std::exception& error) {
        std::fprintf(stderr, "child %d: %s\n", child, error.what());
        code = 1;
      }
      _exit(code);
    }
    children.push_back(pid);
  }
  close(start[0]);
  close(start[1]);  // both children start writing now
  for (const pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  }
  TuningDb db = TuningDb::open_read_only(path_);
  const auto stored = db.trials(h100().key(), headline_highest());
  EXPECT_EQ(stored.size(), 2u * kTrialsPerChild);
  EXPECT_EQ(raw_query_int(path_, "SELECT count(*) FROM device"), 1);
  EXPECT_EQ(raw_query_int(path_, "SELECT count(DISTINCT run_id) FROM trial"), 2);
}

TEST_F(TuningDbTest, TrialsSurviveSigkillOfTheWriter) {
  constexpr int kTrials = 25;
  const int status = run_in_child([&] {
    TuningDb db = TuningDb::open(path_);
    const auto device_id = db.upsert_device(h100());
    const auto run_id = db.begin_run(device_id, RunInfo{"0.1.0", "killed", "sshash"});
    for (int i = 0; i < kTrials; ++i)
      db.record_trial(run_id, device_id, ok_trial("ffma_k" + std::to_string(i), 1.0 + i));
    raise(SIGKILL);  // no destructor, no close, no checkpoint
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));  // the data is in the WAL, not merged

  TuningDb db = TuningDb::open(path_, /*create=*/false);
  const auto stored = db.trials(h100().key(), headline_highest());
  ASSERT_EQ(stored.size(), std::size_t(kTrials));
  EXPECT_EQ(stored.front().result.config.name, "ffma_k0");
  EXPECT_EQ(stored.back().result.config.name, "ffma_k" + std::to_string(kTrials - 1));
}

/// Expects both open() and open_read_only() to throw DataError whose one-line message names
/// `path` and contains `reason`, leaving the bytes at `path` as they were (or absent).
void expect_refused(const std::string& path, const std::string& reason, bool also_read_only = true) {
  const auto before = file_bytes(path);
  std::vector<std::function<void()>> opens = {[&] { TuningDb::open(path); }};
  if (also_read_only) opens.push_back([&] { TuningDb::open_read_only(path); });
  for (const auto& open : opens) {
    try {
      open();
      ADD_FAILURE() << "no DataError for " << path;
    } catch (const DataError& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_NE(message.find(reason), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      EXPECT_NE(message.find("; "), std::string::npos) << "says what to do: " << message;
    }
    EXPECT_EQ(file_bytes(path), before);
  }
  if (!std::filesystem::is_directory(path)) {
    EXPECT_FALSE(std::filesystem::exists(path + "-wal")) << "a WAL file was created";
    EXPECT_FALSE(std::filesystem::exists(path + "-journal")) << "a journal was created";
  }
}

TEST_F(TuningDbTest, RefusesRandomBytes) {
  std::mt19937 random(42);
  std::string bytes(8192, '\0');
  for (auto& byte : bytes) byte = char(random() & 0xff);
  write_file(path_, bytes);
  expect_refused(path_, "is not an SQLite database");
}

TEST_F(TuningDbTest, RefusesCorruptFileWithSqliteMagic) {
  std::mt19937 random(7);
  std::string bytes(std::string("SQLite format 3") + '\0');
  for (int i = 0; i < 4096; ++i) bytes += char(random() & 0xff);
  write_file(path_, bytes);
  expect_refused(path_, "is not an SQLite database");
}

TEST_F(TuningDbTest, RefusesTextFile) {
  write_file(path_, "name,median_ms\nffma_a,2.5\n");
  expect_refused(path_, "is not an SQLite database");
}

TEST_F(TuningDbTest, RefusesForeignSqliteFile) {
  raw_sql(path_,
          "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES "
          "('x');");
  expect_refused(path_, "is not a fusetune database");
  raw_sql(path_, "PRAGMA application_id = 1234");
  expect_refused(path_, "is not a fusetune database");
}

TEST_F(TuningDbTest, RefusesNewerSchemaVersion) {
  { TuningDb db = TuningDb::open(path_); }
  raw_sql(path_, "PRAGMA user_version = " + std::to_string(TuningDb::current_schema_version() + 1));
  expect_refused(path_, "newer than this build");
}

TEST_F(TuningDbTest, RefusesMissingFileWithoutCreate) {
  const std::string missing = dir_.file("missing.db");
  for (const auto& open : std::vector<std::function<void()>>{[&] { TuningDb::open(missing, /*create=*/false); },
                                                             [&] { TuningDb::open_read_only(missing); }}) {
    try {
      open();
      ADD_FAILURE() << "no DataError";
    } catch (const DataError& error) {
      EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
      EXPECT_NE(std::string(error.what()).find("does not exist"), std::string::npos) << error.what();
    }
    EXPECT_FALSE(std::filesystem::exists(missing));
  }
}

TEST_F(TuningDbTest, RefusesUnwritablePaths) {
  // Tests may run as root, which chmod cannot stop: use paths no one can create instead.
  const std::string under_missing_directory = dir_.file("no/such/dir/tuning.db");
  expect_refused(under_missing_directory, "does not exist");
  EXPECT_FALSE(std::filesystem::exists(dir_.file("no")));

  const std::string directory = dir_.file("a_directory.db");
  std::filesystem::create_directory(directory);
  expect_refused(directory, "is a directory");
  EXPECT_TRUE(std::filesystem::is_empty(directory));

  const std::string under_a_file = dir_.file("plain_file/tuning.db");
  write_file(dir_.file("plain_file"), "x");
  expect_refused(under_a_file, "is not a directory", /*also_read_only=*/false);
  EXPECT_THROW(TuningDb::open_read_only(under_a_file), DataError);
  EXPECT_EQ(file_bytes(dir_.file("plain_file")), "x");
}

TEST_F(TuningDbTest, EmptyFileIsInitialised) {
  write_file(path_, "");
  TuningDb db = TuningDb::open(path_, /*create=*/false);
  EXPECT_EQ(db.schema_version(), TuningDb::current_schema_version());
}

}  // namespace
}  // namespace fusetune
