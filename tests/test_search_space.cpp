// Tests of SearchSpace: loading tests/data/tiny_space.json, enumeration and its filters
// (constraints, device limits), config names, shape checks, launch geometry, and one
// malformed file per defect that load must reject with a one-line DataError.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "fusetune/errors.h"
#include "hashing.h"
#include "search_space.h"
#include "test_support.h"

namespace fusetune {
namespace {

using nlohmann::json;
using testing::source_path;
using testing::TempDir;

std::string tiny_path() { return source_path("tests/data/tiny_space.json"); }

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

/// The tiny space's knobs, by value.
KnobValues tiny_knobs(std::int64_t tile_m, std::int64_t tile_n, std::int64_t unroll) {
  return {{"tile_m", tile_m}, {"tile_n", tile_n}, {"unroll", unroll}};
}

std::set<std::string> names_of(const std::vector<KernelConfig>& configs) {
  std::set<std::string> names;
  for (const KernelConfig& config : configs) names.insert(config.name);
  return names;
}

TEST(SearchSpace, LoadsTinySpace) {
  const SearchSpace space = SearchSpace::load(tiny_path());
  EXPECT_EQ(space.family(), "tiny");
  EXPECT_EQ(space.template_file(), "tiny_kernel.cuh");
  EXPECT_EQ(space.entry(), "fusetune::tiny::fused_linear");
  EXPECT_EQ(space.origin(), tiny_path());
  ASSERT_EQ(space.knobs().size(), 3u);
  EXPECT_EQ(space.knobs()[0].name, "tile_m");
  EXPECT_EQ(space.knobs()[0].abbrev, "m");
  EXPECT_EQ(space.knobs()[0].values, (std::vector<std::int64_t>{1, 2, 4, 8}));
  EXPECT_EQ(space.knobs()[2].doc, "consecutive elements of x each thread stages per k-chunk");
  ASSERT_EQ(space.template_args().size(), 3u);
  EXPECT_EQ(space.template_args()[0].knob, "tile_m");
  EXPECT_EQ(space.template_args()[2].knob, "unroll");
  EXPECT_EQ(space.launch(), LaunchContract::kPlain);
  EXPECT_EQ(space.weight_prep(), WeightPrep::kNone);
  EXPECT_EQ(space.constraints().size(), 2u);
  EXPECT_EQ(space.shape_constraints().size(), 2u);
  EXPECT_TRUE(space.supports(Dtype::kFloat32, Policy::kHighest));
  EXPECT_FALSE(space.supports(Dtype::kBFloat16, Policy::kHighest));
  EXPECT_FALSE(space.supports(Dtype::kFloat32, Policy::kHigh));
}

TEST(SearchSpace, ContentHashIsTheHashOfTheFileBytes) {
  const SearchSpace space = SearchSpace::load(tiny_path());
  const std::string bytes = read_file(tiny_path());
  EXPECT_EQ(space.content_hash(), content_hash(bytes));
  EXPECT_EQ(space.content_hash().size(), 32u);
  // Any edit, even whitespace only, is a different file.
  EXPECT_NE(SearchSpace::parse(bytes + "\n", "edited").content_hash(), space.content_hash());
}

TEST(SearchSpace, EnumerateCountMatchesHandCount) {
  // (tile_m, tile_n) pairs with tile_m * tile_n <= 256: tile_m=1: 3, 2: 3, 4: 2, 8: 1 -> 9;
  // times 3 unroll values = 27, minus (8, 32, 4), excluded by !(tile_m == 8 && unroll == 4).
  const SearchSpace space = SearchSpace::load(tiny_path());
  const std::vector<KernelConfig> configs = space.enumerate();
  EXPECT_EQ(configs.size(), 26u);
  for (const KernelConfig& config : configs) {
    EXPECT_LE(config.knob("tile_m") * config.knob("tile_n"), 256) << config.name;
    EXPECT_FALSE(config.knob("tile_m") == 8 && config.knob("unroll") == 4) << config.name;
    EXPECT_EQ(space.check_constraints(config), std::nullopt) << config.name;
  }
}

TEST(SearchSpace, EnumerateOrderAndNames) {
  const std::vector<KernelConfig> configs = SearchSpace::load(tiny_path()).enumerate();
  ASSERT_GE(configs.size(), 4u);
  // The last knob turns fastest.
  EXPECT_EQ(configs[0].name, "tiny_m1_n32_u1");
  EXPECT_EQ(configs[1].name, "tiny_m1_n32_u2");
  EXPECT_EQ(configs[2].name, "tiny_m1_n32_u4");
  EXPECT_EQ(configs[3].name, "tiny_m1_n64_u1");
  EXPECT_EQ(configs.back().name, "tiny_m8_n32_u2");
  EXPECT_EQ(configs[0].family, "tiny");
  EXPECT_EQ(configs[0].knobs, tiny_knobs(1, 32, 1));
  EXPECT_EQ(names_of(configs).size(), configs.size()) << "config names must be unique";
}

TEST(SearchSpace, ConstraintsFilter) {
  const SearchSpace space = SearchSpace::load(tiny_path());
  EXPECT_EQ(space.check_constraints(space.make_config(tiny_knobs(4, 128, 1))),
            "tile_m * tile_n <= 256: blocks of more than 256 threads are not worth testing");
  EXPECT_EQ(space.check_constraints(space.make_config(tiny_knobs(8, 32, 4))),
            "!(tile_m == 8 && unroll == 4): an arbitrary exclusion, to test ! and &&");
  const std::set<std::string> names = names_of(space.enumerate());
  EXPECT_FALSE(names.count("tiny_m4_n128_u1"));
  EXPECT_FALSE(names.count("tiny_m8_n32_u4"));
  EXPECT_TRUE(names.count("tiny_m8_n32_u2"));
}

TEST(SearchSpace, DeviceLimitsFilter) {
  const SearchSpace space = SearchSpace::load(tiny_path());
  DeviceLimits roomy;
  EXPECT_EQ(space.valid_configs(roomy).size(), 26u);

  // smem_bytes = tile_m * tile_n * unroll * 4 exceeds 2048 only for (2, 128, 4) and (4, 64, 4).
  DeviceLimits small_smem;
  small_smem.max_smem_per_block = 2048;
  const std::vector<KernelConfig> smem_fit = space.valid_configs(small_smem);
  EXPECT_EQ(smem_fit.size(), 24u);
  EXPECT_FALSE(names_of(smem_fit).count("tiny_m2_n128_u4"));
  EXPECT_TRUE(names_of(smem_fit).count("tiny_m2_n128_u2"));  // exactly 2048 bytes fits
  EXPECT_EQ(space.check_device(space.make_config(tiny_knobs(4, 64, 4)), small_smem),
            "tiny_m4_n64_u4 needs 4096 bytes of shared memory per block, more than the device's "
            "max_smem_per_block of 2048");

  // threads = tile_m * tile_n exceeds 128 for the 8 configs with 256 threads.
  DeviceLimits few_threads;
  few_threads.max_threads_per_block = 128;
  EXPECT_EQ(space.valid_configs(few_threads).size(), 18u);
  EXPECT_EQ(space.check_device(space.make_config(tiny_knobs(2, 128, 1)), few_threads),
            "tiny_m2_n128_u1 needs 256 threads per block, more than the device's max_threads_per_block of 128");

  DeviceLimits both = small_smem;
  both.max_threads_per_block = 128;
  EXPECT_EQ(space.valid_configs(both).size(), 18u);  // the two smem misfits have 256 threads too
  for (const KernelConfig& config : space.valid_configs(both))
    EXPECT_EQ(space.check_device(config, both), std::nullopt) << config.name;
}

TEST(SearchSpace, MakeConfigNamesAndRejects) {
  const SearchSpace space = SearchSpace::load(tiny_path());
  const KernelConfig config = space.make_config(tiny_knobs(2, 64, 4));
  EXPECT_EQ(config.name, "tiny_m2_n64_u4");
  EXPECT_EQ(config.family, "tiny");
  EXPECT_EQ(config.knobs, tiny_knobs(2, 64, 4));
  EXPECT_THROW(space.make_config({{"tile_m", 2}, {"tile_n", 64}}), UsageError);  // missing
  KnobValues extra = tiny_knobs(2, 64, 4);
  extra["stages"] = 2;
  EXPECT_THROW(space.make_config(extra), UsageError);                 // unknown
  EXPECT_THROW(space.make_config(tiny_knobs(3, 64, 4)), UsageError);  // not a value
  try {
    space.make_config(tiny_knobs(3, 64, 4));
  } catch (const UsageError& error) {
    EXPECT_EQ(std::string(error.what()), "knob 'tile_m' of family 'tiny' cannot be 3 (allowed: 1, 2, 4, 8)");
  }
}

TEST(SearchSpace, ConfigFromNameInvertsNames) {
  const SearchSpace space = SearchSpace::load(tiny_path());
  for (const KernelConfig& config : space.enumerate()) EXPECT_EQ(space.config_from_name(config.name), config);
  for (const std::string bad :
       {"tiny_m2_n64", "tiny_m2_n64_u4_x1", "ffma_m2_n64_u4", "tiny_m2_q64_u4", "tiny_m2_n64_u3", "tiny_m2_n_u4",
        "tiny_m2_n64_u4x", "tiny_m2_n+64_u4", "tiny_m2_n 64_u4", "tiny"})
    EXPECT_THROW(space.config_from_name(bad), UsageError) << bad;
}

TEST(SearchSpace, CheckShape) {
  const SearchSpace space = SearchSpace::load(tiny_path());
  const KernelConfig unroll4 = space.make_config(tiny_knobs(1, 64, 4));
  EXPECT_EQ(space.check_shape(unroll4, ProblemShape{1024, 8192, 8192}), std::nullopt);
  EXPECT_EQ(space.check_shape(unroll4, ProblemShape{7, 5, 510}),
            "k % unroll == 0: only the first of a thread's unroll staged elements is bounds-checked");
  EXPECT_EQ(space.check_shape(space.make_config(tiny_knobs(1, 64, 1)), ProblemShape{7, 5, 510}), std::nullopt);
  // grid_y = ceil_div(m, tile_m) must stay within 65535 blocks.
  EXPECT_EQ(space.check_shape(unroll4, ProblemShape{65536, 64, 64}),
            "ceil_div(m, tile_m) <= 65535: grid_y covers m and is limited to 65535 blocks");
  EXPECT_EQ(space.check_shape(space.make_config(tiny_knobs(2, 64, 4)), ProblemShape{65536, 64, 64}), std::nullopt);
}

TEST(SearchSpace, LaunchGeometry) {
  const SearchSpace space = SearchSpace::load(tiny_path());
  const LaunchGeometry geometry =
      space.launch_geometry(space.make_config(tiny_knobs(2, 64, 4)), ProblemShape{1000, 1000, 512}, DeviceLimits{});
  EXPECT_EQ(geometry.threads, 128);
  EXPECT_EQ(geometry.smem_bytes, 2 * 64 * 4 * 4);
  EXPECT_EQ(geometry.grid_x, 16);   // ceil(1000 / 64)
  EXPECT_EQ(geometry.grid_y, 500);  // 1000 / 2
  EXPECT_EQ(geometry.grid_z, 1);    // not declared: 1
}

TEST(SearchSpace, ChecksRejectConfigsOfOtherFamilies) {
  const SearchSpace space = SearchSpace::load(tiny_path());
  KernelConfig config = space.make_config(tiny_knobs(2, 64, 4));
  config.family = "ffma";
  EXPECT_THROW(space.check_device(config, DeviceLimits{}), UsageError);
  EXPECT_THROW(space.check_shape(config, ProblemShape{1, 1, 1}), UsageError);
  EXPECT_THROW(space.launch_geometry(config, ProblemShape{1, 1, 1}, DeviceLimits{}), UsageError);
}

TEST(SearchSpace, TemplateArgsTakeConstantsAndTheGridTheSmCount) {
  json document = json::parse(read_file(tiny_path()));
  document["template_args"] = {"fusetune::kOperandBf16", "tile_m", "tile_n", "unroll", 0};
  document["derived"]["grid_x"] = "min(ceil_div(n, tile_n), sm_count)";
  const SearchSpace space = SearchSpace::parse(document.dump(), "constants");
  ASSERT_EQ(space.template_args().size(), 5u);
  EXPECT_EQ(space.template_args()[0].knob, "");
  EXPECT_EQ(space.template_args()[0].constant, "fusetune::kOperandBf16");
  EXPECT_EQ(space.template_args()[4].constant, "0");
  const KernelConfig config = space.make_config(tiny_knobs(2, 64, 4));
  DeviceLimits few_sms;
  few_sms.sm_count = 3;
  EXPECT_EQ(space.launch_geometry(config, ProblemShape{1000, 1000, 512}, few_sms).grid_x, 3);
  EXPECT_EQ(space.launch_geometry(config, ProblemShape{1000, 100, 512}, few_sms).grid_x, 2);  // ceil(100 / 64)
}

TEST(SearchSpace, LaunchContractAndWeightPrepAreRead) {
  json document = json::parse(read_file(tiny_path()));
  document["launch"] = "tensor_map";
  document["weight_prep"] = "tf32_split";
  const SearchSpace space = SearchSpace::parse(document.dump(), "contract");
  EXPECT_EQ(space.launch(), LaunchContract::kTensorMap);
  EXPECT_EQ(space.weight_prep(), WeightPrep::kTf32Split);
  document["launch"] = "plain";
  document["weight_prep"] = "none";
  const SearchSpace plain = SearchSpace::parse(document.dump(), "plain");
  EXPECT_EQ(plain.launch(), LaunchContract::kPlain);
  EXPECT_EQ(plain.weight_prep(), WeightPrep::kNone);
}

/// What wgmma_gemm.cuh expects of every config (see kernel_templates/hopper_args.cuh and the
/// search spaces' constraints): whole m64 rows per consumer warpgroup, accumulators that fit,
/// one producer warpgroup, the shared-memory formula (ring plus the TMA-store epilogue's
/// staging: kStoreBuffers 8 KB boxes per consumer), a persistent grid of at most one block per
/// SM, TMA's 16-byte row strides, and which families round through TF32 maps or prepare w.
TEST(SearchSpace, WgmmaSpacesKeepTheKernelsContract) {
  DeviceLimits h100;
  const ProblemShape headline = headline_shape();
  struct Family {
    std::string name;
    Dtype dtype;
    Policy policy;
    bool split;      ///< 3xTF32: three products, a promoted accumulator
    bool prepared;   ///< reads the big/small halves fusetune_prepare_weight wrote (3xTF32)
    bool tf32_maps;  ///< TMA rounds x and w to TF32 (TF32)
    bool tma_store;  ///< has the store_buffers knob (16-bit outputs), and the trim knob
  };
  for (const Family& family : {Family{"wgmma_bf16", Dtype::kBFloat16, Policy::kHalf, false, false, false, true},
                               Family{"wgmma_fp16", Dtype::kFloat16, Policy::kHalf, false, false, false, true},
                               Family{"wgmma_tf32", Dtype::kFloat32, Policy::kHigh, false, false, true, false},
                               Family{"wgmma_3xtf32", Dtype::kFloat32, Policy::kHighest, true, true, false, false}}) {
    SCOPED_TRACE(family.name);
    const SearchSpace space = SearchSpace::load(source_path("search_spaces/" + family.name + ".json"));
    EXPECT_EQ(space.family(), family.name);
    EXPECT_EQ(space.launch(), LaunchContract::kTensorMap);
    EXPECT_EQ(space.weight_prep(), family.prepared ? WeightPrep::kTf32Split : WeightPrep::kNone);
    EXPECT_EQ(space.tma_operand_type(), family.tf32_maps ? TmaOperandType::kTf32 : TmaOperandType::kNative);
    EXPECT_EQ(space.has_knob("store_buffers"), family.tma_store);
    // fused_linear's parameters: kStoreBuffers 12th, then kSplitN and kTrim (their defaults 0
    // where absent)
    ASSERT_EQ(space.template_args().size(), family.split ? 12u : family.tma_store ? 14u : 13u);
    EXPECT_EQ(space.template_args()[11].knob, family.tma_store ? "store_buffers" : "");
    EXPECT_EQ(space.has_knob("split_n"), !family.split);
    if (!family.split) EXPECT_EQ(space.template_args()[12].knob, "split_n");
    EXPECT_EQ(space.has_knob("trim"), family.tma_store);
    if (family.tma_store) EXPECT_EQ(space.template_args()[13].knob, "trim");
    EXPECT_TRUE(space.supports(family.dtype, family.policy));
    ASSERT_GE(space.template_args().size(), 9u);
    EXPECT_EQ(space.template_args()[0].knob, "");                             // the operand kind, a constant
    EXPECT_EQ(space.template_args()[8].knob, family.split ? "promote" : "");  // kPromote: 0 unless 3xTF32
    const bool has_pingpong = std::any_of(space.knobs().begin(), space.knobs().end(),
                                          [](const KnobSpec& knob) { return knob.name == "pingpong"; });
    const auto configs = space.valid_configs(h100);
    EXPECT_GE(configs.size(), 100u);
    EXPECT_LE(configs.size(), 1000u) << "at about half a second a trial, more would not tune within 10 minutes";
    const std::int64_t accumulator_cap = family.split ? 64 : 128;
    for (const KernelConfig& config : configs) {
      const std::int64_t tile_m = config.knob("tile_m"), tile_n = config.knob("tile_n");
      const std::int64_t consumers = config.knob("consumers"), stages = config.knob("stages");
      // Cooperative consumers split the tile's rows, or with split_n its columns; pingpong
      // consumers each take all of it.
      const bool pingpong = has_pingpong && config.knob("pingpong") == 1;
      const bool split_n = space.has_knob("split_n") && config.knob("split_n") == 1;
      const std::int64_t rows = pingpong || split_n ? tile_m : tile_m / consumers;
      const std::int64_t cols = split_n ? tile_n / consumers : tile_n;
      EXPECT_TRUE(tile_m % consumers == 0 && (rows == 64 || rows == 128)) << config.name;
      if (pingpong) EXPECT_TRUE(consumers == 2 && config.knob("persistent") == 1) << config.name;
      if (split_n) EXPECT_TRUE(consumers == 2 && !pingpong && cols % 64 == 0) << config.name;
      EXPECT_LE(rows * cols / 128, accumulator_cap) << config.name;
      // trim: the second split_n half of 128 columns narrows to 120 (wgmma N), in the
      // data-parallel persistent loop, with TMA stores.
      const std::int64_t trim = space.has_knob("trim") ? config.knob("trim") : 0;
      if (trim > 0)
        EXPECT_TRUE(trim == 8 && split_n && cols == 128 && config.knob("persistent") == 1 && !pingpong &&
                    config.knob("store_buffers") > 0)
            << config.name;
      const LaunchGeometry geometry = space.launch_geometry(config, headline, h100);
      EXPECT_EQ(geometry.threads, 128 * (consumers + 1)) << config.name;
      const std::int64_t staging = family.tma_store ? consumers * config.knob("store_buffers") * 8192 : 0;
      EXPECT_EQ(geometry.smem_bytes, stages * 128 * (tile_m + (family.split ? 2 : 1) * tile_n) + 2048 + staging)
          << config.name;
      const std::int64_t tiles_m = (headline.m + tile_m - 1) / tile_m;
      // With trim, one tile column more (TileColumns in wgmma_gemm.cuh): 33 of 248 or 256 at
      // the headline, where 256-wide tiles take 32.
      const std::int64_t columns = trim > 0 ? std::min((headline.n + tile_n - 1) / tile_n + 1,
                                                       (headline.n + tile_n - trim - 1) / (tile_n - trim))
                                            : (headline.n + tile_n - 1) / tile_n;
      if (trim > 0) EXPECT_EQ(columns, 33) << config.name;
      const std::int64_t tiles = tiles_m * columns;
      // Stream-K (persistent 2) launches whole teams of min(group, tile-rows) blocks, one per SM
      // at most, and shares w tiles within a team (raster 0); it has no pingpong.
      const std::int64_t team = std::min(config.knob("group"), tiles_m);
      switch (config.knob("persistent")) {
        case 0:
          EXPECT_EQ(geometry.grid_x, tiles) << config.name;
          break;
        case 1:
          EXPECT_EQ(geometry.grid_x, std::min<std::int64_t>(tiles, h100.sm_count)) << config.name;
          break;
        default:
          EXPECT_EQ(geometry.grid_x, h100.sm_count / team * team) << config.name;
          EXPECT_TRUE(config.knob("raster") == 0 && !pingpong) << config.name;
      }
      EXPECT_EQ(geometry.grid_y * geometry.grid_z, 1) << config.name;
      EXPECT_EQ(space.config_from_name(config.name), config);
    }
    // TMA's row stride k * elem must be a multiple of 16 bytes.
    const std::int64_t k_step = family.dtype == Dtype::kFloat32 ? 4 : 8;
    EXPECT_FALSE(space.check_shape(configs.front(), ProblemShape{7, 33, 5 * k_step}));
    EXPECT_TRUE(space.check_shape(configs.front(), ProblemShape{7, 33, 5 * k_step + 2}));
  }
}

TEST(SearchSpace, SimtFallbackSpacesTakeEveryShape) {
  for (const std::string family : {"simt_bf16", "simt_fp16"}) {
    const SearchSpace space = SearchSpace::load(source_path("search_spaces/" + family + ".json"));
    EXPECT_EQ(space.launch(), LaunchContract::kPlain);
    const auto configs = space.valid_configs(DeviceLimits{});
    EXPECT_EQ(configs.size(), 8u) << family;
    for (const KernelConfig& config : configs)
      for (const ProblemShape shape : {ProblemShape{1, 1, 1}, ProblemShape{8191, 7, 33}, ProblemShape{33, 1000, 8191}})
        EXPECT_FALSE(space.check_shape(config, shape)) << config.name << " on " << shape.dims();
  }
}

/// What skinny_gemv.cuh expects of every config of its three families: the element type as a
/// leading constant, lanes that load one element or 16 bytes (4 fp32, 8 bf16 / fp16), x rows
/// staged as fp32 in shared memory, and one block along y (w streamed once).
TEST(SearchSpace, SkinnySpacesOnlyTakeTheRowsTheyStageAndStreamWOnce) {
  struct Family {
    std::string name;
    Dtype dtype;
    Policy policy;
    std::string element;  ///< the template's leading constant
    std::int64_t vec;     ///< elements of one 16-byte load
  };
  for (const Family& family : {Family{"skinny_fp32", Dtype::kFloat32, Policy::kHighest, "fusetune::kElementFp32", 4},
                               Family{"skinny_bf16", Dtype::kBFloat16, Policy::kHalf, "fusetune::kOperandBf16", 8},
                               Family{"skinny_fp16", Dtype::kFloat16, Policy::kHalf, "fusetune::kOperandFp16", 8}}) {
    SCOPED_TRACE(family.name);
    const SearchSpace space = SearchSpace::load(source_path("search_spaces/" + family.name + ".json"));
    EXPECT_EQ(space.family(), family.name);
    EXPECT_EQ(space.launch(), LaunchContract::kPlain);
    EXPECT_EQ(space.weight_prep(), WeightPrep::kNone);  // w read as it is
    EXPECT_TRUE(space.supports(family.dtype, family.policy));
    ASSERT_EQ(space.template_args().size(), 6u);
    EXPECT_EQ(space.template_args()[0].constant, family.element);
    const auto configs = space.valid_configs(DeviceLimits{});
    // (rows, cols, warps) with rows * cols <= 32 and, at 32 warps, <= 8: 12, 12, 11, 10, 6 for
    // rows 1, 2, 4, 8, 16; times the chunks whose staged rows fit 48 KB (3, 3, 3, 2, 1): 131;
    // times the two vec values.
    EXPECT_EQ(configs.size(), 262u);
    int take_m16 = 0;
    for (const KernelConfig& config : configs) {
      const int rows = static_cast<int>(config.knob("rows"));
      const std::int64_t vec = config.knob("vec");
      EXPECT_TRUE(vec == 1 || vec == family.vec) << config.name;
      EXPECT_LE(rows * config.knob("cols"), 32) << config.name;
      // One block along y per `rows` rows of x: a shape with more rows than that is refused
      // (it would stream w more than once), so the tuner and resolver never pick it there.
      EXPECT_FALSE(space.check_shape(config, ProblemShape{rows, 8192, 8192})) << config.name;
      EXPECT_TRUE(space.check_shape(config, ProblemShape{rows + 1, 8192, 8192})) << config.name;
      EXPECT_TRUE(space.check_shape(config, ProblemShape{1024, 8192, 8192})) << config.name;
      // 16-byte loads need rows of x and w that start 16-byte aligned: k % 4 == 0 for fp32,
      // k % 8 == 0 for 16-bit elements (8188 is a multiple of 4, not of 8).
      EXPECT_EQ(vec > 1, space.check_shape(config, ProblemShape{1, 64, 8191}).has_value()) << config.name;
      EXPECT_EQ(vec == 8, space.check_shape(config, ProblemShape{1, 64, 8188}).has_value()) << config.name;
      const LaunchGeometry geometry = space.launch_geometry(config, ProblemShape{rows, 8192, 8192}, DeviceLimits{});
      EXPECT_EQ(geometry.threads, 32 * config.knob("warps")) << config.name;
      EXPECT_EQ(geometry.grid_y, 1) << config.name;
      EXPECT_EQ(geometry.smem_bytes, 4 * rows * config.knob("chunk")) << config.name;  // staged as fp32
      EXPECT_EQ(space.config_from_name(config.name), config);
      take_m16 += rows == 16;
    }
    EXPECT_GT(take_m16, 0);
  }
}

TEST(SearchSpace, EvaluationErrorsNameFileAndConfig) {
  json document = json::parse(read_file(tiny_path()));
  document["constraints"].push_back({{"expr", "tile_m / (unroll - 1) >= 0"}, {"why", "divides by zero"}});
  const TempDir dir;
  const std::string path = dir.file("divides_by_zero.json");
  std::ofstream(path) << document.dump(2);
  const SearchSpace space = SearchSpace::load(path);  // valid syntax and names
  try {
    space.enumerate();
    FAIL() << "expected a DataError";
  } catch (const DataError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("constraints[2]"), std::string::npos) << message;
    EXPECT_NE(message.find("tiny_m1_n32_u1"), std::string::npos) << message;
    EXPECT_NE(message.find("division by zero"), std::string::npos) << message;
  }
}

// ---- malformed files: each defect is a DataError naming the file, on one line ----

/// One defect: a mutation of tiny_space.json and a phrase the message must contain.
struct Defect {
  std::string name;
  std::function<void(json&)> mutate;
  std::string expected;
};

std::vector<Defect> defects() {
  const auto erase = [](const char* key) { return [key](json& d) { d.erase(key); }; };
  return {
      {"missing_family", erase("family"), "missing required field 'family'"},
      {"missing_template", erase("template"), "missing required field 'template'"},
      {"missing_entry", erase("entry"), "missing required field 'entry'"},
      {"missing_dtypes", erase("dtypes"), "missing required field 'dtypes'"},
      {"missing_policies", erase("policies"), "missing required field 'policies'"},
      {"missing_knobs", erase("knobs"), "missing required field 'knobs'"},
      {"missing_template_args", erase("template_args"), "missing required field 'template_args'"},
      {"missing_derived", erase("derived"), "missing required field 'derived'"},
      {"missing_threads", [](json& d) { d["derived"].erase("threads"); },
       "missing required field 'threads' in derived"},
      {"missing_values", [](json& d) { d["knobs"][1].erase("values"); }, "missing required field 'values' in knobs[1]"},
      {"missing_why", [](json& d) { d["constraints"][0].erase("why"); },
       "missing required field 'why' in constraints[0]"},
      {"family_not_string", [](json& d) { d["family"] = 3; },
       "field 'family' in the top level is an integer, not a string"},
      {"knobs_not_array", [](json& d) { d["knobs"] = json::object(); },
       "'knobs' must be a non-empty array, found an object"},
      {"knob_not_object", [](json& d) { d["knobs"][0] = "tile_m"; }, "knobs[0] is a string, not an object"},
      {"value_string", [](json& d) { d["knobs"][0]["values"][1] = "2"; },
       "knobs[0].values[1] is a string, not an integer"},
      {"value_fraction", [](json& d) { d["knobs"][0]["values"][1] = 2.5; },
       "knobs[0].values[1] is a non-integer number"},
      {"value_too_large", [](json& d) { d["knobs"][0]["values"][1] = 1LL << 40; },
       "knobs[0].values[1] is out of range"},
      {"values_not_array", [](json& d) { d["knobs"][0]["values"] = 4; }, "knobs[0].values is an integer, not an array"},
      {"dtypes_not_array", [](json& d) { d["dtypes"] = "fp32"; }, "field 'dtypes' is a string, not an array"},
      {"threads_not_string", [](json& d) { d["derived"]["threads"] = 128; },
       "field 'threads' in derived is an integer"},
      {"constraints_not_array", [](json& d) { d["constraints"] = json::object(); },
       "'constraints' is an object, not an array"},
      {"empty_values", [](json& d) { d["knobs"][2]["values"] = json::array(); },
       "knobs[2] 'unroll' has an empty values list"},
      {"empty_knobs", [](json& d) { d["knobs"] = json::array(); }, "found an array with no elements"},
      {"empty_dtypes", [](json& d) { d["dtypes"] = json::array(); }, "'dtypes' is empty"},
      {"duplicate_knob", [](json& d) { d["knobs"][1]["name"] = "tile_m"; }, "duplicate knob name 'tile_m' at knobs[1]"},
      {"duplicate_abbrev", [](json& d) { d["knobs"][1]["abbrev"] = "m"; }, "duplicate abbrev 'm' at knobs[1]"},
      {"duplicate_value", [](json& d) { d["knobs"][0]["values"].push_back(4); },
       "knobs[0].values[4] repeats the value 4"},
      {"reserved_knob_name", [](json& d) { d["knobs"][0]["name"] = "k"; },
       "knobs[0] name 'k' cannot be used in expressions"},
      {"bad_abbrev", [](json& d) { d["knobs"][0]["abbrev"] = "t_m"; }, "has abbrev 't_m'"},
      {"template_args_missing_knob", [](json& d) { d["template_args"].erase(2); }, "template_args lacks knob 'unroll'"},
      {"template_args_not_knob", [](json& d) { d["template_args"][2] = "stages"; },
       "template_args names 'stages', which is not a knob"},
      {"template_args_twice", [](json& d) { d["template_args"].push_back("tile_n"); },
       "template_args lists 'tile_n' twice"},
      {"unknown_dtype", [](json& d) { d["dtypes"].push_back("fp8"); }, "unknown dtype 'fp8'"},
      {"unknown_policy", [](json& d) { d["policies"] = {"lowest"}; }, "unknown policy 'lowest'"},
      {"constraint_syntax", [](json& d) { d["constraints"][1]["expr"] = "tile_m <<= 2"; },
       "constraints[1].expr: syntax error at column 9 of 'tile_m <<= 2'"},
      {"derived_syntax", [](json& d) { d["derived"]["grid_x"] = "ceil_div(n tile_n)"; },
       "derived.grid_x: syntax error at column 12"},
      {"constraint_unknown_identifier", [](json& d) { d["constraints"][0]["expr"] = "tile_q > 1"; },
       "constraints[0].expr 'tile_q > 1' refers to unknown identifier 'tile_q'"},
      {"constraint_uses_shape", [](json& d) { d["constraints"][0]["expr"] = "tile_m <= m"; },
       "refers to unknown identifier 'm'"},
      {"threads_uses_shape", [](json& d) { d["derived"]["threads"] = "min(n, 128)"; },
       "derived.threads 'min(n, 128)' refers to unknown identifier 'n'"},
      {"shape_constraint_unknown", [](json& d) { d["shape_constraints"][0]["expr"] = "q % unroll == 0"; },
       "shape_constraints[0].expr 'q % unroll == 0' refers to unknown identifier 'q'"},
      {"unknown_top_field", [](json& d) { d["constraint"] = json::array(); },
       "unknown field 'constraint' in the top level"},
      {"unknown_knob_field", [](json& d) { d["knobs"][0]["value"] = {1}; }, "unknown field 'value' in knobs[0]"},
      {"unknown_derived_field", [](json& d) { d["derived"]["grid_w"] = "1"; }, "unknown field 'grid_w' in derived"},
      {"unknown_constraint_field", [](json& d) { d["constraints"][0]["reason"] = "x"; },
       "unknown field 'reason' in constraints[0]"},
      {"template_not_header", [](json& d) { d["template"] = "ffma_gemm.cu"; },
       "template 'ffma_gemm.cu' is not a header file name"},
      {"entry_not_name", [](json& d) { d["entry"] = "fused linear"; },
       "entry 'fused linear' is not a qualified C++ name"},
      {"top_level_array", [](json& d) { d = json::array({d}); }, "the top level is an array, not an object"},
      {"unknown_launch", [](json& d) { d["launch"] = "cuda_graph"; }, "unknown launch 'cuda_graph'"},
      {"tensor_map_without_tile_n",
       [](json& d) {
         d["launch"] = "tensor_map";
         d["knobs"][1]["name"] = "width";
         d["template_args"][1] = "width";
       },
       "launch 'tensor_map' needs a knob 'tile_n'"},
      {"unknown_weight_prep", [](json& d) { d["weight_prep"] = "transpose"; }, "unknown weight_prep 'transpose'"},
      {"weight_prep_of_bf16",
       [](json& d) {
         d["weight_prep"] = "tf32_split";
         d["dtypes"] = {"bf16"};
       },
       "weight_prep 'tf32_split' splits fp32 weights"},
      {"unknown_tma_operand_type", [](json& d) { d["tma_operand_type"] = "fp8"; }, "unknown tma_operand_type 'fp8'"},
      {"tf32_maps_of_a_plain_launch",
       [](json& d) {
         d["tma_operand_type"] = "tf32";
         d["dtypes"] = {"fp32"};
       },
       "tma_operand_type 'tf32' describes TMA maps"},
      {"template_arg_unqualified_constant", [](json& d) { d["template_args"].push_back("kOperandBf16"); },
       "template_args names 'kOperandBf16', which is not a knob"},
      {"template_arg_fraction", [](json& d) { d["template_args"].push_back(1.5); },
       "template_args[3] is a non-integer number"},
      {"threads_uses_sm_count", [](json& d) { d["derived"]["threads"] = "min(sm_count, 128)"; },
       "derived.threads 'min(sm_count, 128)' refers to unknown identifier 'sm_count'"},
  };
}

class MalformedSpace : public ::testing::TestWithParam<Defect> {};

TEST_P(MalformedSpace, ThrowsOneLineDataErrorNamingTheFile) {
  const Defect& defect = GetParam();
  json document = json::parse(read_file(tiny_path()));
  defect.mutate(document);
  const TempDir dir;
  const std::string path = dir.file("bad_" + defect.name + ".json");
  std::ofstream(path) << document.dump(2);
  try {
    SearchSpace::load(path);
    FAIL() << "expected a DataError for " << defect.name;
  } catch (const DataError& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(defect.expected), std::string::npos) << message;
    EXPECT_NE(message.find("; "), std::string::npos) << "no advice: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(Defects, MalformedSpace, ::testing::ValuesIn(defects()),
                         [](const ::testing::TestParamInfo<Defect>& info) { return info.param.name; });

/// The DataError message of loading `path` ("" if it loads).
std::string load_error(const std::string& path) {
  try {
    SearchSpace::load(path);
  } catch (const DataError& error) {
    return error.what();
  }
  return "";
}

TEST(SearchSpaceFiles, MissingFile) {
  const TempDir dir;
  const std::string path = dir.file("absent.json");
  const std::string message = load_error(path);
  EXPECT_EQ(message.rfind(path + ": cannot read search-space file (No such file or directory)", 0), 0u) << message;
}

TEST(SearchSpaceFiles, DirectoryInsteadOfFile) {
  const TempDir dir;
  EXPECT_EQ(load_error(dir.path()).rfind(dir.path() + ": is a directory", 0), 0u);
}

TEST(SearchSpaceFiles, MalformedJsonNamesLineAndColumn) {
  const std::string path = source_path("tests/data/bad_malformed_json.json");
  const std::string message = load_error(path);
  EXPECT_EQ(message.rfind(path + ": malformed JSON: parse error at line 4, column", 0), 0u) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(SearchSpaceFiles, UnknownFieldFromDataFile) {
  const std::string path = source_path("tests/data/bad_unknown_field.json");
  const std::string message = load_error(path);
  EXPECT_EQ(message.rfind(path + ": unknown field 'knob_values' in knobs[0]; remove it or fix its spelling", 0), 0u)
      << message;
}

TEST(SearchSpaceFiles, DuplicateJsonKey) {
  const TempDir dir;
  const std::string path = dir.file("bad_duplicate_key.json");
  std::string text = read_file(tiny_path());
  text.replace(text.find("\"family\": \"tiny\","), 17, "\"family\": \"tiny\", \"family\": \"tinier\",");
  std::ofstream(path) << text;
  EXPECT_NE(load_error(path).find(path + ": key 'family' appears twice in one object"), std::string::npos)
      << load_error(path);
}

TEST(SearchSpaceFiles, EmptyFile) {
  const TempDir dir;
  const std::string path = dir.file("empty.json");
  std::ofstream(path) << "";
  const std::string message = load_error(path);
  EXPECT_EQ(message.rfind(path + ": malformed JSON", 0), 0u) << message;
}

TEST(SearchSpaceFiles, ParseNamesTheOrigin) {
  try {
    SearchSpace::parse("{}", "<inline>");
    FAIL();
  } catch (const DataError& error) {
    EXPECT_EQ(std::string(error.what()).rfind("<inline>: missing required field 'family'", 0), 0u) << error.what();
  }
}

// ---- the real family ----

TEST(FfmaSearchSpace, ValidConfigsForH100) {
  const SearchSpace space = SearchSpace::load(source_path("search_spaces/ffma.json"));
  DeviceLimits h100;
  h100.cc_major = 9;
  h100.cc_minor = 0;
  h100.max_threads_per_block = 1024;
  h100.max_smem_per_block = 232448;
  const std::vector<KernelConfig> configs = space.valid_configs(h100);
  EXPECT_GE(configs.size(), 200u);
  EXPECT_EQ(names_of(configs).size(), configs.size()) << "config names must be unique";
  for (const KernelConfig& config : configs) {
    EXPECT_EQ(space.config_from_name(config.name), config);
    const LaunchGeometry geometry = space.launch_geometry(config, headline_shape(), h100);
    EXPECT_GE(geometry.threads, 1) << config.name;
    EXPECT_GE(geometry.grid_x * geometry.grid_y * geometry.grid_z, 1) << config.name;
  }
}

}  // namespace
}  // namespace fusetune
