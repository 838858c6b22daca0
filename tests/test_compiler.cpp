// NVRTC compilation: every variant of the shipped search spaces compiles for sm_90a (no GPU
// needed), and the cubin cache hits on identical input and misses on any change.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "compiler.h"
#include "fusetune/errors.h"
#include "search_space.h"
#include "source_generator.h"
#include "test_support.h"
#include "tuner.h"

namespace fusetune::testing {
namespace {

TEST(Compiler, EveryFfmaVariantCompilesForSm90a) {
  const SearchSpace space = load_search_space("ffma");
  const auto configs = space.valid_configs(DeviceLimits{});
  ASSERT_GE(configs.size(), 200u);
  const Compiler compiler(TemplateLibrary::embedded(), "sm_90a", "");
  std::vector<GeneratedSource> sources;
  for (const auto& config : configs) sources.push_back(generate_source(space, config));
  CompilePool pool(compiler, sources, static_cast<int>(std::max(2u, std::thread::hardware_concurrency())));
  int failures = 0;
  for (size_t i = 0; i < configs.size(); ++i) {
    const CompileOutput output = pool.get(i);
    EXPECT_TRUE(output.ok) << configs[i].name << ":\n" << output.log.substr(0, 2000);
    if (!output.ok && ++failures > 5) break;
    if (!output.ok) continue;
    EXPECT_FALSE(output.cubin.empty()) << configs[i].name;
    EXPECT_GT(output.registers, 0) << configs[i].name << " (no ptxas report)";
    EXPECT_GT(output.compile_ms, 0.0);
  }
}

/// Every family but ffma (compiled whole above): the SIMT fallbacks whole, each wgmma family
/// at about a dozen configs spread over its space (the whole of it is `fusetune check`'s job).
/// Templates with a weight preparation must also define fusetune_prepare_weight.
TEST(Compiler, EveryOtherEmbeddedFamilyCompilesForSm90a) {
  const Compiler compiler(TemplateLibrary::embedded(), "sm_90a", "");
  for (const std::string& family : embedded_families()) {
    if (family == "ffma") continue;
    SCOPED_TRACE(family);
    const SearchSpace space = load_search_space(family);
    const auto configs = space.valid_configs(DeviceLimits{});
    ASSERT_FALSE(configs.empty());
    const std::size_t step = std::max<std::size_t>(1, configs.size() / 12);
    std::vector<KernelConfig> chosen;
    for (std::size_t i = 0; i < configs.size(); i += step) chosen.push_back(configs[i]);
    if (chosen.back() != configs.back()) chosen.push_back(configs.back());
    std::vector<GeneratedSource> sources;
    for (const auto& config : chosen) sources.push_back(generate_source(space, config));
    CompilePool pool(compiler, sources, static_cast<int>(std::max(2u, std::thread::hardware_concurrency())));
    for (std::size_t i = 0; i < chosen.size(); ++i) {
      const CompileOutput output = pool.get(i);
      EXPECT_TRUE(output.ok) << chosen[i].name << ":\n" << output.log.substr(0, 2000);
      if (!output.ok) break;
      EXPECT_NE(output.cubin.find(kKernelSymbol), std::string::npos) << chosen[i].name;
      if (space.weight_prep() != WeightPrep::kNone)
        EXPECT_NE(output.cubin.find(kPrepareWeightSymbol), std::string::npos) << chosen[i].name;
    }
  }
}

TEST(Compiler, CacheHitsOnIdenticalInputAndMissesOnChange) {
  TempDir cache;
  TemplateLibrary templates = TemplateLibrary::embedded();
  templates.add_directory(source_path("tests/data"));
  const SearchSpace space = SearchSpace::load(source_path("tests/data/faults.json"));
  const GeneratedSource source = generate_source(space, space.make_config({{"fault", 0}}));

  const Compiler compiler(templates, "sm_90a", cache.path());
  const CompileOutput first = compiler.compile(source);
  ASSERT_TRUE(first.ok) << first.log;
  EXPECT_FALSE(first.from_cache);
  EXPECT_TRUE(std::filesystem::exists(first.cubin_path));
  const CompileOutput second = compiler.compile(source);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.cubin, first.cubin);
  EXPECT_EQ(second.cubin_path, first.cubin_path);
  EXPECT_EQ(second.registers, first.registers);

  // Another architecture, another source, or another header: another cache entry.
  const Compiler sm89(templates, "sm_89", cache.path());
  EXPECT_FALSE(sm89.compile(source).from_cache);
  const CompileOutput other = compiler.compile(generate_source(space, space.make_config({{"fault", 1}})));
  EXPECT_FALSE(other.from_cache);
  EXPECT_NE(other.cubin_path, first.cubin_path);
  TemplateLibrary edited = templates;
  edited.add("fault_kernels.cuh", templates.headers().at("fault_kernels.cuh") + "\n// edited\n");
  EXPECT_FALSE(Compiler(edited, "sm_90a", cache.path()).compile(source).from_cache);
}

TEST(Compiler, ACompileErrorIsAResultWithTheLog) {
  TemplateLibrary templates;
  templates.add("broken.cuh",
                "#pragma once\nnamespace t { template <int A> __device__ void f(int) { undeclared(); } }\n");
  const Compiler compiler(templates, "sm_90a", "");
  GeneratedSource source{"broken.cu",
                         "#include \"broken.cuh\"\nextern \"C\" __global__ void fusetune_kernel() { t::f<1>(0); }\n"};
  const CompileOutput output = compiler.compile(source);
  EXPECT_FALSE(output.ok);
  EXPECT_FALSE(output.resources_exceeded);
  EXPECT_NE(output.log.find("undeclared"), std::string::npos) << output.log;
}

TEST(Compiler, AnUnwritableCacheDirectoryIsADataError) {
  EXPECT_THROW(Compiler(TemplateLibrary::embedded(), "sm_90a", "/proc/fusetune-cache"), fusetune::DataError);
}

}  // namespace
}  // namespace fusetune::testing
