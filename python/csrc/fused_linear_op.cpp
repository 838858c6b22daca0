// The PyTorch operator fusetune::fused_gemm_sigmoid_scale_add: input checks, the CUDA kernel
// through FusedLinearRuntime on the current stream, the prepared-weight cache, the autograd
// formula, and small ops that configure and inspect the runtime. No pybind11 or Python.h:
// the library is loaded with torch.ops.load_library and works with any Python version (the
// host fast path's Python module, fast_path.cpp, is built per version and calls in here).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/accumulate.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>

#include "fast_path.h"
#include "fusetune/errors.h"
#include "fusetune/fused_linear.h"
#include "prepared_weights.h"

namespace fusetune::torch_ops {
namespace {

constexpr const char* kOpName = "fusetune::fused_gemm_sigmoid_scale_add";

// ---------------------------------------------------------------------------------------
// The process-wide runtime (one tuning database, one kernel cache) and what hangs off it.

/// The prepared weight that the config resolved for a problem reads.
struct Preparation {
  std::string family;     ///< the config's family: the format of the prepared bytes
  std::size_t bytes = 0;  ///< 0: the config reads W as it is
};

struct State {
  std::mutex mutex;
  RuntimeOptions options;
  std::shared_ptr<FusedLinearRuntime> runtime;  ///< made on first use; replaced by set_database
  /// Per problem (shape, dtype, policy) and device, asked of `runtime` once.
  std::map<std::pair<ProblemShape, c10::DeviceIndex>, Preparation> preparation;
  PreparedWeightCache weights;
};

State& state() {
  static State* instance = new State;  // never destroyed: kernels may outlive static destructors
  return *instance;
}

/// Runs `body`, turning the runtime's exceptions into the errors PyTorch maps to Python's
/// ValueError (UsageError) and RuntimeError (DataError, CudaError).
template <typename Body>
auto translating_errors(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const UsageError& error) {
    TORCH_CHECK_VALUE(false, "fusetune: ", error.what());
  } catch (const DataError& error) {
    TORCH_CHECK(false, "fusetune: tuning database: ", error.what());
  } catch (const CudaError& error) {
    TORCH_CHECK(false, "fusetune: CUDA: ", error.what());
  }
}

/// The runtime, made on first use; the caller holds s.mutex.
const std::shared_ptr<FusedLinearRuntime>& locked_runtime(State& s) {
  if (!s.runtime) s.runtime = translating_errors([&] { return std::make_shared<FusedLinearRuntime>(s.options); });
  return s.runtime;
}

std::shared_ptr<FusedLinearRuntime> runtime() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  return locked_runtime(s);
}

/// The runtime and the preparation of `shape` on `device` (the current device), under one
/// lock, so that both come from the same database even while set_database replaces it.
std::pair<std::shared_ptr<FusedLinearRuntime>, Preparation> runtime_and_preparation(State& s, const ProblemShape& shape,
                                                                                    c10::DeviceIndex device) {
  std::lock_guard lock(s.mutex);
  const std::shared_ptr<FusedLinearRuntime>& rt = locked_runtime(s);
  auto found = s.preparation.find({shape, device});
  if (found == s.preparation.end()) {
    Preparation preparation;
    preparation.bytes = rt->prepared_weight_bytes(shape);
    if (preparation.bytes) preparation.family = rt->resolve(shape, device).config.family;
    found = s.preparation.emplace(std::pair{shape, device}, std::move(preparation)).first;
  }
  return {rt, found->second};
}

// ---------------------------------------------------------------------------------------
// Input checks and the mapping from tensors to the runtime's problem description.

Dtype dtype_of(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return Dtype::kFloat32;
    case at::kBFloat16:
      return Dtype::kBFloat16;
    case at::kHalf:
      return Dtype::kFloat16;
    default:
      TORCH_CHECK_TYPE(false, "fusetune: A has dtype ", type, "; supported are float32, bfloat16 and float16");
  }
}

