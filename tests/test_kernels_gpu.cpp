// Correctness of the shipped kernels on the GPU: odd shapes (1, 7, 33, 1000, 8191 in each
// dimension), no bias, negative and zero scale, saturated sigmoid, NaN propagation; through
// the load-time API and through a spread of tuned variants, for every family and dtype (fp32
// FFMA, the bf16/fp16 SIMT fallbacks, wgmma bf16/fp16/TF32/3xTF32 with their weight
// preparation and tensor maps). Every check is against a float64 reference (cuBLAS DGEMM,
// plus sampled host float64) on poisoned outputs, within the policy's bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "compiler.h"
#include "config_resolver.h"
#include "cuda_resources.h"
#include "fusetune/fused_linear.h"
#include "kernel_launcher.h"
#include "source_generator.h"
#include "test_support.h"
#include "tuner.h"
#include "tuning_db.h"
#include "verifier.h"

namespace fusetune::testing {
namespace {

class KernelsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    FUSETUNE_SKIP_WITHOUT_GPU();
    stream_ = make_stream();
    cublas_ = make_cublas();
  }

  Stream stream_;
  CublasHandle cublas_;
  FusedLinearRuntime runtime_{RuntimeOptions{"/nonexistent/fusetune.db", ""}};  // fallbacks only
};

TEST_F(KernelsGpu, NanInputsPropagateToTheirRowOnly) {
  const ProblemShape shape{40, 50, 70};
  HostInputs inputs = make_random_inputs(shape, 14);
  inputs.x[size_t(3 * shape.k + 5)] = std::numeric_limits<float>::quiet_NaN();  // row 3 becomes NaN
  Verifier verifier(shape, inputs, stream_.get(), cublas_.get());
  verifier.poison_output();
  const FusedLinearArgs args = verifier.args();
  runtime_.run(shape, {args.x, args.w, args.bias, args.out, args.scale}, stream_.get());
  const Verdict verdict = verifier.check_output(Policy::kHighest);
  EXPECT_TRUE(verdict.passed) << verdict.message;  // NaN expected exactly where the reference has NaN
  std::vector<float> out(size_t(shape.m * shape.n));
  FUSETUNE_CUDA_CHECK(cudaMemcpy(out.data(), args.out, out.size() * sizeof(float), cudaMemcpyDeviceToHost));
  for (std::int64_t j = 0; j < shape.n; ++j) {
    EXPECT_TRUE(std::isnan(out[size_t(3 * shape.n + j)])) << j;
    EXPECT_TRUE(std::isfinite(out[size_t(4 * shape.n + j)])) << j;
  }
}

TEST_F(KernelsGpu, ASpreadOfTunedVariantsIsCorrectOnTails) {
  const SearchSpace space = load_search_space("ffma");
  const DeviceInfo device = query_device(0);
  const auto configs = space.valid_configs(device.limits);
  const Compiler compiler(TemplateLibrary::embedded(), device.arch, default_cache_dir());
  // Two shapes: one every config can implement (multiples of 4 in N and K, odd M), and
  // one with odd N and K that only the unconstrained configs take.
  for (const ProblemShape shape : {ProblemShape{257, 260, 132}, ProblemShape{131, 67, 45}}) {
    Verifier verifier(shape, make_random_inputs(shape, 99), stream_.get(), cublas_.get());
    int checked = 0;
    for (size_t i = 0; i < configs.size(); i += 7) {
      const KernelConfig& config = configs[i];
      if (space.check_shape(config, shape)) continue;
      const CompileOutput compiled = compiler.compile(generate_source(space, config));
      ASSERT_TRUE(compiled.ok) << config.name << compiled.log;
      LoadedKernel kernel = LoadedKernel::load(compiled.cubin);
      verifier.poison_output();
      ASSERT_EQ(kernel.launch(space.launch_geometry(config, shape, device.limits), verifier.args(), stream_.get()),
                cudaSuccess);
      const Verdict verdict = verifier.check_output(Policy::kHighest);
      EXPECT_TRUE(verdict.passed) << config.name << " on " << shape.dims() << ": " << verdict.message;
      ++checked;
    }
    EXPECT_GE(checked, 3) << shape.dims();
  }
}

// ---- every family and dtype ----

/// A (dtype, policy) pair with the families that serve it.
struct Problem {
  Dtype dtype;
  Policy policy;
};
constexpr Problem kProblems[] = {{Dtype::kBFloat16, Policy::kHalf},
                                 {Dtype::kFloat16, Policy::kHalf},
                                 {Dtype::kFloat32, Policy::kHigh},
                                 {Dtype::kFloat32, Policy::kHighest}};

