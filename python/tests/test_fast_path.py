"""The host fast path (fusetune._fast): built with the package, the same results as the
operator, and out of the way wherever PyTorch's machinery has to see the operator (autograd,
autocast, __torch_function__ and __torch_dispatch__ modes, torch.compile)."""
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the fusetune PyTorch tests need it")
import fusetune  # noqa: E402
from reference import TOLERANCE, pair  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

OP_NAME = "fusetune.fused_gemm_sigmoid_scale_add.default"


class RecordFunctions(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


class FakeTheOperator(TorchDispatchMode):
    """Records the operators dispatched and answers ours with a constant: the kernel never runs."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(str(func))
        if str(func) == OP_NAME:
            return torch.full((*args[0].shape[:-1], args[1].shape[0]), 7.0, dtype=args[0].dtype, device=args[0].device)
        return func(*args, **(kwargs or {}))


def test_the_fast_path_is_built():
    assert fusetune.fast_path_enabled(), "fusetune._fast is missing: build the package with python/setup.py"


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_dispatch_mode_still_sees_the_operator(device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU (torch.cuda.is_available() is False)")
    model = fusetune.ModelNew(8, 4, 2.0).to(device)
    with FakeTheOperator() as mode, torch.inference_mode():
        out = model(torch.rand(3, 8, device=device))
    assert OP_NAME in mode.seen
    assert torch.equal(out, torch.full((3, 4), 7.0, device=device))


def test_a_torch_function_mode_still_sees_the_operator():
    model = fusetune.ModelNew(8, 4, 2.0)
    with RecordFunctions() as mode, pytest.raises(RuntimeError, match="runs on CUDA tensors"):
        model(torch.rand(3, 8))
    assert OP_NAME in mode.seen


def test_the_fast_path_gives_the_operators_result(gpu, monkeypatch):
    torch.manual_seed(3)
    model, fused = pair(96, 80, 1.5, "cuda")
    x = torch.rand(2, 7, 96, device="cuda")
    op = torch.ops.fusetune.fused_gemm_sigmoid_scale_add.default
    with torch.no_grad():
        expected = op(x, fused.gemm.weight, fused.gemm.bias, 1.5, "auto")
    # Python's torch.ops entry is not taken by ModelNew or the function while the fast path
    # serves them; the C++ side may still dispatch (e.g. for autograd).
    calls = []
    monkeypatch.setattr(fusetune.ops, "_op", lambda *args: calls.append(args) or op(*args))
    for context in (torch.inference_mode, torch.no_grad):
        with context():
            assert torch.equal(fused(x), expected)
            assert torch.equal(fusetune.fused_gemm_sigmoid_scale_add(x, fused.gemm.weight, fused.gemm.bias, 1.5),
                               expected)
    assert calls == []
    with torch.no_grad():
        torch.testing.assert_close(expected, model(x), atol=TOLERANCE["highest"], rtol=TOLERANCE["highest"])


def test_autocast_still_sees_the_operator(gpu):
    """The operator has no autocast rule, so autocast leaves it in fp32: the same result as
    outside autocast, however the call reaches it."""
    torch.manual_seed(4)
    _, fused = pair(64, 48, 2.0, "cuda")
    x = torch.rand(5, 64, device="cuda")
    with torch.inference_mode():
        plain = fused(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            cast = fused(x)
    assert cast.dtype == torch.float32
    assert torch.equal(cast, plain)
