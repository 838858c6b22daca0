"""The operator inside PyTorch's machinery: torch.compile(fullgraph=True), CUDA graph capture,
the current (side) stream, autograd against the reference model, state_dict both ways, and
PyTorch's own operator checks (torch.library.opcheck); the prepared weight under CUDA graphs,
memory pools and streams."""
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the fusetune PyTorch tests need it")
import fusetune  # noqa: E402
from reference import TOLERANCE, Model, pair, skip_unless_prepared  # noqa: E402

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


def capture(fused, static_x, *, keep_prepared=True):
    """A CUDA graph of fused(static_x), and its output. Before the capture, the warm-up call on
    a side stream that PyTorch asks for (it compiles and loads the kernels and prepares the
    weight); keep_prepared=False clears the prepared-weight cache after it."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        fused(static_x)
    torch.cuda.current_stream().wait_stream(side)
    if not keep_prepared:
        fusetune.clear_weight_cache()
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = fused(static_x)
    return graph, static_out


def test_cuda_graph_capture_and_replay():
    model, fused = pair(256, 128, 2.0, "cuda")
    static_x = torch.rand(64, 256, device="cuda")
    graph, static_out = capture(fused, static_x)
    for draw in range(3):
        fresh = torch.rand(64, 256, device="cuda")
        static_x.copy_(fresh)
        graph.replay()
        with torch.no_grad():
            torch.testing.assert_close(static_out, model(fresh), atol=TOL, rtol=TOL)


def test_torch_compile_reduce_overhead_uses_cuda_graphs(compiled_in_defaults):
    """CUDA graph trees run the first call in the graph's private memory pool and refuse any
    allocation from it that outlives the call: the prepared weight (which the sm_90 default
    for fp32 "highest" reads) must be cached outside that pool."""
    torch._dynamo.reset()
    fusetune.clear_weight_cache()
    model, fused = pair(128, 64, 2.0, "cuda")
    compiled = torch.compile(fused, mode="reduce-overhead", fullgraph=True)
    with torch.no_grad():
        for _ in range(4):
            x = torch.rand(16, 128, device="cuda")
            torch.testing.assert_close(compiled(x).clone(), model(x), atol=TOL, rtol=TOL)
    prepares = torch.ops.fusetune.prepared_weight_bytes(16, 64, 128, torch.float32, "highest", 0) > 0
    assert fusetune.weight_cache_size() == (1 if prepares else 0)


def test_cuda_graph_capture_prepares_inside_the_graph_when_nothing_is_cached(compiled_in_defaults):
    """Captured with no cached preparation, the graph prepares the weight on every replay (into
    memory of its own pool) and caches nothing, so it follows in-place weight updates."""
    skip_unless_prepared(64, 128, 256)
    model, fused = pair(256, 128, 2.0, "cuda")
    static_x = torch.rand(64, 256, device="cuda")
    graph, static_out = capture(fused, static_x, keep_prepared=False)
    assert fusetune.weight_cache_size() == 0
    with torch.no_grad():
        for draw in range(3):
            static_x.copy_(torch.rand(64, 256, device="cuda"))
            model.gemm.weight.mul_(0.5).add_(0.01 * draw)
            fused.gemm.weight.copy_(model.gemm.weight)
            graph.replay()
            torch.testing.assert_close(static_out, model(static_x), atol=TOL, rtol=TOL)
    assert fusetune.weight_cache_size() == 0


def test_prepared_weight_stays_outside_an_active_memory_pool(compiled_in_defaults):
    """A first call under torch.cuda.use_mem_pool leaves nothing allocated in that pool once its
    output is gone: the cached preparation lives in memory of its own."""
    skip_unless_prepared(64, 128, 256)
    fusetune.clear_weight_cache()
    model, fused = pair(256, 128, 2.0, "cuda")
    x = torch.rand(64, 256, device="cuda")
    pool = torch.cuda.MemPool()
    with torch.no_grad():
        with torch.cuda.use_mem_pool(pool):
            out = fused(x)
        torch.testing.assert_close(out, model(x), atol=TOL, rtol=TOL)
    del out
    live = [block for segment in pool.snapshot(include_traces=False) for block in segment["blocks"]
            if block["state"] == "active_allocated"]
    assert live == []
    assert fusetune.weight_cache_size() == 1
    with torch.no_grad():  # the cached bytes are still there and still right
        torch.testing.assert_close(fused(x), model(x), atol=TOL, rtol=TOL)


def test_prepared_on_one_stream_read_on_another(compiled_in_defaults):
    """The weight is prepared on a side stream behind a long sleep; a call on the default
    stream right after, with no synchronization (its own inputs are ready there), must wait
    for that preparation instead of reading bytes not written yet."""
    skip_unless_prepared(128, 256, 512)
    model, fused = pair(512, 256, 2.0, "cuda")
    x = torch.rand(128, 512, device="cuda")
    with torch.no_grad():  # loads the kernels (this shape's GEMM and preparation) beforehand
        fusetune.fused_gemm_sigmoid_scale_add(x, torch.rand_like(fused.gemm.weight), None, 2.0)
    fusetune.clear_weight_cache()
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.no_grad():
        with torch.cuda.stream(side):
            torch.cuda._sleep(50_000_000)  # about 25 ms at 2 GHz
            fused(x)
            done = torch.cuda.Event()
            done.record(side)
        out = fused(x)
    finished_early = done.query()
    torch.cuda.synchronize()
    if finished_early:
        pytest.skip("the side stream finished before the second call was queued: nothing to wait for")
    assert fusetune.weight_cache_size() == 1
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), atol=TOL, rtol=TOL)


def test_runs_on_the_current_side_stream():
    """The input is written on a side stream behind a long sleep; the operator, called on that
    stream, must see it: on any other stream it would read the zeros still there."""
    model, fused = pair(512, 256, 2.0, "cuda")
    fresh = torch.rand(128, 512, device="cuda")
    x = torch.zeros_like(fresh)
    # A first call compiles the kernel and prepares the weight, host work that may wait for the
    # device (cudaMalloc): do it before the sleep, so the side stream is still busy below.
    with torch.no_grad():
        fused(fresh)
    torch.cuda.synchronize()
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
