// Compiled-in configs (see default_configs.h): on sm_90, the winners of the headline problem
// 1024x8192x8192 measured by `fusetune tune` and `fusetune bench` on an H100 (bench/RESULTS.md,
// 2026-11-23, session 12: after uniform descriptors and the per-k-block stage release). They serve
// shapes nobody tuned when the database has nothing nearer; re-measure them when a template
// changes.
#include "default_configs.h"

#include "fusetune/errors.h"

namespace fusetune {

namespace {

/// 128 x 256 tiles, two cooperative consumer warpgroups that split the rows (split_n 0: each
/// computes 64 x 256) or the columns (1: each computes 128 x 128), 128 accumulators a thread
/// either way; four stages of 48 KB, persistent, tile order (raster, group).
KnobValues wgmma_128x256(int raster, int group, int split_n) {
  return {{"tile_m", 128},    {"tile_n", 256},  {"stages", 4},   {"consumers", 2},    {"persistent", 1},
          {"raster", raster}, {"group", group}, {"pingpong", 0}, {"split_n", split_n}};
}

/// The same with the 16-bit families' TMA-store epilogue (two staging buffers per consumer).
KnobValues wgmma_128x256_tma_store(int raster, int group, int split_n) {
  KnobValues knobs = wgmma_128x256(raster, group, split_n);
  knobs["store_buffers"] = 2;
  return knobs;
}

}  // namespace

std::optional<FamilyKnobs> default_knobs(const ProblemShape& shape, int cc_major, int cc_minor) {
  if (cc_major != 9 || cc_minor != 0) return std::nullopt;
  if (shape.dtype == Dtype::kFloat32 && shape.policy == Policy::kHighest)
    // wgmma_3xtf32_m128_n128_s3_c2_p1_r1_g1_pr4_pp0: 0.367-0.369x cuBLAS SGEMM + epilogue at
    // 4.0e-7 (`fusetune bench`, session 12). Promotion every 8 k-blocks broke the 2e-6 bound on
    // saturated inputs (2.46e-6 at 64x96x1000, FamiliesGpu test, session 4).
    return FamilyKnobs{"wgmma_3xtf32",
                       {{"tile_m", 128},
                        {"tile_n", 128},
                        {"stages", 3},
                        {"consumers", 2},
                        {"persistent", 1},
                        {"raster", 1},
                        {"group", 1},
                        {"promote", 4},
                        {"pingpong", 0}}};
  if (shape.dtype == Dtype::kFloat32 && shape.policy == Policy::kHigh)
    // wgmma_tf32_m128_n256_s4_c2_p1_r0_g16_pp0_sn1: 0.992-0.993x cuBLAS TF32 alone, epilogue
    // included (`fusetune bench`, session 12).
    return FamilyKnobs{"wgmma_tf32", wgmma_128x256(0, 16, 1)};
  if (shape.dtype == Dtype::kBFloat16)
    // wgmma_bf16_m128_n256_s4_c2_p1_r0_g8_pp0_sb2_sn1(_tr0): 1.014-1.016x cuBLAS bf16 alone,
    // epilogue included (`fusetune bench`, session 12). The headline's tuned winner adds trim 8
    // (1.005x, session 15), which is left out here: it adds a tile column, and on most n that
    // column is mostly empty (n = 4096: 17 columns of 248 for 16 of 256), so it pays only where
    // the tuner finds it does.
    return FamilyKnobs{"wgmma_bf16", wgmma_128x256_tma_store(0, 8, 1)};
  if (shape.dtype == Dtype::kFloat16)
    // Not tuned separately: fp16 runs the same instructions at the same rate as bf16.
    return FamilyKnobs{"wgmma_fp16", wgmma_128x256_tma_store(0, 8, 1)};
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
            {"warp_m", 4},  {"vec", 1},     {"stages", 2}, {"groups", 1},   {"order", 0}};
  if (family == "simt_bf16" || family == "simt_fp16")
    // Every config of the SIMT fallback takes any shape; 64 x 64 tiles, 32 deep.
    return {{"tile_m", 64}, {"tile_n", 64}, {"tile_k", 32}};
  throw UsageError("no universal config is known for family '" + family + "'");
}

}  // namespace fusetune
