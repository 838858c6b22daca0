// Tensor maps without a GPU: what TMA can describe (alignment, 16-byte row strides, box rows)
// is decided before the driver is asked, and a bad operand is a UsageError, never a map.
#include <gtest/gtest.h>

#include <cstdint>

#include "fusetune/errors.h"
#include "tensor_maps.h"

namespace fusetune {
namespace {

/// An address with the given alignment (never dereferenced: no map is encoded from it).
const void* address(std::uintptr_t value) { return reinterpret_cast<const void*>(value); }

TEST(TensorMaps, ElementSizes) {
  EXPECT_EQ(element_bytes(Dtype::kFloat32), 4u);
  EXPECT_EQ(element_bytes(Dtype::kBFloat16), 2u);
  EXPECT_EQ(element_bytes(Dtype::kFloat16), 2u);
}

TEST(TensorMaps, OperandProblemsAreFoundBeforeTheDriver) {
  const OperandMapKey good{address(0x10000), 1024, 8192, Dtype::kBFloat16, 128};
  EXPECT_EQ(operand_map_problem(good), "");
  OperandMapKey key = good;
  key.data = address(0x10008);
  EXPECT_NE(operand_map_problem(key).find("16-byte aligned"), std::string::npos);
  key = good;
  key.k = 8188;  // 16376 bytes: not a multiple of 16
  EXPECT_NE(operand_map_problem(key).find("not a multiple of 16"), std::string::npos);
  key.dtype = Dtype::kFloat32;  // 32752 bytes: a multiple of 16
  EXPECT_EQ(operand_map_problem(key), "");
  key = good;
  key.box_rows = 512;
  EXPECT_NE(operand_map_problem(key).find("box rows"), std::string::npos);
  key = good;
  key.data = nullptr;
  EXPECT_NE(operand_map_problem(key).find("null"), std::string::npos);
  key = good;
  key.rows = 0;
  EXPECT_NE(operand_map_problem(key).find("outside"), std::string::npos);
  key = good;
  key.round_to_tf32 = true;  // TMA's TF32 type describes fp32 data only
  EXPECT_NE(operand_map_problem(key).find("TF32 rounding applies to fp32"), std::string::npos);
  key.dtype = Dtype::kFloat32;
  EXPECT_EQ(operand_map_problem(key), "");
}

TEST(TensorMaps, ABadOperandIsAUsageErrorWithoutTouchingTheDriver) {
  const OperandMapKey misaligned{address(0x10004), 64, 64, Dtype::kFloat32, 64};
  EXPECT_THROW(encode_operand_map(misaligned), UsageError);
  TensorMapCache cache;
  EXPECT_THROW(cache.get(misaligned), UsageError);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.encodings(), 0u);
}

TEST(TensorMaps, KeysCompareByEveryField) {
  const OperandMapKey a{address(0x10000), 64, 64, Dtype::kFloat32, 64};
  OperandMapKey b = a;
  EXPECT_EQ(a, b);
  b.box_rows = 128;
  EXPECT_NE(a, b);
  b = a;
  b.dtype = Dtype::kBFloat16;
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace fusetune
