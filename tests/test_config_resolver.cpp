// The load-time resolver's order, without a GPU: exact row, nearest tuned shape the config
// can implement, compiled-in default, universal config; other devices' rows and rows of an
// older template never used.
#include <gtest/gtest.h>

#include "config_resolver.h"
#include "default_configs.h"
#include "fusetune/errors.h"
#include "source_generator.h"
#include "test_support.h"
#include "tuner.h"

namespace fusetune::testing {
namespace {

DeviceFingerprint h100() { return {"NVIDIA H100 80GB HBM3", 9, 0, 132, 52428800, 13000, "13.0"}; }

class ConfigResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.emplace(TuningDb::open(dir_.file("resolver.db")));
    device_id_ = db_->upsert_device(h100());
    run_id_ = db_->begin_run(device_id_, {"test", "test", "hash"});
    space_.emplace(load_search_space("ffma"));
  }

  /// The template hash this build stores for an embedded family ("t" for a test family).
  static std::string current_hash(const std::string& family) {
    for (const auto& known : embedded_families())
      if (known == family)
        return TemplateLibrary::embedded().include_closure_hash(load_search_space(family).template_file());
    return "t";
  }

  /// Stores an ok trial of `config` on `shape` (H100 fingerprint), measured with the
  /// template of `template_hash` ("" = the family's current one), and recomputes the best.
  void store_best(const ProblemShape& shape, const KernelConfig& config, double median_ms = 1.0,
                  const std::string& template_hash = "") {
    TrialResult trial;
    trial.shape = shape;
    trial.config = config;
    trial.template_hash = template_hash.empty() ? current_hash(config.family) : template_hash;
    trial.status = TrialStatus::kOk;
    trial.timing = TimingStats{median_ms, median_ms * 0.9, median_ms * 1.1, 10};
    trial.error = ErrorStats{1e-7, 1e-6, 0, 0};
    db_->record_trial(run_id_, device_id_, trial);
    ASSERT_TRUE(db_->update_best(device_id_, shape).has_value());
  }

  /// The valid configs whose knob `vec` has the value given, at least `count` of them.
  std::vector<KernelConfig> configs_with_vec(std::int64_t vec, size_t count = 1) {
    std::vector<KernelConfig> found;
    for (const auto& config : space_->valid_configs(limits_))
      if (config.knob("vec") == vec) found.push_back(config);
    if (found.size() < count) ADD_FAILURE() << "fewer than " << count << " configs with vec " << vec;
    found.resize(std::max(found.size(), count));
    return found;
  }
  KernelConfig config_with_vec(std::int64_t vec) { return configs_with_vec(vec).front(); }

  /// A valid ffma config that is neither the universal one nor a compiled-in default.
  KernelConfig tuned_ffma() {
    for (const auto& config : space_->valid_configs(limits_))
      if (config.knobs != universal_knobs("ffma") && !space_->check_shape(config, {1024, 8192, 8192})) return config;
    ADD_FAILURE() << "every ffma config is the universal one";
    return {};
  }

  TempDir dir_;
  std::optional<TuningDb> db_;
  std::optional<SearchSpace> space_;
  std::int64_t device_id_ = 0, run_id_ = 0;
  DeviceLimits limits_;
};

TEST_F(ConfigResolverTest, WithoutADatabaseEveryShapeResolves) {
  ConfigResolver resolver(nullptr);
  for (const ProblemShape shape : {ProblemShape{1, 1, 1}, ProblemShape{7, 33, 8191}, ProblemShape{1024, 8192, 8192}}) {
    const Resolution resolution = resolver.resolve(shape, h100(), limits_);
    EXPECT_TRUE(resolution.source == ResolutionSource::kDefault || resolution.source == ResolutionSource::kUniversal);
    const SearchSpace* space = resolver.space_for(resolution.config.family);
    ASSERT_NE(space, nullptr) << resolution.config.name;
    EXPECT_FALSE(space->check_shape(resolution.config, shape)) << resolution.config.name << " on " << shape.dims();
  }
  DeviceFingerprint unknown = h100();
  unknown.cc_major = 7;  // no compiled-in default for this architecture
  EXPECT_EQ(resolver.resolve({7, 33, 45}, unknown, limits_).source, ResolutionSource::kUniversal);
  EXPECT_EQ(resolver.resolve({7, 33, 45}, unknown, limits_).config.knobs, universal_knobs("ffma"));
}

