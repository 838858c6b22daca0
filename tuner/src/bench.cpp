// The bench (see bench.h): resolution through the same ConfigResolver as the library, the same
// compile path, the Verifier's inputs, references and baselines, and the Benchmarker's flushed
// samples, interleaved (in a shuffled order per round) so that clock drift hits winner and
// baselines alike.
#include "bench.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <sstream>

#include "benchmarker.h"
#include "compiler.h"
#include "config_resolver.h"
#include "cuda_resources.h"
#include "kernel_launcher.h"
#include "source_generator.h"
#include "verifier.h"

namespace fusetune {

namespace {

/// The peak's GEMM: bf16, 8192^3, fp32 compute, as cuBLAS runs it best.
constexpr int kPeakSize = 8192;

double measure_peak(Benchmarker& benchmarker, cublasHandle_t cublas, cudaStream_t stream) {
  const std::size_t bytes = std::size_t(kPeakSize) * kPeakSize * 2;
  DeviceBuffer a(bytes), b(bytes), c(bytes);
  // 0x3c3c is bf16 0.0115: non-zero operands, so the tensor cores draw their usual power.
  for (DeviceBuffer* buffer : {&a, &b, &c}) FUSETUNE_CUDA_CHECK(cudaMemsetAsync(buffer->get(), 0x3c, bytes, stream));
  FUSETUNE_CUBLAS_CHECK(cublasSetStream(cublas, stream));
  const float one = 1.0f, zero = 0.0f;
  auto launch = [&](cudaStream_t) {
    const cublasStatus_t status =
        cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, kPeakSize, kPeakSize, kPeakSize, &one, a.get(), CUDA_R_16BF,
                     kPeakSize, b.get(), CUDA_R_16BF, kPeakSize, &zero, c.get(), CUDA_R_16BF, kPeakSize,
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return status == CUBLAS_STATUS_SUCCESS ? cudaGetLastError() : cudaErrorUnknown;
  };
  BenchmarkOptions options;
  options.max_seconds = 2.0;
  const TimingStats timing = benchmarker.time(launch, options);
  return 2.0 * double(kPeakSize) * kPeakSize * kPeakSize / (timing.median_ms * 1e-3) / 1e12;
}

}  // namespace

double tflops(const ProblemShape& shape, double ms) { return shape.flops() / (ms * 1e-3) / 1e12; }

BenchReport run_bench(const BenchOptions& options) {
  const DeviceInfo device = query_device(options.device);
  std::optional<TuningDb> db;
  if (std::filesystem::exists(options.db_path)) db.emplace(TuningDb::open_read_only(options.db_path));
  ConfigResolver resolver(db ? &*db : nullptr);
  const Compiler compiler(TemplateLibrary::embedded(), device.arch,
                          options.cache_dir.empty() ? default_cache_dir() : options.cache_dir);
  Stream stream = make_stream();
  CublasHandle cublas = make_cublas();
  Benchmarker benchmarker(std::size_t(device.fingerprint.l2_bytes), stream.get());

  BenchReport report;
  report.device = device.fingerprint;
  if (options.measure_peak) report.peak_tflops = measure_peak(benchmarker, cublas.get(), stream.get());

  for (const auto& [dtype, policy] : options.problems) {
    BenchRow row;
    row.shape = options.dims;
    row.shape.dtype = dtype;
    row.shape.policy = policy;
    validate_dtype_policy(row.shape);
    row.resolution = resolver.resolve(row.shape, device.fingerprint, device.limits);
    const SearchSpace& space = *resolver.space_for(row.resolution.config.family);
    const CompileOutput compiled = compiler.compile(generate_source(space, row.resolution.config));
    if (!compiled.ok)
      throw CudaError("the resolved config " + row.resolution.config.name +
                      " does not compile: " + compiled.log.substr(0, 300));
    LoadedKernel kernel = LoadedKernel::load(compiled.cubin);
    Verifier verifier(row.shape, make_random_inputs(row.shape, options.seed), stream.get(), cublas.get());
    const LaunchSpec spec = make_launch_spec(space, row.resolution.config, row.shape, device.limits);

    // The one-time weight preparation, timed on its own.
    if (spec.weight_prep != WeightPrep::kNone) {
      void* prepared = verifier.prepared_weight(prepared_weight_bytes(spec.weight_prep, row.shape));
      auto prepare = [&](cudaStream_t s) {
        return kernel.prepare_weight(spec.weight_prep, row.shape, verifier.weight(), prepared, s);
      };
      FUSETUNE_CUDA_CHECK(prepare(stream.get()));
      BenchmarkOptions prep_options;
      prep_options.max_seconds = 1.0;
      row.prep_ms = benchmarker.time(prepare, prep_options).median_ms;
    }
    TensorMapCache maps;
    const LaunchPlan plan = make_launch_plan(spec, row.shape, verifier.operands(spec.workspace_bytes), maps);

    // Correctness on this run's inputs first.
    verifier.poison_output();
    FUSETUNE_CUDA_CHECK(kernel.launch(plan, stream.get()));
    FUSETUNE_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
    const Verdict verdict = verifier.check_output(policy);
    row.verified = verdict.passed;
    row.verdict = verdict.message;
    row.winner.name = row.resolution.config.name;
    row.winner.error = verdict.error;

    // Interleaved rounds of one flushed sample of every baseline and the winner.
    auto launch = [&](cudaStream_t s) { return kernel.launch(plan, s); };
    for (int warm = 0; warm < 3; ++warm) FUSETUNE_CUDA_CHECK(launch(stream.get()));
    const std::size_t baselines = verifier.baselines().size();
    std::vector<LaunchFn> launches;
    for (std::size_t b = 0; b < baselines; ++b)
      launches.push_back([&verifier, b](cudaStream_t s) { return verifier.launch_baseline(b, s); });
    launches.push_back(launch);
    const std::vector<std::vector<double>> samples = benchmarker.interleaved(launches, options.rounds);
    row.winner.timing = Benchmarker::summarize(samples[baselines]);
    const ErrorStats baseline_error = verifier.baseline_error();
    for (std::size_t b = 0; b < baselines; ++b)
      row.baselines.push_back({verifier.baselines()[b], Benchmarker::summarize(samples[b]), baseline_error});
    report.rows.push_back(std::move(row));
  }
  return report;
}

std::string bench_markdown(const BenchReport& report) {
  std::ostringstream out;
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  const ProblemShape dims = report.rows.empty() ? headline_shape() : report.rows.front().shape;
  out << "### `fusetune bench`, " << dims.dims() << ", " << report.device.name << ", " << date << "\n\n";
  if (report.peak_tflops > 0) {
    char peak[96];
    std::snprintf(peak, sizeof peak, "%.0f", report.peak_tflops);
    out << "Peak measured in the same run: cuBLAS bf16 GEMM 8192^3 = " << peak << " TFLOP/s.\n\n";
  }
  out << "| policy | kernel | source | median ms | ratio to target | TFLOP/s | % of peak | rel. error |\n"
      << "|---|---|---|---|---|---|---|---|\n";
  for (const BenchRow& row : report.rows) {
    const double target = row.baselines.empty() ? 0 : row.baselines.front().timing.median_ms;
    auto line = [&](const std::string& policy, const std::string& name, const std::string& source,
                    const BenchEntry& entry) {
      char text[512];
      const double flops = tflops(row.shape, entry.timing.median_ms);
      std::snprintf(
          text, sizeof text, "| %s | %s | %s | %.4f | %.3f | %.0f | %s | %.2e |\n", policy.c_str(), name.c_str(),
          source.c_str(), entry.timing.median_ms, target > 0 ? entry.timing.median_ms / target : 0.0, flops,
          report.peak_tflops > 0 ? (std::to_string(int(100 * flops / report.peak_tflops + 0.5)) + "%").c_str() : "-",
          entry.error.relative_l2);
      out << text;
    };
    const std::string policy = std::string(to_string(row.shape.dtype)) + " " + std::string(to_string(row.shape.policy));
    std::string source = std::string(to_string(row.resolution.source));
    if (row.prep_ms > 0) {
      char prep[64];
      std::snprintf(prep, sizeof prep, "; weight prep %.3f ms once", row.prep_ms);
      source += prep;
    }
    if (!row.verified) source += "; FAILED verification";
    line(policy, "`" + row.winner.name + "`", source, row.winner);
    for (const BenchEntry& baseline : row.baselines) line(policy, baseline.name, "baseline", baseline);
  }
  out << "\nratio to target: median time over that of the policy's first baseline (bf16: cuBLAS bf16 GEMM alone; "
         "high: cuBLAS TF32 GEMM alone; highest: cuBLAS SGEMM + epilogue, as PyTorch eager). Baseline errors are "
         "those of the GEMM completed by the separate epilogue.\n";
  return out.str();
}

}  // namespace fusetune
