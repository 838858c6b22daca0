// fusetune._fast: the operator's host fast path, a pybind11 module built for the running
// Python (the operator library _C is not: it has no Python C API, so one build serves every
// version). A call through torch.ops parses its arguments against the schema in Python's
// binding and then dispatches, about 5 us of a small call (bench/RESULTS.md); this module's
// forward takes the tensors directly and calls _C's entry, which skips the dispatcher only
// where the dispatcher would call the CUDA kernel anyway (fused_linear_fast). ops.py binds
// the entry's address once, from _C through ctypes, and falls back to torch.ops without it.
#include <torch/csrc/utils/pybind.h>

#include <cstdint>
#include <optional>
#include <string>

#include "fast_path.h"

namespace {

fusetune_fast_forward_fn entry = nullptr;

void bind(std::uintptr_t address) {
  TORCH_CHECK(address != 0, "fusetune: the fast path was given no entry address");
  entry = reinterpret_cast<fusetune_fast_forward_fn>(address);
}

at::Tensor forward(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& c, double scale,
                   const std::string& policy) {
  TORCH_CHECK(entry, "fusetune: the fast path is not bound; import fusetune (ops.py binds it)");
  return entry(a, b, c, scale, policy);
}

}  // namespace

PYBIND11_MODULE(_fast, m) {
  m.doc() = "fusetune's host fast path for fused_gemm_sigmoid_scale_add (see ops.py)";
  m.def("bind", &bind, "Binds the operator library's entry (its address, from fusetune_fast_forward_address)");
  m.def("forward", &forward, "fused_gemm_sigmoid_scale_add(A, B, C, scaling_factor, policy)", pybind11::arg("A"),
        pybind11::arg("B"), pybind11::arg("C"), pybind11::arg("scaling_factor"), pybind11::arg("policy"));
}