TEST_F(ConfigResolverTest, ExactThenNearestThenFallback) {
  const auto configs = space_->valid_configs(limits_);
  ASSERT_GE(configs.size(), 2u);
  const KernelConfig tuned_big = configs.back(), tuned_small = configs.front();
  store_best({1024, 8192, 8192}, tuned_big);
  store_best({16, 256, 256}, tuned_small);
  ConfigResolver resolver(&*db_);

  const Resolution exact = resolver.resolve({1024, 8192, 8192}, h100(), limits_);
  EXPECT_EQ(exact.source, ResolutionSource::kExact);
  EXPECT_EQ(exact.config, tuned_big);

  const Resolution near_big = resolver.resolve({1000, 8000, 8192}, h100(), limits_);
  EXPECT_EQ(near_big.source, ResolutionSource::kNearest);
  EXPECT_EQ(near_big.config, tuned_big);
  EXPECT_NE(near_big.detail.find("1024x8192x8192"), std::string::npos) << near_big.detail;

  const Resolution near_small = resolver.resolve({8, 300, 200}, h100(), limits_);
  EXPECT_EQ(near_small.source, ResolutionSource::kNearest);
  EXPECT_EQ(near_small.config, tuned_small);

  // Another fingerprint (a newer driver) never reuses these rows.
  DeviceFingerprint other = h100();
  other.driver_version = 13010;
  EXPECT_NE(resolver.resolve({1024, 8192, 8192}, other, limits_).source, ResolutionSource::kExact);
  EXPECT_NE(resolver.resolve({1024, 8192, 8192}, other, limits_).source, ResolutionSource::kNearest);
}

TEST_F(ConfigResolverTest, AFarTunedShapeComesAfterTheCompiledInDefault) {
  // Tuned at 64x1024x8192 only: the headline shape is 16x and 8x away in M and N.
  const KernelConfig small_shape_winner = space_->valid_configs(limits_).front();
  store_best({64, 1024, 8192}, small_shape_winner);
  ConfigResolver resolver(&*db_);
  const Resolution headline = resolver.resolve({1024, 8192, 8192}, h100(), limits_);
  EXPECT_EQ(headline.source, ResolutionSource::kDefault) << headline.detail;
  // Within 4x in every dimension it is near.
  const Resolution near = resolver.resolve({256, 2048, 4096}, h100(), limits_);
  EXPECT_EQ(near.source, ResolutionSource::kNearest);
  EXPECT_EQ(near.config, small_shape_winner);
  // Without a compiled-in default (another architecture) the far shape still beats the
  // universal config.
  DeviceFingerprint no_defaults = h100();
  no_defaults.cc_major = 8;
  const auto other_device = db_->upsert_device(no_defaults);
  TrialResult trial;
  trial.shape = {64, 1024, 8192};
  trial.config = small_shape_winner;
  trial.template_hash = current_hash("ffma");
  trial.status = TrialStatus::kOk;
  trial.timing = TimingStats{1.0, 0.9, 1.1, 10};
  trial.error = ErrorStats{1e-7, 1e-6, 0, 0};
  db_->record_trial(db_->begin_run(other_device, {"test", "test", "hash"}), other_device, trial);
  ASSERT_TRUE(db_->update_best(other_device, trial.shape).has_value());
  const Resolution far = resolver.resolve({1024, 8192, 8192}, no_defaults, limits_);
  EXPECT_EQ(far.source, ResolutionSource::kNearest) << far.detail;
  EXPECT_EQ(far.config, small_shape_winner);
}

