// Reference computation and output checks (see verifier.h).
#include "verifier.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "reference_kernels.h"
#include "tensor_maps.h"

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

void upload(DeviceBuffer& buffer, const std::vector<unsigned char>& host, cudaStream_t stream) {
  buffer = DeviceBuffer(host.size());
  FUSETUNE_CUDA_CHECK(cudaMemcpyAsync(buffer.get(), host.data(), host.size(), cudaMemcpyHostToDevice, stream));
}

constexpr int kHostSamples = 1024;

ElementKind element_kind(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32:
      return kElementF32;
    case Dtype::kBFloat16:
      return kElementBF16;
    case Dtype::kFloat16:
      return kElementF16;
  }
  return kElementF32;
}

cudaDataType cuda_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32:
      return CUDA_R_32F;
    case Dtype::kBFloat16:
      return CUDA_R_16BF;
    case Dtype::kFloat16:
      return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

ErrorStats compare(const void* out, ElementKind kind, const double* ref, size_t count, double tolerance,
                   cudaStream_t stream) {
  const ComparisonTotals totals = compare_to_reference(out, kind, ref, count, tolerance, tolerance, stream);
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

std::vector<std::string> baseline_names(const ProblemShape& shape) {
  switch (shape.policy) {
    case Policy::kHighest:
      return {kBaselineName};
    case Policy::kHigh:
      return {"cublas_tf32", "cublas_tf32+epilogue"};
    case Policy::kHalf: {
      const std::string gemm = "cublas_" + std::string(to_string(shape.dtype));
      return {gemm, gemm + "+epilogue"};
    }
  }
  return {kBaselineName};
}

std::string target_baseline_name(const ProblemShape& shape) { return baseline_names(shape).front(); }

void round_to_dtype(std::vector<float>& values, Dtype dtype) {
  if (dtype == Dtype::kFloat32) return;
  for (float& value : values)
    value =
        dtype == Dtype::kBFloat16 ? __bfloat162float(__float2bfloat16_rn(value)) : __half2float(__float2half_rn(value));
}

std::vector<unsigned char> encode_elements(const std::vector<float>& values, Dtype dtype) {
  std::vector<unsigned char> bytes(values.size() * element_bytes(dtype));
  if (dtype == Dtype::kFloat32) {
    std::memcpy(bytes.data(), values.data(), bytes.size());
  } else if (dtype == Dtype::kBFloat16) {
    for (size_t i = 0; i < values.size(); ++i) {
      const __nv_bfloat16 element = __float2bfloat16_rn(values[i]);
      std::memcpy(bytes.data() + 2 * i, &element, 2);
    }
  } else {
    for (size_t i = 0; i < values.size(); ++i) {
      const __half element = __float2half_rn(values[i]);
      std::memcpy(bytes.data() + 2 * i, &element, 2);
    }
  }
  return bytes;
}

std::vector<float> decode_elements(const void* bytes, std::size_t count, Dtype dtype) {
  std::vector<float> values(count);
  const auto* data = static_cast<const unsigned char*>(bytes);
  if (dtype == Dtype::kFloat32) {
    std::memcpy(values.data(), data, count * sizeof(float));
  } else if (dtype == Dtype::kBFloat16) {
    for (size_t i = 0; i < count; ++i) {
      __nv_bfloat16 element;
      std::memcpy(&element, data + 2 * i, 2);
      values[i] = __bfloat162float(element);
    }
  } else {
    for (size_t i = 0; i < count; ++i) {
      __half element;
      std::memcpy(&element, data + 2 * i, 2);
      values[i] = __half2float(element);
    }
  }
  return values;
}

double host_reference(const HostInputs& inputs, const ProblemShape& shape, std::int64_t i, std::int64_t j) {
  double z = inputs.b.empty() ? 0.0 : double(inputs.b[j]);
  const float* x = inputs.x.data() + i * shape.k;
  const float* w = inputs.w.data() + j * shape.k;
  for (std::int64_t kk = 0; kk < shape.k; ++kk) z += double(x[kk]) * double(w[kk]);
  return z + double(inputs.scale) * (1.0 / (1.0 + std::exp(-z)));
}

Verifier::Verifier(const ProblemShape& shape, HostInputs inputs, cudaStream_t stream, cublasHandle_t cublas)
    : shape_(shape),
      inputs_(std::move(inputs)),
      stream_(stream),
      cublas_(cublas),
      baseline_names_(baseline_names(shape)) {
  const auto m = shape.m, n = shape.n, k = shape.k;
  const size_t elem = element_bytes(shape.dtype);
  round_to_dtype(inputs_.x, shape.dtype);
  round_to_dtype(inputs_.w, shape.dtype);
  round_to_dtype(inputs_.b, shape.dtype);
  upload(x_, encode_elements(inputs_.x, shape.dtype), stream);
  upload(w_, encode_elements(inputs_.w, shape.dtype), stream);
  if (!inputs_.b.empty()) upload(b_, encode_elements(inputs_.b, shape.dtype), stream);
  if (shape.dtype != Dtype::kFloat32) {
    // The rounded values in fp32 (exact): what the float64 reference is computed from.
    upload(x32_, encode_elements(inputs_.x, Dtype::kFloat32), stream);
    upload(w32_, encode_elements(inputs_.w, Dtype::kFloat32), stream);
    if (!inputs_.b.empty()) upload(b32_, encode_elements(inputs_.b, Dtype::kFloat32), stream);
  }
  const float* x32 = shape.dtype == Dtype::kFloat32 ? x_.as<float>() : x32_.as<float>();
  const float* w32 = shape.dtype == Dtype::kFloat32 ? w_.as<float>() : w32_.as<float>();
  const float* b32 = inputs_.b.empty() ? nullptr : shape.dtype == Dtype::kFloat32 ? b_.as<float>() : b32_.as<float>();
  out_ = DeviceBuffer(size_t(m * n) * elem);
  baseline_out_ = DeviceBuffer(size_t(m * n) * elem);
  if (baseline_names_.size() > 1) gemm_out_ = DeviceBuffer(size_t(m * n) * elem);
  reference_ = DeviceBuffer(size_t(m * n) * sizeof(double));
  baseline_reference_ = DeviceBuffer(size_t(m * n) * sizeof(double));

  // float64 reference: z^T (n x m, column-major) = W (k x n col-major, transposed) * x^T
  // (k x m col-major), i.e. row-major z = x W^T, then the epilogue in float64.
  {
    DeviceBuffer x64(size_t(m * k) * sizeof(double)), w64(size_t(n * k) * sizeof(double));
    launch_widen(x32, x64.as<double>(), size_t(m * k), stream);
    launch_widen(w32, w64.as<double>(), size_t(n * k), stream);
    FUSETUNE_CUBLAS_CHECK(cublasSetStream(cublas_, stream));
    const double one = 1.0, zero = 0.0;
    FUSETUNE_CUBLAS_CHECK(cublasDgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(k), &one, w64.as<double>(),
                                      int(k), x64.as<double>(), int(k), &zero, reference_.as<double>(), int(n)));
    launch_epilogue_f64(reference_.as<double>(), b32, inputs_.scale, m, n, stream);
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
  for (size_t s = 0; s < samples_.size(); ++s) {
    const double expected = sample_values_[s], actual = device_values[s];
    const bool same =
        std::isnan(expected) ? std::isnan(actual) : std::fabs(actual - expected) <= 1e-9 * (1 + std::fabs(expected));
    if (!same)
      throw CudaError("float64 reference disagrees with the host at (" + std::to_string(samples_[s].first) + ", " +
                      std::to_string(samples_[s].second) + "): the GPU or cuBLAS DGEMM is not trustworthy");
  }

  // The +epilogue baseline's output is the second reference every candidate is compared with.
  FUSETUNE_CUDA_CHECK(launch_baseline(stream));
  FUSETUNE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

ElementKind Verifier::kind() const { return element_kind(shape_.dtype); }

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

LaunchOperands Verifier::operands(std::size_t workspace_bytes) {
  if (workspace_.bytes() < workspace_bytes) workspace_ = DeviceBuffer(workspace_bytes);
  LaunchOperands operands;
  operands.workspace = workspace_.get();
  operands.workspace_bytes = workspace_.bytes();
  operands.x = x_.get();
  operands.w = w_.get();
  operands.prepared_w = prepared_.get();
  operands.bias = inputs_.b.empty() ? nullptr : b_.get();
  operands.out = out_.get();
  operands.scale = inputs_.scale;
  return operands;
}

void* Verifier::prepared_weight(std::size_t bytes) {
  if (prepared_.bytes() < bytes) prepared_ = DeviceBuffer(bytes);
  return prepared_.get();
}

void Verifier::poison_output() {
  // All-ones bytes are a NaN in fp32, bf16 and fp16: any element the kernel does not write stays NaN.
  FUSETUNE_CUDA_CHECK(cudaMemsetAsync(out_.get(), 0xff, out_.bytes(), stream_));
}

cudaError_t Verifier::launch_baseline(std::size_t index, cudaStream_t stream) {
  const std::string& name = baseline_names_.at(index);
  const bool with_epilogue = name.ends_with("+epilogue");
  void* z = with_epilogue ? baseline_out_.get() : gemm_out_.get();
  const int m = int(shape_.m), n = int(shape_.n), k = int(shape_.k);
  if (cublasSetStream(cublas_, stream) != CUBLAS_STATUS_SUCCESS) return cudaErrorUnknown;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  if (shape_.policy == Policy::kHighest) {
    // SGEMM with the handle's default math mode: FFMA, no TF32 (PyTorch's "highest").
    const float one = 1.0f, zero = 0.0f;
    status = cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w_.as<float>(), k, x_.as<float>(), k, &zero,
                         static_cast<float*>(z), n);
  } else {
    // z^T = W x^T as above, inputs and output in the dtype, fp32 accumulation; TF32 tensor
    // cores for fp32 inputs under policy high.
    const float one = 1.0f, zero = 0.0f;
    const cudaDataType type = cuda_type(shape_.dtype);
    const cublasComputeType_t compute =
        shape_.dtype == Dtype::kFloat32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    status = cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w_.get(), type, k, x_.get(), type, k, &zero,
                          z, type, n, compute, CUBLAS_GEMM_DEFAULT);
  }
  if (status != CUBLAS_STATUS_SUCCESS) return cudaErrorUnknown;
  if (with_epilogue)
    launch_epilogue(z, inputs_.b.empty() ? nullptr : b_.get(), kind(), inputs_.scale, shape_.m, shape_.n, stream);
  return cudaGetLastError();
}

