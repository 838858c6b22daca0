"""The operator torch.ops.fusetune.fused_gemm_sigmoid_scale_add: loads its C++ library (built by
python/setup.py), registers the fake implementation that torch.compile traces with, and wraps
the runtime's configuration (tuning database, config lookup, prepared-weight cache)."""
import ctypes
from pathlib import Path

import torch

_HERE = Path(__file__).resolve().parent


def _load_library():
    found = sorted(_HERE.glob("_C*.so"))
    if not found:
        raise ImportError(
            f"fusetune: the operator library is not built (no _C*.so in {_HERE}); build the C++ library "
            "(scripts/setup.sh), then `pip install --no-build-isolation ./python` or "
            "`python3 python/setup.py build_ext --inplace`")
    torch.ops.load_library(str(found[0]))
    return found[0]


def _bind_fast_path(library):
    """fusetune._fast.forward bound to the operator library's fast entry, or None where the
    module was not built for this Python (the operator then serves every call)."""
    try:
        from . import _fast
    except ImportError:
        return None
    # The same dlopen handle torch.ops.load_library made: one runtime, one weight cache.
    entry = ctypes.CDLL(str(library)).fusetune_fast_forward_address
    entry.restype = ctypes.c_void_p
    _fast.bind(entry())
    return _fast.forward


_fast_forward = _bind_fast_path(_load_library())
_op = torch.ops.fusetune.fused_gemm_sigmoid_scale_add.default
_is_compiling = torch.compiler.is_compiling
_torch_function_modes = torch._C._len_torch_function_stack
_Tensor = torch.Tensor


def _call(A, B, C, scaling_factor, policy):
    """The operator, through the fast path where that is the same call (see fast_path.cpp): not
    while torch.compile traces (it sees the operator), nor under a __torch_function__ mode or
    for a subclass of A with its own; the C++ side checks the dispatch keys for the rest."""
    if (_fast_forward is not None and not _is_compiling() and type(A) is _Tensor
            and not _torch_function_modes()):
        return _fast_forward(A, B, C, scaling_factor, policy)
    return _op(A, B, C, scaling_factor, policy)


def fast_path_enabled():
    """Whether calls can skip the torch.ops binding (fusetune._fast is built for this Python)."""
    return _fast_forward is not None


_POLICIES = ("auto", "highest", "high", "half")
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@torch.library.register_fake("fusetune::fused_gemm_sigmoid_scale_add")
def _fake(A, B, C, scaling_factor, policy="auto"):
    # The same checks as the CUDA kernel's (fused_linear_op.cpp), so that torch.compile
    # reports bad input while tracing.
    if A.dim() < 1:
        raise ValueError("fusetune: A must have at least one dimension (..., K); got a scalar")
    if B.dim() != 2:
        raise ValueError(f"fusetune: B (the weight) must be 2-D (N, K) as nn.Linear stores it; got "
                         f"{B.dim()}-D of shape {list(B.shape)}")
    torch._check(A.shape[-1] == B.shape[1], lambda: f"fusetune: A has K={A.shape[-1]} features (shape "
                 f"{list(A.shape)}) but B (N, K) has K={B.shape[1]} (shape {list(B.shape)})")
    if A.dtype != B.dtype:
        raise TypeError(f"fusetune: A and B must have the same dtype; got {A.dtype} and {B.dtype}")
    if A.dtype not in _DTYPES:
        raise TypeError(f"fusetune: A has dtype {A.dtype}; supported are float32, bfloat16 and float16")
    if A.device != B.device:
        raise RuntimeError(f"fusetune: A and B must be on the same device; got {A.device} and {B.device}")
    if C is not None:
        if C.dim() != 1 or C.shape[0] != B.shape[0]:
            raise ValueError(f"fusetune: C (the bias) must have shape (N,) = ({B.shape[0]},); got {list(C.shape)}")
        if C.dtype != A.dtype:
            raise TypeError(f"fusetune: C must have A's dtype {A.dtype}; got {C.dtype}")
        if C.device != A.device:
            raise RuntimeError(f"fusetune: C must be on A's device {A.device}; got {C.device}")
    if policy not in _POLICIES:
        raise ValueError(f"fusetune: unknown policy '{policy}'; use 'auto', 'highest', 'high' or 'half'")
    return A.new_empty((*A.shape[:-1], B.shape[0]))


def fused_gemm_sigmoid_scale_add(A, B, C, scaling_factor, *, policy="auto"):
    """out = z + scaling_factor * sigmoid(z), z = A @ B.T + C, in one tuned CUDA kernel.

    A: (..., K) input; B: (N, K) weight as nn.Linear stores it; C: (N,) bias or None; all
    float32, bfloat16 or float16, on one CUDA device. Returns (..., N) of A's dtype, on the
    current CUDA stream. policy: "auto" follows torch.get_float32_matmul_precision() for float32
    ("highest" -> exact fp32 arithmetic, "high"/"medium" -> TF32 tensor cores) and is "half" for
    bfloat16/float16; "highest" or "high" name an fp32 policy explicitly.
    """
    return _call(A, B, C, scaling_factor, policy)


def set_database(path="", cache_dir=""):
    """Use the tuning database at `path` from now on ("" = $FUSETUNE_DB, else ./fusetune.db,
    read when the first kernel runs). A missing file is fine: untuned shapes run through the
    resolver's fallbacks. cache_dir: compiled kernels ("" = $FUSETUNE_CACHE_DIR or
    ~/.cache/fusetune). Clears the prepared-weight cache."""
    torch.ops.fusetune.set_database(str(path), str(cache_dir))


def database_path():
    """The tuning database the runtime reads."""
    return torch.ops.fusetune.database_path()


def resolve(m, n, k, dtype=torch.float32, policy="auto", device=None):
    """(config name, source, detail) of the kernel that runs an (m, n, k) problem: source is
    "exact" (tuned for this shape), "nearest" (a tuned shape nearby), "default" (compiled-in
    for the architecture) or "universal" (valid for every shape)."""
    if not isinstance(device, int):
        device = torch.device("cuda" if device is None else device).index
        device = torch.cuda.current_device() if device is None else device
    return tuple(torch.ops.fusetune.resolve(m, n, k, dtype, policy, device))


def weight_cache_size():
    """Prepared weights held (one per live weight whose config needs preparation)."""
    return torch.ops.fusetune.weight_cache_size()


def clear_weight_cache():
    """Drops every prepared weight; the next call prepares again."""
    torch.ops.fusetune.clear_weight_cache()


def runtime_launch_us(A, B, C, out, scaling_factor, policy="auto", iterations=1000):
    """Host microseconds per call of the C++ runtime's launch, with no PyTorch in between: the
    floor against which the operator's per-call overhead is measured (bench/pytorch_dropin.py)."""
    return torch.ops.fusetune.runtime_launch_us(A, B, C, out, scaling_factor, policy, iterations)