ProblemShape with(const ProblemShape& dims, const Problem& problem) {
  return {dims.m, dims.n, dims.k, problem.dtype, problem.policy};
}

class FamiliesGpu : public KernelsGpu {
 protected:
  void SetUp() override {
    KernelsGpu::SetUp();
    if (IsSkipped()) return;
    device_ = query_device(0);
    compiler_ = std::make_unique<Compiler>(TemplateLibrary::embedded(), device_.arch, default_cache_dir());
  }

  /// Runs `config` of `space` on the verifier's inputs (preparing the weight first where the
  /// family needs it) and returns the verdict.
  Verdict run_config(const SearchSpace& space, const KernelConfig& config, Verifier& verifier,
                     const ProblemShape& shape) {
    const CompileOutput compiled = compiler_->compile(generate_source(space, config));
    EXPECT_TRUE(compiled.ok) << config.name << compiled.log.substr(0, 1500);
    if (!compiled.ok) return {};
    LoadedKernel kernel = LoadedKernel::load(compiled.cubin);
    const LaunchSpec spec = make_launch_spec(space, config, shape, device_.limits);
    if (spec.weight_prep != WeightPrep::kNone) {
      void* prepared = verifier.prepared_weight(prepared_weight_bytes(spec.weight_prep, shape));
      EXPECT_EQ(kernel.prepare_weight(spec.weight_prep, shape, verifier.weight(), prepared, stream_.get()),
                cudaSuccess);
    }
    TensorMapCache maps;
    const LaunchPlan plan = make_launch_plan(spec, shape, verifier.operands(spec.workspace_bytes), maps);
    verifier.poison_output();
    EXPECT_EQ(kernel.launch(plan, stream_.get()), cudaSuccess) << config.name;
    EXPECT_EQ(cudaStreamSynchronize(stream_.get()), cudaSuccess) << config.name;
    return verifier.check_output(shape.policy);
  }

  /// Runs every `parts`-th valid config of `family` (shifted by one per run, so that each shape
  /// gets different configs) on each of `dims` in the family's dtype and policy, expecting each
  /// to pass the verifier within the policy's bound. Returns how many ran.
  int check_spread(const std::string& family, const std::vector<ProblemShape>& dims, std::size_t parts, int seed) {
    const SearchSpace space = load_search_space(family);
    const Problem problem{space.dtypes().front(), space.policies().front()};
    const auto configs = space.valid_configs(device_.limits);
    EXPECT_FALSE(configs.empty()) << family;
    const std::size_t step = std::max<std::size_t>(1, configs.size() / parts);
    int checked = 0;
    for (const ProblemShape& d : dims) {
      const ProblemShape shape = with(d, problem);
      Verifier verifier(shape, make_random_inputs(shape, seed + checked), stream_.get(), cublas_.get());
      for (std::size_t i = checked % step; i < configs.size(); i += step) {
        if (space.check_shape(configs[i], shape)) continue;
        const Verdict verdict = run_config(space, configs[i], verifier, shape);
        EXPECT_TRUE(verdict.passed) << configs[i].name << " on " << shape.dims() << ": " << verdict.message;
        EXPECT_LE(verdict.error.relative_l2, relative_error_bound(shape.policy)) << configs[i].name;
        ++checked;
      }
    }
    return checked;
  }

  /// Runs `shape` through the public API (preparing the weight if the resolved config needs
  /// it) and checks it within the shape's policy.
  void expect_api_correct(const ProblemShape& shape, HostInputs inputs, const std::string& what) {
    Verifier verifier(shape, std::move(inputs), stream_.get(), cublas_.get());
    const LaunchOperands operands = verifier.operands();
    DeviceBuffer prepared;
    if (const std::size_t bytes = runtime_.prepared_weight_bytes(shape); bytes > 0) {
      prepared = DeviceBuffer(bytes);
      runtime_.prepare_weight(shape, operands.w, prepared.get(), stream_.get());
    }
    verifier.poison_output();
    runtime_.run(shape, {operands.x, operands.w, operands.bias, operands.out, operands.scale, prepared.get()},
                 stream_.get());
    const Verdict verdict = verifier.check_output(shape.policy);
    EXPECT_TRUE(verdict.passed) << what << " " << shape.dims() << " " << to_string(shape.dtype) << " via "
                                << runtime_.resolve(shape).config.name << ": " << verdict.message;
  }

