// Correctness of the shipped kernels on the GPU: odd shapes (1, 7, 33, 1000, 8191 in each
// dimension), no bias, negative and zero scale, saturated sigmoid, NaN propagation; through
// the load-time API and through a spread of tuned variants, for every family and dtype (fp32
// FFMA, the bf16/fp16 SIMT fallbacks, wgmma bf16/fp16/TF32/3xTF32 with their weight
// preparation and tensor maps). Every check is against a float64 reference (cuBLAS DGEMM,
// plus sampled host float64) on poisoned outputs, within the policy's bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "compiler.h"
#include "config_resolver.h"
#include "cuda_resources.h"
#include "fusetune/fused_linear.h"
#include "kernel_launcher.h"
#include "test_support.h"
#include "tuner.h"
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
    const LaunchPlan plan = make_launch_plan(spec, shape, verifier.operands(), maps);
    verifier.poison_output();
    EXPECT_EQ(kernel.launch(plan, stream_.get()), cudaSuccess) << config.name;
    EXPECT_EQ(cudaStreamSynchronize(stream_.get()), cudaSuccess) << config.name;
    return verifier.check_output(shape.policy);
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
    const SearchSpace space = load_search_space(family);
    const Problem problem{space.dtypes().front(), space.policies().front()};
    const auto configs = space.valid_configs(device_.limits);
    ASSERT_FALSE(configs.empty()) << family;
    const std::size_t step = std::max<std::size_t>(1, configs.size() / 6);
    int checked = 0;
    for (const ProblemShape& d : dims) {
      const ProblemShape shape = with(d, problem);
      Verifier verifier(shape, make_random_inputs(shape, 31 + checked), stream_.get(), cublas_.get());
      for (std::size_t i = (checked % step); i < configs.size(); i += step) {
        if (space.check_shape(configs[i], shape)) continue;
        const Verdict verdict = run_config(space, configs[i], verifier, shape);
        EXPECT_TRUE(verdict.passed) << configs[i].name << " on " << shape.dims() << ": " << verdict.message;
        EXPECT_LE(verdict.error.relative_l2, relative_error_bound(shape.policy)) << configs[i].name;
        ++checked;
      }
    }
    EXPECT_GE(checked, 12) << family;
  }
}

}  // namespace
}  // namespace fusetune::testing
