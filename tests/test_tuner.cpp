// The tuner's planning without a GPU: which search spaces a problem is tuned with (every
// embedded family of its dtype and policy, or the one named), and the refusals.
#include <gtest/gtest.h>

#include "fusetune/errors.h"
#include "tuner.h"

namespace fusetune {
namespace {

std::vector<std::string> families(const std::vector<SearchSpace>& spaces) {
  std::vector<std::string> names;
  for (const SearchSpace& space : spaces) names.push_back(space.family());
  return names;
}

TEST(Tuner, EveryFamilyOfTheDtypeAndPolicyIsTunedWhenNoneIsNamed) {
  EXPECT_EQ(families(search_spaces_for("", {1, 1, 1, Dtype::kFloat32, Policy::kHighest})),
            (std::vector<std::string>{"ffma", "skinny_fp32", "wgmma_3xtf32"}));
  EXPECT_EQ(families(search_spaces_for("", {1, 1, 1, Dtype::kFloat32, Policy::kHigh})),
            (std::vector<std::string>{"wgmma_tf32"}));
  EXPECT_EQ(families(search_spaces_for("", {1, 1, 1, Dtype::kBFloat16, Policy::kHalf})),
            (std::vector<std::string>{"simt_bf16", "skinny_bf16", "wgmma_bf16"}));
  EXPECT_EQ(families(search_spaces_for("", {1, 1, 1, Dtype::kFloat16, Policy::kHalf})),
            (std::vector<std::string>{"simt_fp16", "skinny_fp16", "wgmma_fp16"}));
}

TEST(Tuner, ANamedSpaceMustImplementTheProblem) {
  EXPECT_EQ(families(search_spaces_for("wgmma_tf32", {1, 1, 1, Dtype::kFloat32, Policy::kHigh})),
            (std::vector<std::string>{"wgmma_tf32"}));
  EXPECT_THROW(search_spaces_for("wgmma_tf32", {1, 1, 1, Dtype::kFloat32, Policy::kHighest}), UsageError);
  EXPECT_THROW(search_spaces_for("ffma", {1, 1, 1, Dtype::kBFloat16, Policy::kHalf}), UsageError);
  EXPECT_THROW(search_spaces_for("nosuchfamily", {1, 1, 1}), UsageError);
}

TEST(Tuner, ADtypeAndPolicyThatDoNotGoTogetherAreRefusedBeforeAnyWork) {
  TuneOptions options;
  options.shape = ProblemShape{8, 8, 8, Dtype::kBFloat16, Policy::kHighest};
  options.db_path = "/nonexistent-dir/never.db";
  EXPECT_THROW(tune(options), UsageError);
}

BaselineResult baseline_of(double median_ms) {
  BaselineResult baseline;
  baseline.name = "cublas_tf32";
  baseline.timing.median_ms = median_ms;
  return baseline;
}

// Session 10's finals after a full tune: cuBLAS TF32 at 0.3717 ms against 0.3307 ms before.
TEST(Tuner, ABaselineThatMovedSinceThePreviousRunIsNotedWithBothTimes) {
  const auto slower = baseline_drift_note(baseline_of(0.3307), baseline_of(0.3717));
  ASSERT_TRUE(slower.has_value());
  EXPECT_NE(slower->find("cublas_tf32 took 0.3717 ms"), std::string::npos) << *slower;
  EXPECT_NE(slower->find("12% slower"), std::string::npos) << *slower;
  EXPECT_NE(slower->find("(0.3307 ms)"), std::string::npos) << *slower;
  EXPECT_EQ(slower->find('\n'), std::string::npos) << "one line";
  const auto faster = baseline_drift_note(baseline_of(0.3717), baseline_of(0.3307));
  ASSERT_TRUE(faster.has_value());
  EXPECT_NE(faster->find("11% faster"), std::string::npos) << *faster;
}

TEST(Tuner, ABaselineWithinTheToleranceOrWithoutATimeIsNotNoted) {
  EXPECT_FALSE(baseline_drift_note(baseline_of(0.3307), baseline_of(0.3335)).has_value());        // +0.8%
  EXPECT_TRUE(baseline_drift_note(baseline_of(0.3307), baseline_of(0.3335), 0.005).has_value());  // tighter
  EXPECT_FALSE(baseline_drift_note(baseline_of(0.0), baseline_of(0.3335)).has_value());
}

StoredTrial trial_of(const std::string& name, double median_ms) {
  StoredTrial stored;
  stored.result.config.name = name;
  stored.result.status = TrialStatus::kOk;
  stored.result.timing = TimingStats{};
  stored.result.timing->median_ms = median_ms;
  return stored;
}

std::vector<std::string> names(const std::vector<StoredTrial>& trials) {
  std::vector<std::string> result;
  for (const auto& stored : trials) result.push_back(stored.result.config.name);
  return result;
}

// Session 11's TF32 tune on the H100: a config timed 0.3330 ms in the sweep, while the
// finalists (each faster than it in the sweep) took 0.3500-0.3531 ms in finals on a hotter GPU.
TEST(Tuner, TheFinalistsRankFirstWhateverTheSweepTimedTheOthers) {
  const std::vector<StoredTrial> stored = {trial_of("swept_fast", 0.3330), trial_of("final_a", 0.3500),
                                           trial_of("final_b", 0.3504), trial_of("swept_slow", 0.3600)};
  EXPECT_EQ(names(rank_finalists_first(stored, {"final_a", "final_b"})),
            (std::vector<std::string>{"final_a", "final_b", "swept_fast", "swept_slow"}));
  EXPECT_EQ(names(rank_finalists_first(stored, {})), names(stored)) << "no finals: the stored order";
}

StoredTrial finals_trial_of(const std::string& name, double median_ms) {
  StoredTrial stored = trial_of(name, median_ms);
  stored.result.timed_in_finals = true;
  return stored;
}

// Session 17's bf16 re-run on the H100: five tr0 configs had sweep times (0.1708 ms) below the
// winner's finals time (0.1722 ms); chosen by time alone they filled the finals without it.
TEST(Tuner, ARerunsFinalsKeepTheStandingWinnerBesideTheSweepsFastest) {
  const std::vector<StoredTrial> stored = {trial_of("swept_1", 0.1708),       trial_of("swept_2", 0.1708),
                                           trial_of("broken", 0.1709),        trial_of("swept_3", 0.1709),
                                           finals_trial_of("winner", 0.1722), finals_trial_of("second", 0.1723),
                                           finals_trial_of("third", 0.1727),  trial_of("swept_4", 0.1730)};
  const auto eligible = [](const TrialResult& r) { return r.config.name != "broken"; };
  EXPECT_EQ(names(choose_finalists(stored, 2, eligible)),
            (std::vector<std::string>{"swept_1", "swept_2", "winner", "second"}));
  EXPECT_EQ(names(choose_finalists(stored, 5, eligible)),
            (std::vector<std::string>{"swept_1", "swept_2", "swept_3", "winner", "second", "third", "swept_4"}));
  // A first run has sweep times only.
  const std::vector<StoredTrial> first_run = {trial_of("a", 1.0), trial_of("b", 2.0), trial_of("c", 3.0)};
  EXPECT_EQ(names(choose_finalists(first_run, 2, eligible)), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(choose_finalists(stored, 0, eligible).empty());
}

}  // namespace
}  // namespace fusetune