  DeviceInfo device_;
  std::unique_ptr<Compiler> compiler_;
};

TEST_F(FamiliesGpu, EveryDtypeAndPolicyIsCorrectOnOddShapesThroughTheApi) {
  std::uint64_t seed = 100;
  for (const Problem& problem : kProblems) {
    for (const std::int64_t odd : {1, 7, 33, 1000, 8191}) {
      // K = 8 * odd: odd K-block counts on the paths that need 16-byte rows (TMA), up to 8000
      // (K = 65528 would take FFMA's own rounding past the highest bound).
      std::vector<ProblemShape> shapes = {{odd, 129, 256}, {100, odd, 256}, {100, 129, odd}};
      if (8 * odd <= 8192) shapes.push_back({100, 129, 8 * odd});
      for (const ProblemShape& dims : shapes) {
        const ProblemShape shape = with(dims, problem);
        expect_api_correct(shape, make_random_inputs(shape, ++seed), "odd");
      }
    }
    for (const ProblemShape dims : {ProblemShape{1, 1, 1}, ProblemShape{8191, 33, 1000}}) {
      const ProblemShape shape = with(dims, problem);
      expect_api_correct(shape, make_random_inputs(shape, ++seed), "single element or tall");
    }
  }
}

TEST_F(FamiliesGpu, EveryDtypeHandlesNoBiasScalesSaturationAndNan) {
  for (const Problem& problem : kProblems) {
    const ProblemShape shape = with({257, 300, 520}, problem);
    HostInputs no_bias = make_random_inputs(shape, 11);
    no_bias.b.clear();
    expect_api_correct(shape, no_bias, "no bias");
    for (const float scale : {-1.5f, 0.0f}) {
      HostInputs inputs = make_random_inputs(shape, 12);
      inputs.scale = scale;
      expect_api_correct(shape, inputs, "scale " + std::to_string(scale));
    }
    // Rows of W all positive or all negative: z = +-1500 or so without cancellation (a
    // cancelling sum would make even cuBLAS miss the float64 reference by more than 1e-4), so
    // sigmoid is exactly 0 or 1: out = z for negative rows, z + scale for positive ones.
    const ProblemShape big = with({64, 96, 1000}, problem);
    HostInputs saturated = make_random_inputs(big, 13);
    for (std::int64_t j = 0; j < big.n; ++j)
      for (std::int64_t kk = 0; kk < big.k; ++kk) {
        float& w = saturated.w[size_t(j * big.k + kk)];
        w = (j % 2 ? 200.0f : -200.0f) * std::fabs(w);
      }
    expect_api_correct(big, saturated, "saturated");
    HostInputs nan = make_random_inputs(shape, 14);
    nan.x[size_t(3 * shape.k + 5)] = std::numeric_limits<float>::quiet_NaN();  // row 3 becomes NaN
    expect_api_correct(shape, nan, "NaN");
  }
}

TEST_F(FamiliesGpu, MisalignedTensorsTakeTheFallback) {
  for (const Problem& problem : kProblems) {
    const ProblemShape shape = with({65, 72, 136}, problem);
    Verifier verifier(shape, make_random_inputs(shape, 21), stream_.get(), cublas_.get());
    const LaunchOperands operands = verifier.operands();
    // x one element past a 256-byte boundary: no 16-byte vector or TMA access may touch it.
    const std::size_t elem = element_bytes(shape.dtype), x_bytes = std::size_t(shape.m * shape.k) * elem;
    DeviceBuffer shifted(x_bytes + elem);
    void* x = static_cast<char*>(shifted.get()) + elem;
    ASSERT_EQ(cudaMemcpy(x, operands.x, x_bytes, cudaMemcpyDeviceToDevice), cudaSuccess);
    verifier.poison_output();
    runtime_.run(shape, {x, operands.w, operands.bias, operands.out, operands.scale, nullptr}, stream_.get());
    const Verdict verdict = verifier.check_output(shape.policy);
    EXPECT_TRUE(verdict.passed) << to_string(shape.dtype) << ": " << verdict.message;
  }
}

