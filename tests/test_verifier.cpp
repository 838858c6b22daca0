// The Verifier's host side without a GPU: inputs rounded to the dtype (ties to even, NaN kept),
// the element encodings uploaded and read back, and the baselines named per policy.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "verifier.h"

namespace fusetune {
namespace {

TEST(Verifier, InputsAreRoundedToTheDtypeToNearestEven) {
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even gives 1.
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even gives 1 + 2^-6.
  std::vector<float> values = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 0.1f, std::numeric_limits<float>::quiet_NaN(),
                               -2.0f};
  std::vector<float> bf16 = values;
  round_to_dtype(bf16, Dtype::kBFloat16);
  EXPECT_EQ(bf16[0], 1.0f);
  EXPECT_EQ(bf16[1], 1.0f + 0x1p-6f);
  EXPECT_NE(bf16[2], 0.1f);
  EXPECT_NEAR(bf16[2], 0.1f, 0.1f * 0x1p-8f);
  EXPECT_TRUE(std::isnan(bf16[3]));
  EXPECT_EQ(bf16[4], -2.0f);
  std::vector<float> fp16 = values;
  round_to_dtype(fp16, Dtype::kFloat16);
  EXPECT_EQ(fp16[0], 1.0f + 0x1p-8f);  // fp16 has 10 fraction bits: exact
  EXPECT_NEAR(fp16[2], 0.1f, 0.1f * 0x1p-11f);
  EXPECT_TRUE(std::isnan(fp16[3]));
  std::vector<float> big = {70000.0f};
  round_to_dtype(big, Dtype::kFloat16);
  EXPECT_TRUE(std::isinf(big[0]));  // beyond fp16's 65504
  std::vector<float> fp32 = values;
  round_to_dtype(fp32, Dtype::kFloat32);
  EXPECT_EQ(std::memcmp(fp32.data(), values.data(), 3 * sizeof(float)), 0);
}

TEST(Verifier, EncodedElementsDecodeToTheRoundedValues) {
  for (const Dtype dtype : {Dtype::kFloat32, Dtype::kBFloat16, Dtype::kFloat16}) {
    HostInputs inputs = make_random_inputs({3, 5, 7, dtype, default_policy(dtype)}, 42);
    round_to_dtype(inputs.w, dtype);
    const std::vector<unsigned char> bytes = encode_elements(inputs.w, dtype);
    ASSERT_EQ(bytes.size(), inputs.w.size() * element_bytes(dtype));
    EXPECT_EQ(decode_elements(bytes.data(), inputs.w.size(), dtype), inputs.w) << to_string(dtype);
  }
  const std::vector<unsigned char> bf16_one = encode_elements({1.0f}, Dtype::kBFloat16);
  EXPECT_EQ(bf16_one, (std::vector<unsigned char>{0x80, 0x3f}));  // 0x3f80, little-endian
  const std::vector<unsigned char> fp16_one = encode_elements({1.0f}, Dtype::kFloat16);
  EXPECT_EQ(fp16_one, (std::vector<unsigned char>{0x00, 0x3c}));  // 0x3c00
}

TEST(Verifier, BaselinesPerPolicyTargetFirst) {
  EXPECT_EQ(baseline_names({1, 1, 1, Dtype::kFloat32, Policy::kHighest}),
            (std::vector<std::string>{"cublas_sgemm+epilogue"}));
  EXPECT_EQ(baseline_names({1, 1, 1, Dtype::kFloat32, Policy::kHigh}),
            (std::vector<std::string>{"cublas_tf32", "cublas_tf32+epilogue"}));
  EXPECT_EQ(baseline_names({1, 1, 1, Dtype::kBFloat16, Policy::kHalf}),
            (std::vector<std::string>{"cublas_bf16", "cublas_bf16+epilogue"}));
  EXPECT_EQ(target_baseline_name({1, 1, 1, Dtype::kFloat16, Policy::kHalf}), "cublas_fp16");
  EXPECT_EQ(target_baseline_name({1, 1, 1}), kBaselineName);
}

}  // namespace
}  // namespace fusetune
