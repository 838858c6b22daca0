// Timing statistics (the GPU part of the benchmarker runs in the GPU tests).
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace fusetune