/// "auto" follows torch.get_float32_matmul_precision() for fp32 ("highest" -> highest,
/// "high"/"medium" -> high) and is "half" for bf16/fp16; a named policy must fit the dtype.
Policy policy_of(std::string_view name, Dtype dtype) {
  if (name == "auto") {
    if (dtype != Dtype::kFloat32) return Policy::kHalf;
    return at::globalContext().float32MatmulPrecision() == at::Float32MatmulPrecision::HIGHEST ? Policy::kHighest
                                                                                               : Policy::kHigh;
  }
  const std::optional<Policy> policy = parse_policy(name);
  TORCH_CHECK_VALUE(policy, "fusetune: unknown policy '", name, "'; use 'auto', 'highest', 'high' or 'half'");
  TORCH_CHECK_VALUE((dtype == Dtype::kFloat32) == (*policy != Policy::kHalf), "fusetune: policy '", name,
                    "' does not apply to ", to_string(dtype),
                    " tensors; fp32 takes 'highest' or 'high', bf16/fp16 take 'half' (or 'auto')");
  return *policy;
}

/// Throws a Python ValueError / TypeError / RuntimeError naming what is wrong.
void check_inputs(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c) {
  TORCH_CHECK_VALUE(a.dim() >= 1, "fusetune: A must have at least one dimension (..., K); got a scalar");
  TORCH_CHECK_VALUE(b.dim() == 2, "fusetune: B (the weight) must be 2-D (N, K) as nn.Linear stores it; got ", b.dim(),
                    "-D of shape ", b.sizes());
  TORCH_CHECK_VALUE(a.size(-1) == b.size(1), "fusetune: A has K=", a.size(-1), " features (shape ", a.sizes(),
                    ") but B (N, K) has K=", b.size(1), " (shape ", b.sizes(), ")");
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), "fusetune: A and B must have the same dtype; got ",
                   a.scalar_type(), " and ", b.scalar_type());
  dtype_of(a.scalar_type());
  TORCH_CHECK(a.device() == b.device(), "fusetune: A and B must be on the same device; got ", a.device(), " and ",
              b.device());
  if (c) {
    TORCH_CHECK_VALUE(c->dim() == 1 && c->size(0) == b.size(0), "fusetune: C (the bias) must have shape (N,) = (",
                      b.size(0), ",); got ", c->sizes());
    TORCH_CHECK_TYPE(c->scalar_type() == a.scalar_type(), "fusetune: C must have A's dtype ", a.scalar_type(), "; got ",
                     c->scalar_type());
    TORCH_CHECK(c->device() == a.device(), "fusetune: C must be on A's device ", a.device(), "; got ", c->device());
  }
}

/// out = z + s * sigmoid(z) when K = 0 (z is the bias, or zero): no GEMM to run.
at::Tensor epilogue_only(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c, double scale) {
  std::vector<std::int64_t> sizes(a.sizes().begin(), a.sizes().end() - 1);
  sizes.push_back(b.size(0));
  at::Tensor z = c ? c->expand(sizes).contiguous() : at::zeros(sizes, a.options());
  return z + scale * at::sigmoid(z);
}

// ---------------------------------------------------------------------------------------
// The kernels.

