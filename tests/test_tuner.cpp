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

}  // namespace
}  // namespace fusetune
