// Launch specs and plans without a GPU: what a config of each launch contract needs, the JSON
// the tuner sends the worker, the plain plan's arguments, the prepared-weight checks, and the
// runtime's per-problem plan cache.
#include <gtest/gtest.h>

#include <cmath>

#include "default_configs.h"
#include "fusetune/errors.h"
#include "kernel_launcher.h"
#include "tuner.h"
#include "worker.h"

namespace fusetune {
namespace {

/// A cooperative 128 x 128 config of `space`; knobs not named here take their first value.
KernelConfig wgmma_config(const SearchSpace& space, KnobValues set = {}) {
  set.merge(KnobValues{{"tile_m", 128},
                       {"tile_n", 128},
                       {"stages", 4},
                       {"consumers", 2},
                       {"persistent", 1},
                       {"raster", 0},
                       {"group", 8}});
  KnobValues knobs;
  for (const KnobSpec& knob : space.knobs())
    knobs[knob.name] = set.count(knob.name) ? set.at(knob.name) : knob.values.front();
  return space.make_config(knobs);
}

/// Host ints standing in for device tensors: plain plans only copy their addresses.
struct StandInTensors {
  int x = 0, w = 0, bias = 0, out = 0;
  LaunchOperands operands(float scale) {
    LaunchOperands operands;
    operands.x = &x;
    operands.w = &w;
    operands.bias = &bias;
    operands.out = &out;
    operands.scale = scale;
    return operands;
  }
};

/// A 3xTF32 tensor-map spec (128 x 128 boxes) and operands with x and w at 16-byte aligned
/// addresses but no prepared weight: refused before any map is encoded, so no GPU is needed.
LaunchSpec split_tensor_map_spec() {
  LaunchSpec spec;
  spec.contract = LaunchContract::kTensorMap;
  spec.weight_prep = WeightPrep::kTf32Split;
  spec.tile_m = 128;
  spec.tile_n = 128;
  return spec;
}
LaunchOperands unprepared_operands() {
  LaunchOperands operands;
  operands.x = reinterpret_cast<const void*>(0x10000);
  operands.w = reinterpret_cast<const void*>(0x20000);
  return operands;
}

TEST(KernelLauncher, SpecsCarryTheContractTheBoxesAndTheGeometry) {
  DeviceLimits limits;
  limits.sm_count = 100;
  const ProblemShape shape{1024, 8192, 8192, Dtype::kBFloat16, Policy::kHalf};
  const SearchSpace bf16 = load_search_space("wgmma_bf16");
  const LaunchSpec spec = make_launch_spec(bf16, wgmma_config(bf16), shape, limits);
  EXPECT_EQ(spec.contract, LaunchContract::kTensorMap);
  EXPECT_EQ(spec.weight_prep, WeightPrep::kNone);
  EXPECT_EQ(spec.tile_m, 128);
  EXPECT_EQ(spec.tile_n, 128);
  EXPECT_EQ(spec.geometry.threads, 384);
  EXPECT_EQ(spec.geometry.grid_x, 100);  // persistent: min(8 * 64 tiles, sm_count)
  EXPECT_EQ(spec.tma_operand_type, TmaOperandType::kNative);
  EXPECT_FALSE(spec.tma_store);  // store_buffers 0, its first value
  EXPECT_TRUE(make_launch_spec(bf16, wgmma_config(bf16, {{"store_buffers", 2}}), shape, limits).tma_store);
  EXPECT_EQ(spec.workspace_bytes, 0);  // data-parallel: no workspace

  // Stream-K: teams of min(group 8, 8 tile-rows) blocks, as many as fit 100 SMs; a workspace of
  // the flags' region plus one fp32 128 x 128 tile per block, flags for two consumers a block.
  const LaunchSpec stream_k = make_launch_spec(bf16, wgmma_config(bf16, {{"persistent", 2}}), shape, limits);
  EXPECT_EQ(stream_k.geometry.grid_x, 96);
  EXPECT_EQ(stream_k.workspace_bytes, kStreamKFlagsBytes + 96 * 128 * 128 * 4);
  EXPECT_EQ(stream_k.workspace_flag_bytes, 96 * 2 * 4);

  // TF32: TMA rounds x and w through TF32 maps; no weight preparation, no TMA-store knob.
  const SearchSpace tf32 = load_search_space("wgmma_tf32");
  const LaunchSpec tf32_spec = make_launch_spec(tf32, wgmma_config(tf32), {1024, 8192, 8192}, limits);
  EXPECT_EQ(tf32_spec.tma_operand_type, TmaOperandType::kTf32);
  EXPECT_EQ(tf32_spec.weight_prep, WeightPrep::kNone);
  EXPECT_FALSE(tf32_spec.tma_store);

  const SearchSpace ffma = load_search_space("ffma");
  const LaunchSpec plain = make_launch_spec(ffma, ffma.make_config(universal_knobs("ffma")), {7, 9, 11}, limits);
  EXPECT_EQ(plain.contract, LaunchContract::kPlain);
  EXPECT_EQ(plain.tile_m, 0);

  const SearchSpace split = load_search_space("wgmma_3xtf32");
  const LaunchSpec split_spec =
      make_launch_spec(split, wgmma_config(split, {{"promote", 4}}), {1024, 8192, 8192}, limits);
  EXPECT_EQ(split_spec.weight_prep, WeightPrep::kTf32Split);
  EXPECT_EQ(prepared_weight_bytes(split_spec.weight_prep, {1024, 8192, 8192}), 2u * 8192 * 8192 * 4);
  EXPECT_EQ(prepared_weight_bytes(WeightPrep::kNone, {1024, 8192, 8192}), 0u);
}

TEST(KernelLauncher, SpecsRoundTripThroughTheWorkerProtocol) {
  LaunchSpec spec;
  spec.contract = LaunchContract::kTensorMap;
  spec.weight_prep = WeightPrep::kTf32Split;
  spec.tma_operand_type = TmaOperandType::kTf32;
  spec.tma_store = true;
  spec.tile_m = 256;
  spec.tile_n = 64;
  spec.geometry = LaunchGeometry{384, 200000, 132, 1, 1};
  spec.workspace_bytes = 8200;
  spec.workspace_flag_bytes = 1056;
  const LaunchSpec back = launch_spec_from_json(nlohmann::json::parse(launch_spec_to_json(spec).dump()));
  EXPECT_EQ(back.contract, spec.contract);
  EXPECT_EQ(back.weight_prep, spec.weight_prep);
  EXPECT_EQ(back.tma_operand_type, TmaOperandType::kTf32);
  EXPECT_TRUE(back.tma_store);
  EXPECT_EQ(back.tile_m, 256);
  EXPECT_EQ(back.tile_n, 64);
  EXPECT_EQ(back.geometry.threads, 384);
  EXPECT_EQ(back.geometry.smem_bytes, 200000);
  EXPECT_EQ(back.geometry.grid_x, 132);
  EXPECT_EQ(back.workspace_bytes, 8200);
  EXPECT_EQ(back.workspace_flag_bytes, 1056);
  EXPECT_THROW(launch_spec_from_json(nlohmann::json::parse("{\"contract\": \"plain\"}")), nlohmann::json::exception);
}

TEST(KernelLauncher, PlainPlansPassThePointersAndTheShape) {
  LaunchSpec spec;
  spec.geometry = LaunchGeometry{256, 0, 4, 1, 1};
  StandInTensors tensors;
  TensorMapCache maps;
  const LaunchPlan plan = make_launch_plan(spec, {7, 9, 11}, tensors.operands(-1.5f), maps);
  EXPECT_EQ(plan.contract, LaunchContract::kPlain);
  EXPECT_EQ(plan.plain.x, &tensors.x);
  EXPECT_EQ(plan.plain.w, &tensors.w);
  EXPECT_EQ(plan.plain.bias, &tensors.bias);
  EXPECT_EQ(plan.plain.out, &tensors.out);
  EXPECT_EQ(plan.plain.m, 7);
  EXPECT_EQ(plan.plain.n, 9);
  EXPECT_EQ(plan.plain.k, 11);
  EXPECT_EQ(plan.plain.scale, -1.5f);
  EXPECT_EQ(plan.geometry.grid_x, 4);
  EXPECT_EQ(maps.encodings(), 0u);
}

TEST(KernelLauncher, TensorMapPlansRefuseAMissingPreparedWeightOrAMisalignedOperand) {
  LaunchSpec spec = split_tensor_map_spec();
  LaunchOperands operands = unprepared_operands();
  TensorMapCache maps;
  EXPECT_THROW(make_launch_plan(spec, {64, 64, 64}, operands, maps), UsageError);  // no prepared weight
  spec.weight_prep = WeightPrep::kNone;
  operands.x = reinterpret_cast<const void*>(0x10002);
  EXPECT_THROW(make_launch_plan(spec, {64, 64, 64}, operands, maps), UsageError);  // x misaligned for TMA
  EXPECT_EQ(maps.encodings(), 0u);
}

TEST(KernelLauncher, StreamKPlansRefuseAMissingOrTooSmallWorkspace) {
  LaunchSpec spec = split_tensor_map_spec();
  spec.weight_prep = WeightPrep::kNone;
  spec.workspace_bytes = kStreamKFlagsBytes + 4096;
  LaunchOperands operands = unprepared_operands();
  TensorMapCache maps;
  auto refusal = [&] {
    try {
      make_launch_plan(spec, {64, 64, 64}, operands, maps);
    } catch (const UsageError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(refusal().find("needs a workspace of " + std::to_string(spec.workspace_bytes) + " bytes; none given"),
            std::string::npos);
  operands.workspace = reinterpret_cast<void*>(0x20000);
  operands.workspace_bytes = std::size_t(spec.workspace_bytes) - 1;
  EXPECT_NE(refusal().find(std::to_string(spec.workspace_bytes - 1) + " given"), std::string::npos);
  EXPECT_EQ(maps.encodings(), 0u);  // refused before any tensor map was encoded
}

TEST(KernelLauncher, PlanCachesRebuildOnlyWhenAPointerOrTheScaleChanges) {
  LaunchSpec spec;
  spec.geometry = LaunchGeometry{256, 0, 4, 1, 1};
  LaunchPlanCache cache(spec, {7, 9, 11});
  StandInTensors tensors;
  int other_out = 0;
  LaunchOperands operands = tensors.operands(2.0f);
  TensorMapCache maps;
  EXPECT_EQ(cache.plan(operands, maps).plain.out, &tensors.out);
  EXPECT_EQ(cache.plan(operands, maps).plain.m, 7);
  EXPECT_EQ(cache.builds(), 1u);  // the same tensors again: the plan of the first call

  operands.out = &other_out;  // e.g. a fresh output tensor
  EXPECT_EQ(cache.plan(operands, maps).plain.out, &other_out);
  operands.scale = -0.0f;
  EXPECT_EQ(cache.plan(operands, maps).plain.scale, 0.0f);
  operands.scale = 0.0f;  // equal to -0.0 as floats, but not the same output
  EXPECT_FALSE(std::signbit(cache.plan(operands, maps).plain.scale));
  operands.bias = nullptr;
  EXPECT_EQ(cache.plan(operands, maps).plain.bias, nullptr);
  EXPECT_EQ(cache.builds(), 5u);
  EXPECT_EQ(cache.plan(operands, maps).plain.bias, nullptr);
  EXPECT_EQ(cache.builds(), 5u);
}

TEST(KernelLauncher, PlanCachesKeepNothingOfAPlanThatFailedToBuild) {
  LaunchPlanCache cache(split_tensor_map_spec(), {64, 64, 64});
  const LaunchOperands operands = unprepared_operands();
  TensorMapCache maps;
  // No prepared weight: refused on every call, never answered from the cache.
  EXPECT_THROW(cache.plan(operands, maps), UsageError);
  EXPECT_THROW(cache.plan(operands, maps), UsageError);
  EXPECT_EQ(cache.builds(), 0u);
  EXPECT_EQ(maps.encodings(), 0u);
}

}  // namespace
}  // namespace fusetune
