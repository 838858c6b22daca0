"""The operator inside PyTorch's machinery: torch.compile(fullgraph=True), CUDA graph capture,
the current (side) stream, autograd against the reference model, state_dict both ways, and
PyTorch's own operator checks (torch.library.opcheck)."""
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the fusetune PyTorch tests need it")
import fusetune  # noqa: E402
from reference import TOLERANCE, Model, pair  # noqa: E402

from fusetune import ModelNew  # noqa: E402

pytestmark = pytest.mark.usefixtures("gpu")
TOL = TOLERANCE["highest"]


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_torch_compile_fullgraph(dynamic):
    torch._dynamo.reset()
    model, fused = pair(256, 192, 2.0, "cuda")
    compiled = torch.compile(fused, fullgraph=True, dynamic=dynamic)
    with torch.no_grad():
        for m in (64, 33, 128):
            x = torch.rand(m, 256, device="cuda")
            torch.testing.assert_close(compiled(x), model(x), atol=TOL, rtol=TOL)


def test_torch_compile_fullgraph_inside_a_larger_model_with_backward():
    torch._dynamo.reset()
    torch.manual_seed(1)
    model, fused = pair(128, 96, 2.0, "cuda")

    def step(layer, x):
        return (layer(torch.relu(x)) * 3).sum()

    compiled = torch.compile(step, fullgraph=True)
    x = torch.rand(40, 128, device="cuda")
    compiled(fused, x).backward()
    step(model, x).backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(fused.get_parameter(name).grad, parameter.grad, atol=TOL, rtol=TOL)


def test_cuda_graph_capture_and_replay():
    model, fused = pair(256, 128, 2.0, "cuda")
    static_x = torch.rand(64, 256, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):  # warm-up: compiles and loads the kernel
        fused(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = fused(static_x)
    for draw in range(3):
        fresh = torch.rand(64, 256, device="cuda")
        static_x.copy_(fresh)
        graph.replay()
        with torch.no_grad():
            torch.testing.assert_close(static_out, model(fresh), atol=TOL, rtol=TOL)


def test_torch_compile_reduce_overhead_uses_cuda_graphs():
    torch._dynamo.reset()
    model, fused = pair(128, 64, 2.0, "cuda")
    compiled = torch.compile(fused, mode="reduce-overhead", fullgraph=True)
    with torch.no_grad():
        for _ in range(4):
            x = torch.rand(16, 128, device="cuda")
            torch.testing.assert_close(compiled(x).clone(), model(x), atol=TOL, rtol=TOL)


def test_runs_on_the_current_side_stream():
    """The input is written on a side stream behind a long sleep; the operator, called on that
    stream, must see it: on any other stream it would read the zeros still there."""
    model, fused = pair(512, 256, 2.0, "cuda")
    fresh = torch.rand(128, 512, device="cuda")
    x = torch.zeros_like(fresh)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # about 25 ms at 2 GHz
        x.copy_(fresh)
        out = fused(x)
        done = torch.cuda.Event()
        done.record(side)
    assert torch.cuda.current_stream().query(), "work went to the default stream"
    assert not done.query(), "the side stream finished too early for the test to mean anything"
    side.synchronize()
    with torch.no_grad():
        torch.testing.assert_close(out, model(fresh), atol=TOL, rtol=TOL)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_autograd_matches_model(bias):
    torch.manual_seed(7)
    model = Model(160, 96, -1.25).cuda()
    if not bias:
        model.gemm.bias = None
    fused = ModelNew(160, 96, -1.25).cuda()
    if not bias:
        fused.gemm.bias = None
    fused.load_state_dict(model.state_dict())
    x = torch.rand(3, 20, 160, device="cuda")
    grad = torch.randn(3, 20, 96, device="cuda")
    x_ref = x.clone().requires_grad_()
    x_new = x.clone().requires_grad_()
    model(x_ref).backward(grad)
    fused(x_new).backward(grad)
    torch.testing.assert_close(x_new.grad, x_ref.grad, atol=TOL, rtol=TOL)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(fused.get_parameter(name).grad, parameter.grad, atol=TOL, rtol=TOL)


def test_autograd_gradcheck_in_float32():
    # float64 is not a supported dtype; a small problem keeps fp32 finite differences usable.
    x = torch.rand(3, 5, device="cuda", requires_grad=True)
    weight = (torch.randn(4, 5, device="cuda") / 3).requires_grad_()
    bias = torch.randn(4, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda *args: fusetune.fused_gemm_sigmoid_scale_add(*args, 2.0),
                                    (x, weight, bias), eps=1e-2, atol=5e-3, rtol=5e-3)


def test_opcheck():
    x = torch.rand(8, 32, device="cuda", requires_grad=True)
    weight = torch.randn(16, 32, device="cuda", requires_grad=True)
    bias = torch.randn(16, device="cuda", requires_grad=True)
    for args in [(x, weight, bias, 2.0), (x.detach(), weight.detach(), None, -0.5)]:
        torch.library.opcheck(torch.ops.fusetune.fused_gemm_sigmoid_scale_add.default, args)