TEST_F(ConfigResolverTest, ATunedConfigThatCannotImplementTheShapeIsSkipped) {
  // A config of a family this build does not ship (a test template) is never chosen.
  KernelConfig foreign{"faults", "faults_f0", {{"fault", 0}}};
  store_best({64, 64, 64}, foreign);
  ConfigResolver resolver(&*db_);
  const Resolution resolution = resolver.resolve({64, 64, 64}, h100(), limits_);
  EXPECT_NE(resolution.source, ResolutionSource::kExact);
  EXPECT_NE(resolution.config.family, "faults");
  EXPECT_NE(resolver.space_for(resolution.config.family), nullptr) << resolution.config.name;

  // A config whose shape constraints fail for the new shape is passed over for the next.
  for (const auto& config : space_->valid_configs(limits_)) {
    if (!space_->check_shape(config, {63, 61, 59})) continue;
    store_best({64, 64, 64}, config);  // now the exact best of 64^3, but it cannot do 63x61x59
    const Resolution odd = resolver.resolve({63, 61, 59}, h100(), limits_);
    EXPECT_NE(odd.config, config);
    EXPECT_FALSE(space_->check_shape(odd.config, {63, 61, 59}));
    return;
  }
  GTEST_SKIP() << "every ffma config implements every shape: nothing to pass over";
}

TEST_F(ConfigResolverTest, NearestFallsBackToTheFastestConfigOfThatShapeThatFits) {
  const KernelConfig vector_loads = config_with_vec(4), scalar_loads = config_with_vec(1);
  store_best({512, 512, 512}, scalar_loads, 2.0);
  store_best({512, 512, 512}, vector_loads, 1.0);  // the best, but it needs k % 4 == 0
  ConfigResolver resolver(&*db_);
  EXPECT_EQ(resolver.resolve({500, 500, 512}, h100(), limits_).config, vector_loads);
  const Resolution odd_k = resolver.resolve({500, 500, 511}, h100(), limits_);
  EXPECT_EQ(odd_k.source, ResolutionSource::kNearest);
  EXPECT_EQ(odd_k.config, scalar_loads);
  EXPECT_NE(odd_k.detail.find("fastest config that fits"), std::string::npos) << odd_k.detail;
}

TEST_F(ConfigResolverTest, ADtypeAndPolicyThatDoNotGoTogetherAreAUsageError) {
  ConfigResolver resolver(&*db_);
  EXPECT_THROW(resolver.resolve({8, 8, 8, Dtype::kBFloat16, Policy::kHighest}, h100(), limits_), UsageError);
  EXPECT_THROW(resolver.resolve({8, 8, 8, Dtype::kFloat32, Policy::kHalf}, h100(), limits_), UsageError);
}

TEST_F(ConfigResolverTest, EachDtypeAndPolicyResolvesToAFamilyOfItsDtype) {
  ConfigResolver resolver(nullptr);
  struct Case {
    Dtype dtype;
    Policy policy;
    std::string on_hopper;  ///< the compiled-in default's family on sm_90
    std::string fallback;   ///< the universal family
  };
  for (const Case& c : {Case{Dtype::kBFloat16, Policy::kHalf, "wgmma_bf16", "simt_bf16"},
                        Case{Dtype::kFloat16, Policy::kHalf, "wgmma_fp16", "simt_fp16"},
                        Case{Dtype::kFloat32, Policy::kHigh, "wgmma_tf32", "ffma"},
                        Case{Dtype::kFloat32, Policy::kHighest, "wgmma_3xtf32", "ffma"}}) {
    const ProblemShape aligned{1024, 8192, 8192, c.dtype, c.policy};
    const Resolution hopper = resolver.resolve(aligned, h100(), limits_);
    EXPECT_EQ(hopper.source, ResolutionSource::kDefault) << c.on_hopper;
    EXPECT_EQ(hopper.config.family, c.on_hopper);
    // k = 8191 breaks TMA's 16-byte row stride: the universal config of the fallback family.
    const ProblemShape odd_k{7, 33, 8191, c.dtype, c.policy};
    const Resolution odd = resolver.resolve(odd_k, h100(), limits_);
    EXPECT_EQ(odd.config.family, c.fallback) << odd.config.name;
    EXPECT_FALSE(resolver.space_for(odd.config.family)->check_shape(odd.config, odd_k)) << odd.config.name;
    // Before Hopper there is no default: the universal config.
    DeviceFingerprint ampere = h100();
    ampere.cc_major = 8;
    const Resolution old = resolver.resolve(aligned, ampere, limits_);
    EXPECT_EQ(old.source, ResolutionSource::kUniversal);
    EXPECT_EQ(old.config.family, c.fallback);
    EXPECT_EQ(old.config.knobs, universal_knobs(c.fallback));
    EXPECT_EQ(resolver.universal(aligned).config, old.config);
  }
}

