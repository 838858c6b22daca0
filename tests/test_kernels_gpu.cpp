// Correctness of the shipped kernels on the GPU: odd shapes (1, 7, 33, 1000, 8191 in each
// dimension), no bias, negative and zero scale, saturated sigmoid, NaN propagation; through
// the load-time API and through a spread of tuned variants. Every check is against a
// float64 reference (cuBLAS DGEMM, plus sampled host float64) on poisoned outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "compiler.h"
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

  /// Runs `shape` through the public API on fresh inputs and checks it.
  void expect_runtime_correct(const ProblemShape& shape, HostInputs inputs, const std::string& what) {
    Verifier verifier(shape, std::move(inputs), stream_.get(), cublas_.get());
    verifier.poison_output();
    const FusedLinearArgs args = verifier.args();
    runtime_.run(shape, {args.x, args.w, args.bias, args.out, args.scale}, stream_.get());
    const Verdict verdict = verifier.check_output(Policy::kHighest);
    EXPECT_TRUE(verdict.passed) << what << " " << shape.dims() << " via " << runtime_.resolve(shape).config.name << ": "
                                << verdict.message;
    EXPECT_LE(verdict.error.relative_l2, relative_error_bound(Policy::kHighest)) << what << " " << shape.dims();
  }

  Stream stream_;
  CublasHandle cublas_;
  FusedLinearRuntime runtime_{RuntimeOptions{"/nonexistent/fusetune.db", ""}};  // fallbacks only
};

TEST_F(KernelsGpu, OddShapesInEveryDimension) {
  std::uint64_t seed = 1;
  for (const std::int64_t odd : {1, 7, 33, 1000, 8191}) {
    expect_runtime_correct({odd, 129, 257}, make_random_inputs({odd, 129, 257}, ++seed), "odd M");
    expect_runtime_correct({100, odd, 257}, make_random_inputs({100, odd, 257}, ++seed), "odd N");
    expect_runtime_correct({100, 129, odd}, make_random_inputs({100, 129, odd}, ++seed), "odd K");
  }
  expect_runtime_correct({1, 1, 1}, make_random_inputs({1, 1, 1}, ++seed), "single element");
  expect_runtime_correct({8191, 33, 1000}, make_random_inputs({8191, 33, 1000}, ++seed), "tall");
}

TEST_F(KernelsGpu, NoBiasAndNegativeOrZeroScale) {
  const ProblemShape shape{257, 300, 515};
  HostInputs no_bias = make_random_inputs(shape, 11);
  no_bias.b.clear();
  expect_runtime_correct(shape, no_bias, "no bias");
  for (const float scale : {-1.5f, 0.0f}) {
    HostInputs inputs = make_random_inputs(shape, 12);
    inputs.scale = scale;
    expect_runtime_correct(shape, inputs, "scale " + std::to_string(scale));
  }
}

TEST_F(KernelsGpu, LargeMagnitudesSaturateSigmoidWithoutInfOrNan) {
  // Rows of W all positive or all negative: z = +-1500 or so without cancellation (a
  // cancelling sum would make even cuBLAS miss the float64 reference by more than 1e-4).
  const ProblemShape shape{64, 96, 1000};
  HostInputs inputs = make_random_inputs(shape, 13);
  for (std::int64_t j = 0; j < shape.n; ++j)
    for (std::int64_t kk = 0; kk < shape.k; ++kk) {
      float& w = inputs.w[size_t(j * shape.k + kk)];
      w = (j % 2 ? 200.0f : -200.0f) * std::fabs(w);
    }
  expect_runtime_correct(shape, inputs, "saturated");
  // The verifier saw no NaN/inf and every element within 1e-4 of float64, where sigmoid is
  // exactly 0 or 1: out = z for negative rows, out = z + scale for positive ones.
}

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
      ASSERT_EQ(kernel.launch(space.launch_geometry(config, shape), verifier.args(), stream_.get()), cudaSuccess);
      const Verdict verdict = verifier.check_output(Policy::kHighest);
      EXPECT_TRUE(verdict.passed) << config.name << " on " << shape.dims() << ": " << verdict.message;
      ++checked;
    }
    EXPECT_GE(checked, 3) << shape.dims();
  }
}

}  // namespace
}  // namespace fusetune::testing
