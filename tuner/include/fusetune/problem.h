// Problem description: what the fused kernel must compute, independent of how.
// out[M,N] = z + s * sigmoid(z), z = x[M,K] * W[N,K]^T + b[N] (nn.Linear layout).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fusetune {

/// Element type of x, W, b and out.
enum class Dtype { kFloat32, kBFloat16, kFloat16 };

/// Which arithmetic the caller allows; each has an error bound (see DESIGN.md).
enum class Policy {
  kHighest,  ///< fp32 inputs, fp32-class accuracy (FFMA or 3xTF32): rel. error <= 2e-6
  kHigh,     ///< fp32 inputs, TF32 tensor cores allowed: rel. error <= 5e-4
  kHalf,     ///< bf16/fp16 inputs, tensor cores with fp32 accumulation: rel. error <= 1e-2
};

std::string_view to_string(Dtype dtype);
std::string_view to_string(Policy policy);
/// Parses "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16"; nullopt otherwise.
std::optional<Dtype> parse_dtype(std::string_view text);
/// Parses "highest", "high", "half"; nullopt otherwise.
std::optional<Policy> parse_policy(std::string_view text);

struct ProblemShape;

/// The policy that goes with a dtype when none is named: highest for fp32, half for bf16/fp16.
Policy default_policy(Dtype dtype);
/// Throws UsageError unless the shape's dtype and policy go together: fp32 with highest or
/// high, bf16/fp16 with half.
void validate_dtype_policy(const ProblemShape& shape);

/// Bound on ||out - ref|| / ||ref|| against a float64 reference for a policy.
double relative_error_bound(Policy policy);
/// atol = rtol of the per-element allclose check: 1e-4 for highest, 1e-2 otherwise.
double elementwise_tolerance(Policy policy);

/// The GEMM dimensions plus the numeric contract: the key under which results are stored.
struct ProblemShape {
  std::int64_t m = 0;  ///< rows of x and out (batch)
  std::int64_t n = 0;  ///< rows of W, columns of out (out features)
  std::int64_t k = 0;  ///< columns of x and W (in features)
  Dtype dtype = Dtype::kFloat32;
  Policy policy = Policy::kHighest;

  /// "1024x8192x8192" (M x N x K), the spelling the command line accepts.
  std::string dims() const;
  /// 2*M*N*K.
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
  friend bool operator==(const ProblemShape&, const ProblemShape&) = default;
  /// Ordered by every field (dims, then dtype, then policy): a cheap key of per-problem caches.
  friend auto operator<=>(const ProblemShape&, const ProblemShape&) = default;
};

/// The largest M, N or K accepted: indices stay inside 32-bit ints in the kernels.
inline constexpr std::int64_t kMaxDimension = std::int64_t(1) << 30;

/// Parses "MxNxK" with each of M, N, K in [1, kMaxDimension]. Throws UsageError with a
/// one-line message naming what is wrong (empty, non-numeric, zero, negative, overflow).
ProblemShape parse_dims(std::string_view text, Dtype dtype, Policy policy);

/// The headline problem of the project: 1024 x 8192 -> 8192.
inline ProblemShape headline_shape() { return ProblemShape{1024, 8192, 8192}; }

}  // namespace fusetune