at::Tensor fused_linear_cuda(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c, double scale,
                             c10::string_view policy_name) {
  check_inputs(a, b, c);
  const c10::cuda::CUDAGuard guard(a.device());
  const std::int64_t n = b.size(0), k = b.size(1);
  at::DimVector out_sizes(a.sizes().begin(), a.sizes().end() - 1);  // inline storage: no allocation
  const std::int64_t m = c10::multiply_integers(out_sizes);         // rows of all batch dimensions
  out_sizes.push_back(n);
  const Dtype dtype = dtype_of(a.scalar_type());
  const Policy policy = policy_of(policy_name, dtype);
  if (m == 0 || n == 0) return at::empty(out_sizes, a.options());
  if (k == 0) return epilogue_only(a, b, c, scale);

  const at::Tensor x = a.contiguous();
  const at::Tensor w = b.contiguous();
  const at::Tensor bias = c ? c->contiguous() : at::Tensor();
  at::Tensor out = at::empty(out_sizes, a.options());
  const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(a.device().index());
  const ProblemShape shape{m, n, k, dtype, policy};

  FusedLinearTensors tensors{x.data_ptr(), w.data_ptr(), bias.defined() ? bias.data_ptr() : nullptr, out.data_ptr(),
                             static_cast<float>(scale)};
  translating_errors([&] {
    State& s = state();
    const auto [rt, preparation] = runtime_and_preparation(s, shape, a.device().index());
    // Both kept alive until the launch is queued.
    std::shared_ptr<const PreparedBuffer> cached;
    at::Tensor in_graph;
    if (preparation.bytes > 0) {
      // Keyed by B, the caller's tensor: a non-contiguous B is prepared from its copy once.
      const PreparedWeightKey key{
          b.data_ptr(), n, k, b.scalar_type(), int(policy), preparation.family, preparation.bytes, a.device().index()};
      const auto prepare = [&](void* prepared) { rt->prepare_weight(shape, w.data_ptr(), prepared, stream.stream()); };
      if (c10::cuda::currentStreamCaptureStatusMayInitCtx() == c10::cuda::CaptureStatus::None) {
        cached = s.weights.get(key, b, stream, prepare);
      } else {
        // Captured into a CUDA graph: the graph reads the cached bytes if they are current
        // (prepared by a call before the capture, e.g. the warm-up that PyTorch asks for). If
        // not, the preparation becomes part of the graph: written into scratch memory of the
        // graph's own pool on every replay, so that it follows the weight's values then. It is
        // never cached: at capture time nothing has run, so the bytes are not written yet.
        cached = s.weights.find_for_capture(key, b, stream);
        if (!cached) {
          in_graph = at::empty({std::int64_t(preparation.bytes)}, a.options().dtype(at::kByte));
          prepare(in_graph.data_ptr());
        }
      }
      tensors.prepared_weight = cached ? cached->data() : in_graph.data_ptr();
    }
    rt->run(shape, tensors, stream.stream());
  });
  return out;
}

at::Tensor fused_linear_cpu(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c, double,
                            c10::string_view) {
  check_inputs(a, b, c);  // names a shape or dtype problem first, then the device
  const bool no_gpu = c10::cuda::device_count() == 0;
  TORCH_CHECK(false, "fusetune: fused_gemm_sigmoid_scale_add runs on CUDA tensors; got tensors on ", a.device(),
              no_gpu ? ", and this machine has no CUDA GPU (torch.cuda.is_available() is False)"
                     : "; move the model and its inputs to the GPU (.cuda())");
}

// ---------------------------------------------------------------------------------------
// Autograd: the backward recomputes z with PyTorch's own matmul (z never goes to memory in
// the forward) and applies d out / d z = 1 + s * sigmoid(z) * (1 - sigmoid(z)).

using FusedLinearSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, double,
                                        c10::string_view);

/// The operator, to call below autograd.
const c10::TypedOperatorHandle<FusedLinearSignature>& fused_linear_op() {
  static const auto handle = c10::Dispatcher::singleton().findSchemaOrThrow(kOpName, "").typed<FusedLinearSignature>();
  return handle;
}

class FusedLinearFunction : public torch::autograd::Function<FusedLinearFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b,
                            const std::optional<at::Tensor>& c, double scale, c10::string_view policy) {
    ctx->saved_data["scale"] = scale;
    ctx->save_for_backward({a, b, c.value_or(at::Tensor())});
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return fused_linear_op().call(a, b, c, scale, policy);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& a = saved[0];
    const at::Tensor& b = saved[1];
    const at::Tensor& c = saved[2];
    const double scale = ctx->saved_data["scale"].toDouble();
    const c10::SymInt n = b.sym_size(0), k = b.sym_size(1);
    const at::Tensor x = a.reshape_symint({-1, k});
    const at::Tensor z = c.defined() ? at::addmm(c, x, b.t()) : at::mm(x, b.t());
    const at::Tensor sig = at::sigmoid(z.to(at::kFloat));
    const at::Tensor grad_z =
        (grads[0].reshape_symint({-1, n}).to(at::kFloat) * (1.0 + scale * sig * (1.0 - sig))).to(a.scalar_type());
    at::Tensor grad_a, grad_b, grad_c;
    if (ctx->needs_input_grad(0)) grad_a = at::mm(grad_z, b).reshape_symint(a.sym_sizes());
    if (ctx->needs_input_grad(1)) grad_b = at::mm(grad_z.t(), x);
    if (c.defined() && ctx->needs_input_grad(2)) grad_c = grad_z.to(at::kFloat).sum(0).to(c.scalar_type());
    return {grad_a, grad_b, grad_c, at::Tensor(), at::Tensor()};
  }
};

