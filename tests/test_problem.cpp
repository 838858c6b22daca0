// Problem shapes: parsing of MxNxK, the policy table, and the order that keys per-problem caches.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "fusetune/errors.h"
#include "fusetune/problem.h"

namespace fusetune {
namespace {

ProblemShape parse(const char* text) { return parse_dims(text, Dtype::kFloat32, Policy::kHighest); }

TEST(ParseDims, AcceptsWellFormedShapes) {
  const ProblemShape shape = parse("1024x8192x4096");
  EXPECT_EQ(shape.m, 1024);
  EXPECT_EQ(shape.n, 8192);
  EXPECT_EQ(shape.k, 4096);
  EXPECT_EQ(shape.dims(), "1024x8192x4096");
  EXPECT_EQ(parse("1x1x1").flops(), 2.0);
}

TEST(ProblemShape, OrdersByDtypeAndPolicyTooSoCachesKeepEachProblemApart) {
  // The runtime keys its per-problem cache (resolution, loaded kernel, launch plan) by shape.
  const ProblemShape fp32_highest{64, 64, 64, Dtype::kFloat32, Policy::kHighest};
  const ProblemShape fp32_high{64, 64, 64, Dtype::kFloat32, Policy::kHigh};
  const ProblemShape bf16{64, 64, 64, Dtype::kBFloat16, Policy::kHalf};
  const ProblemShape fp16{64, 64, 64, Dtype::kFloat16, Policy::kHalf};
  std::map<ProblemShape, std::string> cache{{fp32_highest, "ffma"}, {fp32_high, "wgmma_tf32"}};
  cache.emplace(bf16, "wgmma_bf16");
  cache.emplace(fp16, "wgmma_fp16");
  EXPECT_FALSE(cache.emplace(ProblemShape{64, 64, 64}, "again").second);  // fp32 highest is the default
  ASSERT_EQ(cache.size(), 4u);
  EXPECT_EQ(cache.at(fp32_high), "wgmma_tf32");
  EXPECT_EQ(cache.at(fp16), "wgmma_fp16");
  EXPECT_EQ(cache.count(ProblemShape{64, 64, 32}), 0u);
  EXPECT_LT((ProblemShape{64, 64, 32}), fp32_highest);
}

TEST(ParseDims, RejectsMalformedShapesWithTheReason) {
  const std::pair<const char*, const char*> cases[] = {{"0x8x8", "is zero"},
                                                       {"-1x8x8", "negative"},
                                                       {"axbxc", "not a whole number"},
                                                       {"8x8", "malformed"},
                                                       {"8x8x8x8", "more than three"},
                                                       {"99999999999999999999x1x1", "overflows"},
                                                       {"2000000000x1x1", "too large"},
                                                       {"", "malformed"},
                                                       {"8xx8", "is missing"},
                                                       {"8x8x8.5", "not a whole number"}};
  for (const auto& [text, expected] : cases) {
    try {
      parse(text);
      ADD_FAILURE() << "accepted " << text;
    } catch (const UsageError& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << text << ": " << error.what();
    }
  }
}

TEST(Policy, BoundsFollowTheDesign) {
  EXPECT_DOUBLE_EQ(relative_error_bound(Policy::kHighest), 2e-6);
  EXPECT_DOUBLE_EQ(relative_error_bound(Policy::kHigh), 5e-4);
  EXPECT_DOUBLE_EQ(relative_error_bound(Policy::kHalf), 1e-2);
  EXPECT_DOUBLE_EQ(elementwise_tolerance(Policy::kHighest), 1e-4);
  EXPECT_EQ(parse_policy("highest"), Policy::kHighest);
  EXPECT_EQ(parse_policy("fastest"), std::nullopt);
  EXPECT_EQ(parse_dtype("bfloat16"), Dtype::kBFloat16);
  EXPECT_EQ(parse_dtype("int8"), std::nullopt);
}

TEST(Problem, PoliciesGoWithTheirDtypes) {
  EXPECT_EQ(default_policy(Dtype::kFloat32), Policy::kHighest);
  EXPECT_EQ(default_policy(Dtype::kBFloat16), Policy::kHalf);
  EXPECT_EQ(default_policy(Dtype::kFloat16), Policy::kHalf);
  EXPECT_NO_THROW(validate_dtype_policy({1, 1, 1, Dtype::kFloat32, Policy::kHighest}));
  EXPECT_NO_THROW(validate_dtype_policy({1, 1, 1, Dtype::kFloat32, Policy::kHigh}));
  EXPECT_NO_THROW(validate_dtype_policy({1, 1, 1, Dtype::kBFloat16, Policy::kHalf}));
  EXPECT_NO_THROW(validate_dtype_policy({1, 1, 1, Dtype::kFloat16, Policy::kHalf}));
  EXPECT_THROW(validate_dtype_policy({1, 1, 1, Dtype::kFloat32, Policy::kHalf}), UsageError);
  EXPECT_THROW(validate_dtype_policy({1, 1, 1, Dtype::kBFloat16, Policy::kHighest}), UsageError);
  EXPECT_THROW(validate_dtype_policy({1, 1, 1, Dtype::kFloat16, Policy::kHigh}), UsageError);
}

}  // namespace
}  // namespace fusetune
