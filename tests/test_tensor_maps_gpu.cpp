// Tensor maps on a GPU: the driver entry point is found at run time, a well-formed operand
// encodes, and the cache encodes each key once and drops the least recently used.
#include <gtest/gtest.h>

#include "cuda_resources.h"
#include "tensor_maps.h"
#include "test_support.h"

namespace fusetune::testing {
namespace {

TEST(TensorMapsGpu, EncodesOnceAndEvictsTheLeastRecentlyUsed) {
  FUSETUNE_SKIP_WITHOUT_GPU();
  query_device(0);
  DeviceBuffer a(64 * 256 * 4), b(64 * 256 * 4);
  const OperandMapKey key_a{a.get(), 64, 256, Dtype::kFloat32, 64};
  const OperandMapKey key_b{b.get(), 64, 256, Dtype::kBFloat16, 128};
  const OperandMapKey key_c{a.get(), 32, 256, Dtype::kFloat32, 64};
  TensorMapCache cache(2);
  const TensorMapParam first = cache.get(key_a);
  EXPECT_EQ(cache.encodings(), 1u);
  EXPECT_EQ(std::memcmp(&cache.get(key_a), &first, sizeof first), 0);
  EXPECT_EQ(cache.encodings(), 1u);
  const TensorMapParam other = cache.get(key_b);
  EXPECT_NE(std::memcmp(&other, &first, sizeof first), 0);
  EXPECT_EQ(cache.encodings(), 2u);
  cache.get(key_a);  // a is now the most recently used: c evicts b
  cache.get(key_c);
  EXPECT_EQ(cache.size(), 2u);
  cache.get(key_a);
  EXPECT_EQ(cache.encodings(), 3u);
  cache.get(key_b);
  EXPECT_EQ(cache.encodings(), 4u);
}

}  // namespace
}  // namespace fusetune::testing