/// Whether a call has anything to differentiate: else the autograd kernel only calls below it.
bool needs_autograd(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c) {
  return at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad() || (c && c->requires_grad()));
}

at::Tensor fused_linear_autograd(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c,
                                 double scale, c10::string_view policy) {
  if (needs_autograd(a, b, c)) return FusedLinearFunction::apply(a, b, c, scale, policy);
  // Nothing to differentiate: skip building a graph node (a measurable part of a small call).
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return fused_linear_op().call(a, b, c, scale, policy);
}

// ---------------------------------------------------------------------------------------
// The fast path (fusetune._fast, csrc/fast_path.cpp): a direct call from Python that skips the
// torch.ops binding and the dispatcher where the dispatcher would do nothing but call
// fused_linear_cuda, and goes through the operator everywhere else.

at::Tensor fused_linear_fast(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c, double scale,
                             c10::string_view policy) {
  c10::DispatchKeySet keys = a.key_set() | b.key_set();
  if (c) keys = keys | c->key_set();
  const c10::impl::LocalDispatchKeySet local = c10::impl::tls_local_dispatch_key_set();
  keys = (keys | local.included_) - local.excluded_;
  // The autograd kernel above only calls below autograd when there is nothing to differentiate.
  if (!needs_autograd(a, b, c)) keys = keys - c10::autograd_dispatch_keyset_with_ADInplaceOrView;
  // Anything else first (autocast, a Python mode or tensor subclass, vmap, functionalization,
  // a CPU tensor's error): the dispatcher decides.
  if (keys.highestPriorityTypeId() != c10::DispatchKey::CUDA) return fused_linear_op().call(a, b, c, scale, policy);
  return fused_linear_cuda(a, b, c, scale, policy);
}

// ---------------------------------------------------------------------------------------
// Configuration and inspection.

void set_database(c10::string_view db_path, c10::string_view cache_dir) {
  State& s = state();
  RuntimeOptions options{std::string(db_path), std::string(cache_dir)};
  auto fresh = translating_errors([&] { return std::make_shared<FusedLinearRuntime>(options); });
  std::lock_guard lock(s.mutex);
  s.options = std::move(options);
  s.runtime = std::move(fresh);
  s.preparation.clear();
  s.weights.clear();
}

std::string database_path() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  return s.options.db_path.empty() ? default_db_path() : s.options.db_path;
}

/// [config name, source (exact/nearest/default/universal), detail] for a problem on a device.
std::vector<std::string> resolve(std::int64_t m, std::int64_t n, std::int64_t k, at::ScalarType dtype_type,
                                 c10::string_view policy_name, std::int64_t device) {
  const Dtype dtype = dtype_of(dtype_type);
  const ProblemShape shape{m, n, k, dtype, policy_of(policy_name, dtype)};
  std::shared_ptr<FusedLinearRuntime> rt = runtime();
  return translating_errors([&] {
    const Resolution resolution = rt->resolve(shape, int(device));
    return std::vector<std::string>{resolution.config.name, std::string(to_string(resolution.source)),
                                    resolution.detail};
  });
}

std::int64_t prepared_weight_bytes_of(std::int64_t m, std::int64_t n, std::int64_t k, at::ScalarType dtype_type,
                                      c10::string_view policy_name, std::int64_t device) {
  const Dtype dtype = dtype_of(dtype_type);
  const ProblemShape shape{m, n, k, dtype, policy_of(policy_name, dtype)};
  const c10::cuda::CUDAGuard guard{c10::DeviceIndex(device)};
  return translating_errors(
      [&] { return std::int64_t(runtime_and_preparation(state(), shape, c10::DeviceIndex(device)).second.bytes); });
}

std::int64_t weight_cache_size() { return std::int64_t(state().weights.size()); }
void clear_weight_cache() { state().weights.clear(); }

/// Host microseconds per call of the operator through the dispatcher from C++ (no Python),
/// `iterations` calls queued back to back on the current stream: the C++ side of its overhead.
double operator_launch_us(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c, double scale,
                          c10::string_view policy, std::int64_t iterations) {
  TORCH_CHECK_VALUE(iterations > 0, "fusetune: operator_launch_us takes iterations > 0");
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t i = 0; i < iterations; ++i) fused_linear_op().call(a, b, c, scale, policy);
  const std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / double(iterations);
}