TEST_F(FamiliesGpu, ASpreadOfEveryFamilysVariantsIsCorrectOnTails) {
  // Small m as well: the skinny families only take m <= their rows knob. The last shape's k
  // is odd: only element-wide loads (vec 1) take it.
  const std::vector<ProblemShape> dims = {{1, 129, 256},   {2, 300, 1000},   {4, 77, 512},   {5, 1000, 64},
                                          {7, 33, 8},      {33, 1000, 1000}, {1000, 7, 520}, {8191, 33, 64},
                                          {65, 8191, 136}, {3, 65, 1001}};
  for (const std::string& family : embedded_families()) {
    if (family == "ffma") continue;  // ASpreadOfTunedVariantsIsCorrectOnTails
    EXPECT_GE(check_spread(family, dims, 6, 31), 12) << family;
  }
}

// The wgmma epilogue stores interior slices 16 bytes at a time when out's rows start on
// 16-byte boundaries, else a column pair at a time (store_interior): n = 264 takes the wide
// stores in every output type, n = 266 (2 mod 8) the narrow ones. m = 130 gives every tile
// height whole interior 64-row slices besides an edge slice.
TEST_F(FamiliesGpu, WgmmaEpiloguesAreCorrectWithWideAndNarrowInteriorStores) {
  for (const std::string family : {"wgmma_bf16", "wgmma_fp16", "wgmma_tf32", "wgmma_3xtf32"})
    EXPECT_GE(check_spread(family, {{130, 264, 256}, {130, 266, 256}}, 5, 53), 8) << family;
}

// trim 8 (TileColumns in wgmma_gemm.cuh): one tile column more than 256-wide tiles need, 248
// wide but for the last ones, whose second consumer issues m64n120 wgmma and stores its 120
// columns in two overlapping TMA boxes, or from registers when out's rows are no 16-byte
// multiples. The shapes give: 33 columns with a last wide one cut off at n (8190), exactly one
// wide column (8192), narrow columns only with a ragged last one (520, 1000), register stores
// (8191, odd), and row tails. Every trim config of both 16-bit families runs on some shape.
TEST_F(FamiliesGpu, TrimmedTileColumnsAreCorrectOnTails) {
  const std::vector<ProblemShape> dims = {
      {130, 8190, 256}, {257, 8192, 64}, {64, 520, 136}, {1000, 1000, 264}, {65, 8191, 136}};
  for (const std::string family : {"wgmma_bf16", "wgmma_fp16"}) {
    const SearchSpace space = load_search_space(family);
    const Problem problem{space.dtypes().front(), space.policies().front()};
    std::vector<KernelConfig> trimmed;
    for (const KernelConfig& config : space.valid_configs(device_.limits))
      if (config.knob("trim") > 0) trimmed.push_back(config);
    ASSERT_GE(trimmed.size(), 8u) << family;
    std::size_t next = 0;
    for (const ProblemShape& d : dims) {
      const ProblemShape shape = with(d, problem);
      Verifier verifier(shape, make_random_inputs(shape, 90 + int(next)), stream_.get(), cublas_.get());
      // A different share of the configs on each shape, all of them across the shapes.
      const std::size_t share = (trimmed.size() + dims.size() - 1) / dims.size();
      for (std::size_t i = 0; i < share && next < trimmed.size(); ++i, ++next) {
        const Verdict verdict = run_config(space, trimmed[next], verifier, shape);
        EXPECT_TRUE(verdict.passed) << trimmed[next].name << " on " << shape.dims() << ": " << verdict.message;
        EXPECT_LE(verdict.error.relative_l2, relative_error_bound(shape.policy)) << trimmed[next].name;
      }
    }
    EXPECT_EQ(next, trimmed.size()) << family;
  }
}