TEST_F(ConfigResolverTest, ForHighestTheFastestOfFfmaAnd3xTf32WithinTheBoundWins) {
  const SearchSpace split = load_search_space("wgmma_3xtf32");
  const auto split_configs = split.valid_configs(limits_);
  ASSERT_FALSE(split_configs.empty());
  const ProblemShape shape{1024, 8192, 8192};
  store_best(shape, space_->valid_configs(limits_).front(), 2.7);
  store_best(shape, split_configs.front(), 1.0);
  ConfigResolver resolver(&*db_);
  EXPECT_EQ(resolver.resolve(shape, h100(), limits_).config, split_configs.front());

  // A faster 3xTF32 config whose error misses the highest bound (2e-6) is never the best.
  TrialResult inaccurate;
  inaccurate.shape = shape;
  inaccurate.config = split_configs.back();
  inaccurate.template_hash = "t";
  inaccurate.status = TrialStatus::kOk;
  inaccurate.timing = TimingStats{0.5, 0.5, 0.5, 10};
  inaccurate.error = ErrorStats{8.4e-6, 5e-5, 0, 0};
  db_->record_trial(run_id_, device_id_, inaccurate);
  EXPECT_EQ(db_->update_best(device_id_, shape)->result.config, split_configs.front());
  EXPECT_EQ(ConfigResolver(&*db_).resolve(shape, h100(), limits_).config, split_configs.front());
}

/// The 3xTF32 config `config` with its promotion interval changed to `promote` (a value the
/// space may no longer declare), named as a build that declared it would name it.
KernelConfig with_promote(const KernelConfig& config, std::int64_t promote) {
  KernelConfig changed = config;
  changed.knobs["promote"] = promote;
  const std::string from = "_pr" + std::to_string(config.knob("promote")) + "_";
  changed.name.replace(changed.name.find(from), from.size(), "_pr" + std::to_string(promote) + "_");
  return changed;
}

TEST_F(ConfigResolverTest, AStoredConfigThatTheSpaceNoLongerHasIsNeverRun) {
  // The 3xTF32 space dropped promotion every 8 k-blocks (too inexact on saturated inputs);
  // a database tuned before still holds such rows, faster and within the bound on its inputs.
  const SearchSpace split = load_search_space("wgmma_3xtf32");
  const auto split_configs = split.valid_configs(limits_);
  ASSERT_FALSE(split_configs.empty());
  const KernelConfig dropped = with_promote(split_configs.front(), 8);
  EXPECT_FALSE(split.admits(dropped));
  EXPECT_TRUE(split.admits(split_configs.front()));
  const ProblemShape shape{1024, 8192, 8192};
  store_best(shape, split_configs.front(), 1.02);
  TrialResult faster;
  faster.shape = shape;
  faster.config = dropped;
  faster.template_hash = current_hash("wgmma_3xtf32");
  faster.status = TrialStatus::kOk;
  faster.timing = TimingStats{1.01, 1.0, 1.1, 10};
  faster.error = ErrorStats{7.9e-7, 4e-6, 0, 0};
  db_->record_trial(run_id_, device_id_, faster);
  // Without the space's judgment the dropped config is the fastest row; with it, it is not.
  EXPECT_EQ(db_->update_best(device_id_, shape)->result.config.name, dropped.name);
  ConfigResolver resolver(&*db_);
  const Resolution resolution = resolver.resolve(shape, h100(), limits_);  // no throw
  EXPECT_EQ(resolution.config, split_configs.front());
  const auto admitted = [&](const std::string& family, const std::string& name) {
    return family != "wgmma_3xtf32" || name != dropped.name;
  };
  EXPECT_EQ(db_->update_best(device_id_, shape, {}, admitted)->result.config, split_configs.front());
  // A nearby shape resolves past it too.
  EXPECT_EQ(resolver.resolve({1000, 8000, 8192}, h100(), limits_).config, split_configs.front());
}

