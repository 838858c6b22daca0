// Compiled-in configs (see default_configs.h). The sm_90 FFMA default is the headline winner
// measured on an H100 (bench/RESULTS.md); re-measure it when the template changes. The sm_90
// wgmma defaults are a sound middle of their spaces (128 x 256 tiles, two consumer warpgroups,
// the deepest ring that fits, persistent): replace them by measured winners.
#include "default_configs.h"

#include "fusetune/errors.h"

namespace fusetune {

namespace {

/// The wgmma default: 128 x 256 tiles (64 x 256 per consumer: 128 accumulators a thread), four
/// stages of 48 KB, persistent with m fastest in bands of 8 tiles.
KnobValues wgmma_default() {
  return {{"tile_m", 128},   {"tile_n", 256}, {"stages", 4}, {"consumers", 2},
          {"persistent", 1}, {"raster", 0},   {"group", 8}};
}

}  // namespace

std::optional<FamilyKnobs> default_knobs(const ProblemShape& shape, int cc_major, int cc_minor) {
  if (cc_major != 9 || cc_minor != 0) return std::nullopt;
  if (shape.dtype == Dtype::kFloat32 && shape.policy == Policy::kHighest)
    // ffma_m128_n256_k8_tm8_tn16_w16_v4_s2_g1: fastest at 1024x8192x8192 on the H100.
    return FamilyKnobs{"ffma",
                       {{"tile_m", 128},
                        {"tile_n", 256},
                        {"tile_k", 8},
                        {"thread_m", 8},
                        {"thread_n", 16},
                        {"warp_m", 16},
                        {"vec", 4},
                        {"stages", 2},
                        {"groups", 1}}};
  if (shape.dtype == Dtype::kFloat32 && shape.policy == Policy::kHigh)
    return FamilyKnobs{"wgmma_tf32", wgmma_default()};
  if (shape.dtype == Dtype::kBFloat16) return FamilyKnobs{"wgmma_bf16", wgmma_default()};
  if (shape.dtype == Dtype::kFloat16) return FamilyKnobs{"wgmma_fp16", wgmma_default()};
  return std::nullopt;
}

std::string fallback_family(const ProblemShape& shape) {
  validate_dtype_policy(shape);
  switch (shape.dtype) {
    case Dtype::kFloat32:
      return "ffma";
    case Dtype::kBFloat16:
      return "simt_bf16";
    case Dtype::kFloat16:
      return "simt_fp16";
  }
  return "ffma";
}

KnobValues universal_knobs(const std::string& family) {
  if (family == "ffma")
    // vec 1 has no divisibility requirement on k and needs only 4-byte aligned tensors;
    // 64x64 tiles of 256 threads keep small shapes busy.
    return {{"tile_m", 64}, {"tile_n", 64}, {"tile_k", 8}, {"thread_m", 4}, {"thread_n", 4},
            {"warp_m", 4},  {"vec", 1},     {"stages", 2}, {"groups", 1}};
  if (family == "simt_bf16" || family == "simt_fp16")
    // Every config of the SIMT fallback takes any shape; 64 x 64 tiles, 32 deep.
    return {{"tile_m", 64}, {"tile_n", 64}, {"tile_k", 32}};
  throw UsageError("no universal config is known for family '" + family + "'");
}

}  // namespace fusetune
