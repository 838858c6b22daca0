// Timing statistics and the order of interleaved samples (the GPU part of the benchmarker runs in
// the GPU tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "benchmarker.h"

namespace fusetune {
namespace {

TEST(Benchmarker, SummarizeGivesMedianMinMaxOfUnsortedSamples) {
  const TimingStats odd = Benchmarker::summarize({3.0, 1.0, 2.0, 9.0, 4.0});
  EXPECT_DOUBLE_EQ(odd.median_ms, 3.0);
  EXPECT_DOUBLE_EQ(odd.min_ms, 1.0);
  EXPECT_DOUBLE_EQ(odd.max_ms, 9.0);
  EXPECT_EQ(odd.samples, 5);
  EXPECT_DOUBLE_EQ(Benchmarker::summarize({4.0, 1.0, 2.0, 3.0}).median_ms, 2.5);
  EXPECT_EQ(Benchmarker::summarize({}).samples, 0);
}

TEST(Benchmarker, RoundOrdersArePermutationsThatVaryWhoGoesFirstAndWhoFollowsWhom) {
  const auto orders = Benchmarker::round_orders(3, 30, 0x5eed);
  ASSERT_EQ(orders.size(), 30u);
  int first[3] = {0, 0, 0};
  int follows[3][3] = {};  // follows[a][b]: a sampled right after b, within a round or across two
  int previous = -1;
  for (const auto& order : orders) {
    std::vector<int> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int>{0, 1, 2}));
    ++first[order.front()];
    for (const int which : order) {
      if (previous >= 0) ++follows[which][previous];
      previous = which;
    }
  }
  // With a fixed order, launch 2 (the kernel after the baselines) always followed launch 1.
  for (int which = 0; which < 3; ++which) {
    EXPECT_GT(first[which], 0) << which;
    for (int before = 0; before < 3; ++before)
      if (before != which) EXPECT_GT(follows[which][before], 0) << which << " after " << before;
  }
  EXPECT_EQ(Benchmarker::round_orders(3, 30, 0x5eed), orders) << "the same seed, the same orders";
  EXPECT_TRUE(Benchmarker::round_orders(0, 4, 1)[0].empty());
}

}  // namespace
}  // namespace fusetune