TEST_F(ConfigResolverTest, RowsOfAnotherPolicyAreNeverUsed) {
  const SearchSpace tf32 = load_search_space("wgmma_tf32");
  const KernelConfig tuned = tf32.valid_configs(limits_).back();
  store_best({1024, 8192, 8192, Dtype::kFloat32, Policy::kHigh}, tuned);
  ConfigResolver resolver(&*db_);
  EXPECT_EQ(resolver.resolve({1024, 8192, 8192, Dtype::kFloat32, Policy::kHigh}, h100(), limits_).config, tuned);
  const Resolution highest = resolver.resolve({1024, 8192, 8192, Dtype::kFloat32, Policy::kHighest}, h100(), limits_);
  EXPECT_NE(highest.config.family, "wgmma_tf32");
}

constexpr const char* kOlderTemplate = "oldtemplate00001";

TEST_F(ConfigResolverTest, AnExactBestOfAnOlderTemplateIsSkipped) {
  const ProblemShape shape{1024, 8192, 8192};
  const KernelConfig tuned = tuned_ffma();
  store_best(shape, tuned, 1.0, kOlderTemplate);
  ConfigResolver resolver(&*db_);
  EXPECT_TRUE(resolver.of_older_template(db_->best(h100().key(), shape)->result));

  // On sm_90 the compiled-in default (3xTF32 for highest), saying why the row was not used.
  const Resolution hopper = resolver.resolve(shape, h100(), limits_);
  EXPECT_EQ(hopper.source, ResolutionSource::kDefault);
  EXPECT_NE(hopper.config, tuned);
  EXPECT_EQ(hopper.detail,
            "compiled-in default for compute capability 9.0; tuned rows for this shape are of an older template: "
            "re-run fusetune tune");
  // Without a default for the architecture, the universal config; another fingerprint, so the
  // same row is stored for it too.
  DeviceFingerprint ampere = h100();
  ampere.cc_major = 8;
  const auto ampere_id = db_->upsert_device(ampere);
  TrialResult old_row = db_->best(h100().key(), shape)->result;
  db_->record_trial(run_id_, ampere_id, old_row);
  ASSERT_TRUE(db_->update_best(ampere_id, shape).has_value());
  const Resolution old = resolver.resolve(shape, ampere, limits_);
  EXPECT_EQ(old.source, ResolutionSource::kUniversal);
  EXPECT_EQ(old.config.knobs, universal_knobs("ffma"));
  EXPECT_NE(old.detail.find("older template: re-run fusetune tune"), std::string::npos) << old.detail;

  // The same config measured with the current template is used as it is.
  store_best(shape, tuned, 1.5);
  ASSERT_EQ(db_->update_best(device_id_, shape, {{"ffma", current_hash("ffma")}})->result.template_hash,
            current_hash("ffma"));
  const Resolution exact = ConfigResolver(&*db_).resolve(shape, h100(), limits_);
  EXPECT_EQ(exact.source, ResolutionSource::kExact);
  EXPECT_EQ(exact.config, tuned);
  EXPECT_EQ(exact.detail, "tuned for this shape on " + h100().name);
}

TEST_F(ConfigResolverTest, AStaleBestGivesWayToThisShapesFastestCurrentRowOnlyIfAboutAsFast) {
  // An older build tuned ffma and 3xTF32 and 3xTF32 won; this build changed only 3xTF32's
  // template, so the ffma rows of this shape are still good, and stand in where about as fast.
  const ProblemShape shape{1024, 8192, 8192};
  const KernelConfig ffma = tuned_ffma();
  const KernelConfig split = load_search_space("wgmma_3xtf32").valid_configs(limits_).front();
  store_best(shape, ffma, 1.05);
  store_best(shape, split, 1.0, kOlderTemplate);
  ASSERT_EQ(db_->best(h100().key(), shape)->result.config, split);
  const Resolution resolution = ConfigResolver(&*db_).resolve(shape, h100(), limits_);
  EXPECT_EQ(resolution.source, ResolutionSource::kExact);
  EXPECT_EQ(resolution.config, ffma);
  EXPECT_NE(resolution.detail.find("its best row is of an older template: re-run fusetune tune"), std::string::npos)
      << resolution.detail;
}