/// Host microseconds per FusedLinearRuntime::run call, `iterations` calls queued back to back
/// on the current stream with no PyTorch in between: the floor the operator's overhead is
/// measured against. `out` must be contiguous of shape (M, N). A config that reads a prepared
/// weight gets it prepared once, before the timed calls, as the operator's cache would hold it.
double runtime_launch_us(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c,
                         const at::Tensor& out, double scale, c10::string_view policy_name, std::int64_t iterations) {
  check_inputs(a, b, c);
  TORCH_CHECK_VALUE(a.dim() == 2 && a.is_contiguous() && b.is_contiguous() && out.is_contiguous() &&
                        out.size(0) == a.size(0) && out.size(1) == b.size(0) && iterations > 0,
                    "fusetune: runtime_launch_us takes contiguous 2-D A, B, out and iterations > 0");
  const c10::cuda::CUDAGuard guard(a.device());
  const Dtype dtype = dtype_of(a.scalar_type());
  const ProblemShape shape{a.size(0), b.size(0), b.size(1), dtype, policy_of(policy_name, dtype)};
  FusedLinearTensors tensors{a.data_ptr(), b.data_ptr(), c ? c->data_ptr() : nullptr, out.data_ptr(),
                             static_cast<float>(scale)};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(a.device().index()).stream();
  return translating_errors([&] {
    const auto [rt, preparation] = runtime_and_preparation(state(), shape, a.device().index());
    at::Tensor prepared;
    if (preparation.bytes > 0) {
      prepared = at::empty({std::int64_t(preparation.bytes)}, a.options().dtype(at::kByte));
      rt->prepare_weight(shape, b.data_ptr(), prepared.data_ptr(), stream);
      tensors.prepared_weight = prepared.data_ptr();
    }
    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < iterations; ++i) rt->run(shape, tensors, stream);
    const std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
    return elapsed.count() / double(iterations);
  });
}

}  // namespace

TORCH_LIBRARY(fusetune, m) {
  m.set_python_module("fusetune.ops");
  m.def(
      "fused_gemm_sigmoid_scale_add(Tensor A, Tensor B, Tensor? C, float scaling_factor, str policy=\"auto\") -> "
      "Tensor");
  m.def("set_database(str db_path, str cache_dir) -> ()", &set_database);
  m.def("database_path() -> str", &database_path);
  m.def("resolve(int m, int n, int k, ScalarType dtype, str policy, int device) -> str[]", &resolve);
  m.def("prepared_weight_bytes(int m, int n, int k, ScalarType dtype, str policy, int device) -> int",
        &prepared_weight_bytes_of);
  m.def("weight_cache_size() -> int", &weight_cache_size);
  m.def("clear_weight_cache() -> ()", &clear_weight_cache);
  m.def(
      "runtime_launch_us(Tensor A, Tensor B, Tensor? C, Tensor(a!) out, float scaling_factor, str policy, "
      "int iterations) -> float",
      &runtime_launch_us);
  m.def("operator_launch_us(Tensor A, Tensor B, Tensor? C, float scaling_factor, str policy, int iterations) -> float",
        &operator_launch_us);
}

TORCH_LIBRARY_IMPL(fusetune, CUDA, m) { m.impl("fused_gemm_sigmoid_scale_add", &fused_linear_cuda); }
TORCH_LIBRARY_IMPL(fusetune, CPU, m) { m.impl("fused_gemm_sigmoid_scale_add", &fused_linear_cpu); }
TORCH_LIBRARY_IMPL(fusetune, Autograd, m) { m.impl("fused_gemm_sigmoid_scale_add", &fused_linear_autograd); }

}  // namespace fusetune::torch_ops

/// The address of the fast path's entry, for fusetune._fast (a module built for one Python
/// version; this library is not): ops.py hands it over through ctypes, so both run on this
/// library's one runtime and prepared-weight cache. Its type is fusetune_fast_forward_fn
/// (fast_path.h), which both sides compile against the same PyTorch headers.
static_assert(std::is_same_v<decltype(&fusetune::torch_ops::fused_linear_fast), fusetune_fast_forward_fn>,
              "the fast path's entry must have the type fusetune._fast calls it with");
extern "C" __attribute__((visibility("default"))) void* fusetune_fast_forward_address() {
  return reinterpret_cast<void*>(&fusetune::torch_ops::fused_linear_fast);
}
