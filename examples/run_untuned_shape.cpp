// Example: the load-time API on a shape that was never tuned. It resolves a config from
// the tuning database (nearest tuned shape, or a compiled-in fallback), runs it on a CUDA
// stream and checks a few outputs against float64 on the host.
//   usage: fusetune_example [--db fusetune.db] [MxNxK]
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "fusetune/errors.h"
#include "fusetune/fused_linear.h"

#define CHECK_CUDA(call)                                                           \
  do {                                                                             \
    const cudaError_t status_ = (call);                                            \
    if (status_ != cudaSuccess) {                                                  \
      std::fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(status_)); \
      return 1;                                                                    \
    }                                                                              \
  } while (0)

int main(int argc, char** argv) {
  fusetune::RuntimeOptions options;
  std::string dims = "333x1000x777";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--db") == 0 && i + 1 < argc)
      options.db_path = argv[++i];
    else
      dims = argv[i];
  }
  try {
    const fusetune::ProblemShape shape =
        fusetune::parse_dims(dims, fusetune::Dtype::kFloat32, fusetune::Policy::kHighest);
    const auto m = shape.m, n = shape.n, k = shape.k;

    std::mt19937 random(42);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f),
        weight(-1.0f / std::sqrt(float(k)), 1.0f / std::sqrt(float(k)));
    std::vector<float> x(static_cast<size_t>(m * k)), w(static_cast<size_t>(n * k)), b(static_cast<size_t>(n)),
        out(static_cast<size_t>(m * n));
    for (auto& v : x) v = unit(random);
    for (auto& v : w) v = weight(random);
    for (auto& v : b) v = weight(random);
    const float scale = 2.0f;

    float *dx, *dw, *db, *dout;
    CHECK_CUDA(cudaMalloc(&dx, x.size() * 4));
    CHECK_CUDA(cudaMalloc(&dw, w.size() * 4));
    CHECK_CUDA(cudaMalloc(&db, b.size() * 4));
    CHECK_CUDA(cudaMalloc(&dout, out.size() * 4));
    CHECK_CUDA(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(dw, w.data(), w.size() * 4, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(db, b.data(), b.size() * 4, cudaMemcpyHostToDevice));
    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreate(&stream));

    // What a user writes: open the runtime, (optionally) look, prepare the weight once if the
    // resolved config reads a prepared copy (e.g. the 3xTF32 big/small split), run.
    fusetune::FusedLinearRuntime runtime(options);
    const fusetune::Resolution resolution = runtime.resolve(shape);
    void* prepared = nullptr;
    if (const std::size_t bytes = runtime.prepared_weight_bytes(shape)) {
      CHECK_CUDA(cudaMalloc(&prepared, bytes));
      runtime.prepare_weight(shape, dw, prepared, stream);  // redo whenever w changes
    }
    runtime.run(shape, {dx, dw, db, dout, scale, prepared}, stream);

    CHECK_CUDA(cudaStreamSynchronize(stream));
    CHECK_CUDA(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int sample = 0; sample < 256; ++sample) {
      const auto i = std::int64_t(random() % std::uint32_t(m)), j = std::int64_t(random() % std::uint32_t(n));
      double z = b[size_t(j)];
      for (std::int64_t kk = 0; kk < k; ++kk) z += double(x[size_t(i * k + kk)]) * w[size_t(j * k + kk)];
      const double expected = z + scale / (1.0 + std::exp(-z));
      worst = std::fmax(worst, std::fabs(out[size_t(i * n + j)] - expected) / (1e-4 + std::fabs(expected)));
    }
    std::printf("shape %s ran %s (%s: %s); worst sampled relative error %.2e\n", shape.dims().c_str(),
                resolution.config.name.c_str(), std::string(fusetune::to_string(resolution.source)).c_str(),
                resolution.detail.c_str(), worst);
    cudaFree(dx), cudaFree(dw), cudaFree(db), cudaFree(dout), cudaFree(prepared), cudaStreamDestroy(stream);
    return worst <= 1e-4 ? 0 : 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fusetune_example: %s\n", error.what());
    return dynamic_cast<const fusetune::UsageError*>(&error) ? 2 : 1;
  }
}
