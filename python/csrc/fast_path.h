// The contract between the operator library (_C, fused_linear_op.cpp) and the fast path's
// Python module (_fast, fast_path.cpp): the type of the entry that _C exports the address of.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>

/// out = fused_gemm_sigmoid_scale_add(A, B, C, scaling_factor, policy): straight to the CUDA
/// kernel where the dispatcher would go there, through the operator otherwise.
using fusetune_fast_forward_fn = at::Tensor (*)(const at::Tensor& a, const at::Tensor& b,
                                                const std::optional<at::Tensor>& c, double scale,
                                                c10::string_view policy);
