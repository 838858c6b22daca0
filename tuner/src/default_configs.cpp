// Compiled-in configs (see default_configs.h). The sm_90 default is the headline winner
// measured on an H100 (bench/RESULTS.md); re-measure it when the template changes.
#include "default_configs.h"

#include "fusetune/errors.h"

namespace fusetune {

std::optional<KnobValues> default_knobs(const std::string& family, int cc_major, int cc_minor) {
  if (family == "ffma" && cc_major == 9 && cc_minor == 0)
    // ffma_m128_n256_k8_tm8_tn16_w16_v4_s2_g1: fastest at 1024x8192x8192 on the H100.
    return KnobValues{{"tile_m", 128}, {"tile_n", 256}, {"tile_k", 8}, {"thread_m", 8}, {"thread_n", 16},
                      {"warp_m", 16},  {"vec", 4},      {"stages", 2}, {"groups", 1}};
  return std::nullopt;
}

KnobValues universal_knobs(const std::string& family) {
  if (family == "ffma")
    // vec 1 has no divisibility requirement on k and needs only 4-byte aligned tensors;
    // 64x64 tiles of 256 threads keep small shapes busy.
    return {{"tile_m", 64}, {"tile_n", 64}, {"tile_k", 8}, {"thread_m", 4}, {"thread_n", 4},
            {"warp_m", 4},  {"vec", 1},     {"stages", 2}, {"groups", 1}};
  throw UsageError("no universal config is known for family '" + family + "'");
}

}  // namespace fusetune
