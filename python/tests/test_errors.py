"""Bad input raises a Python exception that says what is wrong, eagerly and under
torch.compile, and never crashes the process. The CPU cases run without a GPU too."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the fusetune PyTorch tests need it")
import fusetune  # noqa: E402

from fusetune import ModelNew, fused_gemm_sigmoid_scale_add  # noqa: E402

# The fusetune package that this process imported (its built _C*.so beside it) and the
# directory holding it: a child process imports the same one wherever the tests run from.
PACKAGE_INIT = Path(fusetune.__file__).resolve()
PACKAGE_ROOT = PACKAGE_INIT.parents[1]


def bad_inputs(device):
    """(name, args, exception type, message fragment): each one thing wrong."""
    x = torch.rand(4, 8, device=device)
    w = torch.rand(16, 8, device=device)
    b = torch.rand(16, device=device)
    return [
        ("wrong K", (x, torch.rand(16, 7, device=device), b, 2.0), ValueError, "A has K=8 features"),
        ("bias size", (x, w, torch.rand(15, device=device), 2.0), ValueError, r"C \(the bias\) must have shape \(N,\)"),
        ("bias 2-D", (x, w, b[None], 2.0), ValueError, "C \\(the bias\\)"),
        ("weight 3-D", (x, w[None], b, 2.0), ValueError, "must be 2-D"),
        ("scalar input", (torch.tensor(1.0, device=device), w, b, 2.0), ValueError, "at least one dimension"),
        ("dtype mismatch", (x, w.half(), b, 2.0), TypeError, "same dtype"),
        ("bias dtype", (x, w, b.double(), 2.0), TypeError, "C must have A's dtype"),
        ("float64", (x.double(), w.double(), b.double(), 2.0), TypeError, "supported are float32"),
        ("int", (x.int(), w.int(), None, 2.0), TypeError, "supported are float32"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_bad_input_on_cpu_names_the_problem(case):
    name, args, error, message = bad_inputs("cpu")[case]
    with pytest.raises(error, match=message):
        fused_gemm_sigmoid_scale_add(*args)


def test_cpu_tensors_are_refused():
    x, w, b = torch.rand(4, 8), torch.rand(16, 8), torch.rand(16)
    with pytest.raises(RuntimeError, match="runs on CUDA tensors; got tensors on cpu"):
        fused_gemm_sigmoid_scale_add(x, w, b, 2.0)
    with pytest.raises(RuntimeError, match="runs on CUDA tensors"):
        ModelNew(8, 16, 2.0)(x)


def test_no_gpu_is_a_clear_error():
    """With no GPU visible, the package imports, builds models, and says why a call fails."""
    script = ("import pathlib, torch, fusetune\n"
              f"assert pathlib.Path(fusetune.__file__).resolve() == pathlib.Path({str(PACKAGE_INIT)!r})\n"
              "assert not torch.cuda.is_available()\n"
              "try:\n"
              "    fusetune.ModelNew(8, 16, 2.0)(torch.rand(2, 8))\n"
              "except RuntimeError as error:\n"
              "    print(error)\n")
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=path)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "this machine has no CUDA GPU (torch.cuda.is_available() is False)" in run.stdout


@pytest.mark.parametrize("case", range(9))
def test_bad_input_on_gpu_names_the_problem(gpu, case):
    name, args, error, message = bad_inputs(gpu)[case]
    with pytest.raises(error, match=message):
        fused_gemm_sigmoid_scale_add(*args)


def test_mixed_devices_are_refused(gpu):
    x, w, b = torch.rand(4, 8, device=gpu), torch.rand(16, 8, device=gpu), torch.rand(16, device=gpu)
    with pytest.raises(RuntimeError, match="A and B must be on the same device"):
        fused_gemm_sigmoid_scale_add(x.cpu(), w, b, 2.0)
    with pytest.raises(RuntimeError, match="A and B must be on the same device"):
        fused_gemm_sigmoid_scale_add(x, w.cpu(), b, 2.0)
    with pytest.raises(RuntimeError, match="C must be on A's device"):
        fused_gemm_sigmoid_scale_add(x, w, b.cpu(), 2.0)
    with pytest.raises(RuntimeError, match="same device"):
        ModelNew(8, 16, 2.0)(x)  # the model's parameters are still on the CPU


def test_policies_are_checked(gpu):
    x, w = torch.rand(4, 8, device=gpu), torch.rand(16, 8, device=gpu)
    with pytest.raises(ValueError, match="unknown policy 'fastest'"):
        fused_gemm_sigmoid_scale_add(x, w, None, 2.0, policy="fastest")
    with pytest.raises(ValueError, match="policy 'highest' does not apply to bf16"):
        fused_gemm_sigmoid_scale_add(x.bfloat16(), w.bfloat16(), None, 2.0, policy="highest")
    with pytest.raises(ValueError, match="policy 'half' does not apply to fp32"):
        fused_gemm_sigmoid_scale_add(x, w, None, 2.0, policy="half")


def test_bad_input_under_torch_compile_is_reported_while_tracing(gpu):
    torch._dynamo.reset()
    compiled = torch.compile(fused_gemm_sigmoid_scale_add, fullgraph=True)
    x, w = torch.rand(4, 8, device=gpu), torch.rand(16, 7, device=gpu)
    with pytest.raises(Exception, match="A has K=8 features"):
        compiled(x, w, None, 2.0)
    with pytest.raises(Exception, match="same dtype"):
        compiled(x, torch.rand(16, 8, device=gpu).half(), None, 2.0)


def test_process_survives_bad_input_and_still_computes(gpu):
    for _, args, error, _ in bad_inputs(gpu):
        with pytest.raises(error):
            fused_gemm_sigmoid_scale_add(*args)
    x, w = torch.rand(4, 8, device=gpu), torch.rand(16, 8, device=gpu)
    out = fused_gemm_sigmoid_scale_add(x, w, None, 2.0)
    z = x.double() @ w.double().T
    torch.testing.assert_close(out.double(), z + 2.0 * torch.sigmoid(z), atol=1e-4, rtol=1e-4)
    assert fusetune.resolve(4, 16, 8)[0]