cudaError_t Verifier::launch_baseline(cudaStream_t stream) {
  for (std::size_t index = 0; index < baseline_names_.size(); ++index)
    if (const cudaError_t status = launch_baseline(index, stream); status != cudaSuccess) return status;
  return cudaSuccess;
}

ErrorStats Verifier::baseline_error() {
  const double tolerance = elementwise_tolerance(shape_.policy);
  return compare(baseline_out_.get(), kind(), reference_.as<double>(), size_t(shape_.m * shape_.n), tolerance, stream_);
}

Verdict Verifier::check_output(Policy policy) {
  Verdict verdict;
  const double tolerance = elementwise_tolerance(policy);
  const size_t count = size_t(shape_.m * shape_.n);
  verdict.error = compare(out_.get(), kind(), reference_.as<double>(), count, tolerance, stream_);

  // Against cuBLAS + epilogue, as the second, independent reference.
  launch_widen(baseline_out_.get(), kind(), baseline_reference_.as<double>(), count, stream_);
  const ErrorStats versus_cublas =
      compare(out_.get(), kind(), baseline_reference_.as<double>(), count, tolerance, stream_);

  std::vector<unsigned char> host_bytes(count * element_bytes(shape_.dtype));
  FUSETUNE_CUDA_CHECK(cudaMemcpy(host_bytes.data(), out_.get(), host_bytes.size(), cudaMemcpyDeviceToHost));
  long long host_failures = 0;
  std::ostringstream first_failure;
  for (size_t s = 0; s < samples_.size(); ++s) {
    const size_t index = size_t(samples_[s].first * shape_.n + samples_[s].second);
    const double actual = decode_elements(host_bytes.data() + index * element_bytes(shape_.dtype), 1, shape_.dtype)[0];
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
    why << versus_cublas.allclose_violations + versus_cublas.non_finite << " elements differ from "
        << baseline_names_.back() << "; ";
  if (host_failures > 0)
    why << host_failures << " of " << samples_.size() << " host float64 samples differ;" << first_failure.str();
  verdict.message = why.str();
  verdict.passed = verdict.message.empty();
  return verdict;
}

}  // namespace fusetune
