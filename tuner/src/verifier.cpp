// Reference computation and output checks (see verifier.h).
#include "verifier.h"

#include <cmath>
#include <random>
#include <sstream>

#include "reference_kernels.h"

namespace fusetune {

namespace {

/// splitmix64: fast and well-distributed; generating 67M weights with mt19937 would add
/// seconds to every worker start on the headline shape.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1) with 24 random bits, like torch.rand for float32.
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
};

void upload(DeviceBuffer& buffer, const std::vector<float>& host, cudaStream_t stream) {
  buffer = DeviceBuffer(host.size() * sizeof(float));
  FUSETUNE_CUDA_CHECK(
      cudaMemcpyAsync(buffer.get(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
}

constexpr int kHostSamples = 1024;

ErrorStats compare(const float* out, const double* ref, size_t count, double tolerance, cudaStream_t stream) {
  const ComparisonTotals totals = compare_to_reference(out, ref, count, tolerance, tolerance, stream);
  return {totals.relative_l2, totals.max_abs, totals.allclose_violations, totals.non_finite};
}

}  // namespace

HostInputs make_random_inputs(const ProblemShape& shape, std::uint64_t seed) {
  HostInputs inputs;
  SplitMix64 random{seed};
  const float bound = 1.0f / std::sqrt(static_cast<float>(shape.k));
  inputs.x.resize(static_cast<size_t>(shape.m * shape.k));
  for (auto& value : inputs.x) value = random.uniform();
  inputs.w.resize(static_cast<size_t>(shape.n * shape.k));
  for (auto& value : inputs.w) value = (2.0f * random.uniform() - 1.0f) * bound;
  inputs.b.resize(static_cast<size_t>(shape.n));
  for (auto& value : inputs.b) value = (2.0f * random.uniform() - 1.0f) * bound;
  return inputs;
}

double host_reference(const HostInputs& inputs, const ProblemShape& shape, std::int64_t i, std::int64_t j) {
  double z = inputs.b.empty() ? 0.0 : double(inputs.b[j]);
  const float* x = inputs.x.data() + i * shape.k;
  const float* w = inputs.w.data() + j * shape.k;
  for (std::int64_t kk = 0; kk < shape.k; ++kk) z += double(x[kk]) * double(w[kk]);
  return z + double(inputs.scale) * (1.0 / (1.0 + std::exp(-z)));
}

Verifier::Verifier(const ProblemShape& shape, HostInputs inputs, cudaStream_t stream, cublasHandle_t cublas)
    : shape_(shape), inputs_(std::move(inputs)), stream_(stream), cublas_(cublas) {
  const auto m = shape.m, n = shape.n, k = shape.k;
  upload(x_, inputs_.x, stream);
  upload(w_, inputs_.w, stream);
  if (!inputs_.b.empty()) upload(b_, inputs_.b, stream);
  out_ = DeviceBuffer(size_t(m * n) * sizeof(float));
  baseline_out_ = DeviceBuffer(size_t(m * n) * sizeof(float));
  reference_ = DeviceBuffer(size_t(m * n) * sizeof(double));
  baseline_reference_ = DeviceBuffer(size_t(m * n) * sizeof(double));

  // float64 reference: z^T (n x m, column-major) = W (k x n col-major, transposed) * x^T
  // (k x m col-major), i.e. row-major z = x W^T, then the epilogue in float64.
  {
    DeviceBuffer x64(size_t(m * k) * sizeof(double)), w64(size_t(n * k) * sizeof(double));
    launch_widen(x_.as<float>(), x64.as<double>(), size_t(m * k), stream);
    launch_widen(w_.as<float>(), w64.as<double>(), size_t(n * k), stream);
    FUSETUNE_CUBLAS_CHECK(cublasSetStream(cublas_, stream));
    const double one = 1.0, zero = 0.0;
    FUSETUNE_CUBLAS_CHECK(cublasDgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(k), &one, w64.as<double>(),
                                      int(k), x64.as<double>(), int(k), &zero, reference_.as<double>(), int(n)));
    launch_epilogue_f64(reference_.as<double>(), b_.as<float>(), inputs_.scale, m, n, stream);
    FUSETUNE_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  // Host float64 check points: random elements plus the four corners (tails live there).
  std::mt19937_64 random(inputs_.x.empty() ? 1 : std::uint64_t(inputs_.x[0] * 1e9) + 17);
  samples_ = {{0, 0}, {0, n - 1}, {m - 1, 0}, {m - 1, n - 1}};
  for (int s = 0; s < kHostSamples; ++s)
    samples_.emplace_back(std::int64_t(random() % std::uint64_t(m)), std::int64_t(random() % std::uint64_t(n)));
  for (const auto& [i, j] : samples_) sample_values_.push_back(host_reference(inputs_, shape_, i, j));

  // The GPU reference must itself agree with the host at the sample points.
  std::vector<double> device_values(samples_.size());
  for (size_t s = 0; s < samples_.size(); ++s)
    FUSETUNE_CUDA_CHECK(cudaMemcpy(&device_values[s],
                                   reference_.as<double>() + samples_[s].first * n + samples_[s].second, sizeof(double),
                                   cudaMemcpyDeviceToHost));
  for (size_t s = 0; s < samples_.size(); ++s)
    if (std::fabs(device_values[s] - sample_values_[s]) > 1e-9 * (1 + std::fabs(sample_values_[s])))
      throw CudaError("float64 reference disagrees with the host at (" + std::to_string(samples_[s].first) + ", " +
                      std::to_string(samples_[s].second) + "): the GPU or cuBLAS DGEMM is not trustworthy");

  // The baseline's output is the second reference every candidate is compared with.
  FUSETUNE_CUDA_CHECK(launch_baseline(stream));
  FUSETUNE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

FusedLinearArgs Verifier::args() const {
  FusedLinearArgs args{};
  args.x = x_.get();
  args.w = w_.get();
  args.bias = inputs_.b.empty() ? nullptr : b_.get();
  args.out = out_.get();
  args.m = int(shape_.m);
  args.n = int(shape_.n);
  args.k = int(shape_.k);
  args.scale = inputs_.scale;
  return args;
}

void Verifier::poison_output() {
  // All-ones bytes are a NaN in float: any element the kernel does not write stays NaN.
  FUSETUNE_CUDA_CHECK(cudaMemsetAsync(out_.get(), 0xff, out_.bytes(), stream_));
}

cudaError_t Verifier::launch_baseline(cudaStream_t stream) {
  const float one = 1.0f, zero = 0.0f;
  cublasSetStream(cublas_, stream);
  const cublasStatus_t status =
      cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(shape_.n), int(shape_.m), int(shape_.k), &one, w_.as<float>(),
                  int(shape_.k), x_.as<float>(), int(shape_.k), &zero, baseline_out_.as<float>(), int(shape_.n));
  if (status != CUBLAS_STATUS_SUCCESS) return cudaErrorUnknown;
  launch_epilogue_f32(baseline_out_.as<float>(), inputs_.b.empty() ? nullptr : b_.as<float>(), inputs_.scale, shape_.m,
                      shape_.n, stream);
  return cudaGetLastError();
}

ErrorStats Verifier::baseline_error() {
  const double tolerance = elementwise_tolerance(shape_.policy);
  return compare(baseline_out_.as<float>(), reference_.as<double>(), size_t(shape_.m * shape_.n), tolerance, stream_);
}

Verdict Verifier::check_output(Policy policy) {
  Verdict verdict;
  const double tolerance = elementwise_tolerance(policy);
  const size_t count = size_t(shape_.m * shape_.n);
  verdict.error = compare(out_.as<float>(), reference_.as<double>(), count, tolerance, stream_);

  // Against cuBLAS SGEMM + epilogue, as the second, independent reference.
  launch_widen(baseline_out_.as<float>(), baseline_reference_.as<double>(), count, stream_);
  const ErrorStats versus_cublas =
      compare(out_.as<float>(), baseline_reference_.as<double>(), count, tolerance, stream_);

  std::vector<float> host_out(count);
  FUSETUNE_CUDA_CHECK(cudaMemcpy(host_out.data(), out_.get(), count * sizeof(float), cudaMemcpyDeviceToHost));
  long long host_failures = 0;
  std::ostringstream first_failure;
  for (size_t s = 0; s < samples_.size(); ++s) {
    const double actual = host_out[size_t(samples_[s].first * shape_.n + samples_[s].second)];
    const double expected = sample_values_[s];
    const bool matches = std::isnan(expected) ? std::isnan(actual)
                         : std::isinf(expected)
                             ? actual == expected
                             : std::fabs(actual - expected) <= tolerance + tolerance * std::fabs(expected);
    if (!matches) {
      if (host_failures++ == 0)
        first_failure << " first at (" << samples_[s].first << ", " << samples_[s].second << "): " << actual << " vs "
                      << expected;
    }
  }

  std::ostringstream why;
  const double bound = relative_error_bound(policy);
  if (verdict.error.non_finite > 0) why << verdict.error.non_finite << " elements NaN/inf or unwritten; ";
  if (verdict.error.allclose_violations > 0)
    why << verdict.error.allclose_violations << " elements outside allclose(" << tolerance << ") vs float64; ";
  if (verdict.error.relative_l2 > bound)
    why << "relative error " << verdict.error.relative_l2 << " above the policy bound " << bound << "; ";
  if (versus_cublas.allclose_violations > 0 || versus_cublas.non_finite > 0)
    why << versus_cublas.allclose_violations + versus_cublas.non_finite << " elements differ from cuBLAS SGEMM; ";
  if (host_failures > 0)
    why << host_failures << " of " << samples_.size() << " host float64 samples differ;" << first_failure.str();
  verdict.message = why.str();
  verdict.passed = verdict.message.empty();
  return verdict;
}

}  // namespace fusetune