// Stream-K (persistent 2): the wgmma families' configs that split tiles' k-blocks between
// blocks, on shapes with fewer tiles than SMs and long k (the case it exists for), with more
// teams than k-blocks (empty ranges), with idle team members (fewer tile-rows than the team)
// and with tails. Each config runs twice on the same workspace, which configs of other grids
// used before, so the flags of one launch never leak into the next.
TEST_F(FamiliesGpu, StreamKConfigsAreCorrectOnTailsAndRepeatedLaunches) {
  const std::vector<ProblemShape> dims = {
      {5, 300, 4096}, {100, 1000, 2048}, {33, 1000, 64}, {1000, 7, 520}, {65, 8191, 136}};
  for (const std::string family : {"wgmma_bf16", "wgmma_fp16", "wgmma_tf32", "wgmma_3xtf32"}) {
    const SearchSpace space = load_search_space(family);
    const Problem problem{space.dtypes().front(), space.policies().front()};
    std::vector<KernelConfig> stream_k;
    for (const KernelConfig& config : space.valid_configs(device_.limits))
      if (config.knob("persistent") == 2) stream_k.push_back(config);
    ASSERT_GE(stream_k.size(), 8u) << family;
    int checked = 0;
    for (const ProblemShape& d : dims) {
      const ProblemShape shape = with(d, problem);
      Verifier verifier(shape, make_random_inputs(shape, 70 + checked), stream_.get(), cublas_.get());
      // Four configs a shape, a different four each time, group 1 and 8 alike.
      for (std::size_t i = checked % 5; i < stream_k.size(); i += stream_k.size() / 4) {
        if (space.check_shape(stream_k[i], shape)) continue;
        for (int launch = 0; launch < 2; ++launch) {
          const Verdict verdict = run_config(space, stream_k[i], verifier, shape);
          EXPECT_TRUE(verdict.passed) << stream_k[i].name << " on " << shape.dims() << ", launch " << launch << ": "
                                      << verdict.message;
          EXPECT_LE(verdict.error.relative_l2, relative_error_bound(shape.policy)) << stream_k[i].name;
        }
        ++checked;
      }
    }
    EXPECT_GE(checked, 12) << family;
  }
}

// The load-time API with a stream-K config: the runtime gives each stream its own workspace,
// also when the first call on a stream is being captured into a CUDA graph, and the graph's
// replays (which zero the flags again) are correct.
TEST_F(FamiliesGpu, TheRuntimeRunsAStreamKConfigOnStreamsAndInGraphs) {
  const ProblemShape shape{64, 256, 4096, Dtype::kBFloat16, Policy::kHalf};
  const SearchSpace space = load_search_space("wgmma_bf16");
  std::optional<KernelConfig> chosen;
  for (const KernelConfig& config : space.valid_configs(device_.limits))
    if (config.knob("persistent") == 2 && config.knob("group") == 1 && config.knob("tile_m") == 64 &&
        config.knob("tile_n") == 128 && !space.check_shape(config, shape)) {
      chosen = config;
      break;
    }
  ASSERT_TRUE(chosen);
  // A database whose best for this shape on this GPU is that config.
  const std::string db_path = (std::filesystem::temp_directory_path() / "fusetune_stream_k_gpu.db").string();
  std::filesystem::remove(db_path);
  {
    TuningDb db = TuningDb::open(db_path);
    const auto device = db.upsert_device(device_.fingerprint);
    const auto run = db.begin_run(device, {"test", "test", "hash"});
    TrialResult trial;
    trial.shape = shape;
    trial.config = *chosen;
    trial.template_hash = TemplateLibrary::embedded().include_closure_hash(space.template_file());
    trial.status = TrialStatus::kOk;
    trial.timing = TimingStats{0.05, 0.05, 0.05, 10};
    trial.error = ErrorStats{1.6e-3, 1e-2, 0, 0};
    db.record_trial(run, device, trial);
    db.update_best(device, shape);
  }
  FusedLinearRuntime runtime{RuntimeOptions{db_path, ""}};
  ASSERT_EQ(runtime.resolve(shape).config.name, chosen->name);
  Verifier verifier(shape, make_random_inputs(shape, 81), stream_.get(), cublas_.get());
  const LaunchOperands operands = verifier.operands();
  const FusedLinearTensors tensors{operands.x, operands.w, operands.bias, operands.out, operands.scale};
  auto expect_correct = [&](const std::string& what) {
    const Verdict verdict = verifier.check_output(shape.policy);
    EXPECT_TRUE(verdict.passed) << what << ": " << verdict.message;
  };
  for (int call = 0; call < 2; ++call) {
    verifier.poison_output();
    runtime.run(shape, tensors, stream_.get());
    expect_correct("call " + std::to_string(call) + " on the verifier's stream");
  }
  // A fresh stream, first used while capturing: its workspace is allocated during capture.
  Stream capture_stream = make_stream();
  ASSERT_EQ(cudaStreamBeginCapture(capture_stream.get(), cudaStreamCaptureModeGlobal), cudaSuccess);
  runtime.run(shape, tensors, capture_stream.get());
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(capture_stream.get(), &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int replay = 0; replay < 3; ++replay) {
    verifier.poison_output();
    ASSERT_EQ(cudaStreamSynchronize(stream_.get()), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, capture_stream.get()), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(capture_stream.get()), cudaSuccess);
    expect_correct("graph replay " + std::to_string(replay));
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  std::filesystem::remove(db_path);
}

}  // namespace
}  // namespace fusetune::testing
