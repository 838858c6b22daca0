// Names, parsing and error bounds of problem shapes, dtypes and precision policies.
#include "fusetune/problem.h"

#include <charconv>
#include <string>

#include "fusetune/errors.h"

namespace fusetune {

std::string_view to_string(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32:
      return "fp32";
    case Dtype::kBFloat16:
      return "bf16";
    case Dtype::kFloat16:
      return "fp16";
  }
  return "?";
}

std::string_view to_string(Policy policy) {
  switch (policy) {
    case Policy::kHighest:
      return "highest";
    case Policy::kHigh:
      return "high";
    case Policy::kHalf:
      return "half";
  }
  return "?";
}

std::optional<Dtype> parse_dtype(std::string_view text) {
  if (text == "fp32" || text == "float32") return Dtype::kFloat32;
  if (text == "bf16" || text == "bfloat16") return Dtype::kBFloat16;
  if (text == "fp16" || text == "float16") return Dtype::kFloat16;
  return std::nullopt;
}

std::optional<Policy> parse_policy(std::string_view text) {
  if (text == "highest") return Policy::kHighest;
  if (text == "high") return Policy::kHigh;
  if (text == "half") return Policy::kHalf;
  return std::nullopt;
}

double relative_error_bound(Policy policy) {
  switch (policy) {
    case Policy::kHighest:
      return 2e-6;
    case Policy::kHigh:
      return 5e-4;
    case Policy::kHalf:
      return 1e-2;
  }
  return 0;
}

Policy default_policy(Dtype dtype) { return dtype == Dtype::kFloat32 ? Policy::kHighest : Policy::kHalf; }

void validate_dtype_policy(const ProblemShape& shape) {
  const bool fp32 = shape.dtype == Dtype::kFloat32;
  const bool fp32_policy = shape.policy == Policy::kHighest || shape.policy == Policy::kHigh;
  if (fp32 != fp32_policy)
    throw UsageError("dtype " + std::string(to_string(shape.dtype)) + " does not go with policy " +
                     std::string(to_string(shape.policy)) +
                     "; fp32 takes policy highest or high, bf16 and fp16 take policy half");
}

double elementwise_tolerance(Policy policy) { return policy == Policy::kHighest ? 1e-4 : 1e-2; }

std::string ProblemShape::dims() const { return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k); }

namespace {

std::int64_t parse_dimension(std::string_view field, const char* label, std::string_view whole) {
  const auto fail = [&](const std::string& what) {
    throw UsageError("shape '" + std::string(whole) + "': " + label + " " + what +
                     "; expected MxNxK with integers in [1, " + std::to_string(kMaxDimension) +
                     "], e.g. 1024x8192x8192");
  };
  if (field.empty()) fail("is missing");
  if (field.front() == '-') fail("is negative");
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (error == std::errc::result_out_of_range) fail("overflows");
  if (error != std::errc() || end != field.data() + field.size())
    fail("'" + std::string(field) + "' is not a whole number");
  if (value == 0) fail("is zero");
  if (value > kMaxDimension) fail("is too large");
  return value;
}

}  // namespace

ProblemShape parse_dims(std::string_view text, Dtype dtype, Policy policy) {
  std::string_view fields[3];
  std::string_view rest = text;
  for (int i = 0; i < 3; ++i) {
    const auto x = rest.find('x');
    if (i < 2 && x == std::string_view::npos)
      throw UsageError("shape '" + std::string(text) + "' is malformed; expected MxNxK, e.g. 1024x8192x8192");
    fields[i] = i < 2 ? rest.substr(0, x) : rest;
    rest = i < 2 ? rest.substr(x + 1) : std::string_view();
  }
  if (fields[2].find('x') != std::string_view::npos)
    throw UsageError("shape '" + std::string(text) + "' has more than three dimensions; expected MxNxK");
  ProblemShape shape;
  shape.m = parse_dimension(fields[0], "M", text);
  shape.n = parse_dimension(fields[1], "N", text);
  shape.k = parse_dimension(fields[2], "K", text);
  shape.dtype = dtype;
  shape.policy = policy;
  return shape;
}

}  // namespace fusetune