TEST_F(ConfigResolverTest, AStaleBestDoesNotGiveWayToAMuchSlowerFamily) {
  // As above, but ffma took twice as long as the stale 3xTF32 best: the compiled-in default
  // (a 3xTF32 config on sm_90) serves the shape until it is tuned again.
  const ProblemShape shape{1024, 8192, 8192};
  const KernelConfig ffma = tuned_ffma();
  const KernelConfig split = load_search_space("wgmma_3xtf32").valid_configs(limits_).front();
  store_best(shape, ffma, 2.0);
  store_best(shape, split, 1.0, kOlderTemplate);
  const Resolution resolution = ConfigResolver(&*db_).resolve(shape, h100(), limits_);
  EXPECT_EQ(resolution.source, ResolutionSource::kDefault) << resolution.config.name;
  EXPECT_EQ(resolution.config.family, "wgmma_3xtf32");
  EXPECT_NE(resolution.detail.find("tuned rows for this shape are of an older template: re-run fusetune tune"),
            std::string::npos)
      << resolution.detail;
}

TEST_F(ConfigResolverTest, ANearestBestOfAnOlderTemplateIsSkipped) {
  const KernelConfig stale = tuned_ffma(), farther = space_->valid_configs(limits_).back();
  ASSERT_NE(stale, farther);
  store_best({1024, 8192, 8192}, stale, 1.0, kOlderTemplate);
  ConfigResolver resolver(&*db_);
  const ProblemShape wanted{1000, 8000, 8192};
  // Alone in the database, the stale nearest row leaves the compiled-in default.
  const Resolution fallback = resolver.resolve(wanted, h100(), limits_);
  EXPECT_EQ(fallback.source, ResolutionSource::kDefault);
  EXPECT_NE(fallback.config, stale);
  EXPECT_NE(fallback.detail.find("nearer shapes are of an older template: re-run fusetune tune"), std::string::npos)
      << fallback.detail;

  // A farther shape of the current template is next.
  store_best({512, 4096, 4096}, farther);
  const Resolution next = resolver.resolve(wanted, h100(), limits_);
  EXPECT_EQ(next.source, ResolutionSource::kNearest);
  EXPECT_EQ(next.config, farther);
  EXPECT_NE(next.detail.find("nearest tuned shape 512x4096x4096"), std::string::npos) << next.detail;
  EXPECT_NE(next.detail.find("older template"), std::string::npos) << next.detail;

  // Once the nearest shape is tuned with the current template, it wins again, with no note.
  store_best({1024, 8192, 8192}, stale, 1.5);
  db_->update_best(device_id_, {1024, 8192, 8192}, {{"ffma", current_hash("ffma")}});
  const Resolution nearest = resolver.resolve(wanted, h100(), limits_);
  EXPECT_EQ(nearest.source, ResolutionSource::kNearest);
  EXPECT_EQ(nearest.config, stale);
  EXPECT_EQ(nearest.detail, "nearest tuned shape 1024x8192x8192 on " + h100().name);
}

TEST_F(ConfigResolverTest, TheNearestFallbackSkipsTrialsOfAnOlderTemplate) {
  const KernelConfig vector_loads = config_with_vec(4);
  const auto scalar_loads = configs_with_vec(1, 2);
  store_best({512, 512, 512}, scalar_loads[1], 3.0);                  // current, slower
  store_best({512, 512, 512}, scalar_loads[0], 2.0, kOlderTemplate);  // faster, but stale
  store_best({512, 512, 512}, vector_loads, 1.0);                     // the best; needs k % 4 == 0
  ConfigResolver resolver(&*db_);
  const Resolution odd_k = resolver.resolve({500, 500, 511}, h100(), limits_);
  EXPECT_EQ(odd_k.source, ResolutionSource::kNearest);
  EXPECT_EQ(odd_k.config, scalar_loads[1]);
  EXPECT_NE(odd_k.detail.find("fastest config that fits"), std::string::npos) << odd_k.detail;
}

}  // namespace
}  // namespace fusetune::testing
