"""ModelNew and fused_gemm_sigmoid_scale_add against the reference Model: every dtype and
policy over fresh random draws, odd shapes, batch dimensions, views, empty problems, config
lookup from the tuning database and its fallbacks, and the prepared-weight cache."""
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the fusetune PyTorch tests need it")
import fusetune  # noqa: E402
from reference import TOLERANCE, float64_reference, pair  # noqa: E402

pytestmark = pytest.mark.usefixtures("gpu")
DRAWS = 5


def assert_close(actual, expected, tolerance):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert torch.isfinite(actual).all()
    torch.testing.assert_close(actual, expected, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("precision", ["highest", "high"])
def test_fp32_matches_model_over_five_draws(precision):
    torch.set_float32_matmul_precision(precision)
    for draw in range(DRAWS):
        torch.manual_seed(100 + draw)
        model, fused = pair(1024, 768, 2.0, "cuda")
        x = torch.rand(384, 1024, device="cuda")
        with torch.no_grad():
            out = fused(x)
            # The reference of "highest" is the model itself (cuBLAS SGEMM); that of "high"
            # (TF32 on both sides, with different rounding) is float64.
            expected = model(x) if precision == "highest" else float64_reference(
                x, model.gemm.weight, model.gemm.bias, 2.0).float()
        assert_close(out, expected, TOLERANCE[precision])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_dtypes_match_model_cast_to_dtype_over_five_draws(dtype):
    for draw in range(DRAWS):
        torch.manual_seed(200 + draw)
        model, fused = pair(1024, 768, 2.0, "cuda", dtype)
        x = torch.rand(384, 1024, device="cuda").to(dtype)
        with torch.no_grad():
            assert_close(fused(x), model(x), TOLERANCE[dtype])


def test_explicit_policy_overrides_matmul_precision(compiled_in_defaults):
    torch.set_float32_matmul_precision("high")
    model, _ = pair(512, 256, 2.0, "cuda")
    x = torch.rand(64, 512, device="cuda")
    out = fusetune.fused_gemm_sigmoid_scale_add(x, model.gemm.weight, model.gemm.bias, 2.0, policy="highest")
    expected = float64_reference(x, model.gemm.weight, model.gemm.bias, 2.0).float()
    assert_close(out.detach(), expected, TOLERANCE["highest"])
    explicit = fusetune.resolve(64, 256, 512, policy="highest")[0]
    assert explicit != fusetune.resolve(64, 256, 512)[0]  # "auto" follows "high": one TF32 product
    assert explicit.startswith(("ffma", "wgmma_3xtf32"))  # the families of policy "highest"
    if torch.cuda.get_device_capability() == (9, 0):
        assert explicit.startswith("wgmma_3xtf32")  # the sm_90 compiled-in default for "highest"
    torch.set_float32_matmul_precision("highest")
    assert fusetune.resolve(64, 256, 512)[0] == explicit


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 7), (17, 33, 65), (129, 1, 257), (1, 300, 13), (250, 130, 3)])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("scale", [2.0, -1.5, 0.0])
def test_odd_shapes(m, n, k, bias, scale):
    torch.manual_seed(m * 1000 + n + k)
    x = torch.rand(m, k, device="cuda")
    weight = torch.randn(n, k, device="cuda") / k**0.5
    b = torch.randn(n, device="cuda") if bias else None
    out = fusetune.fused_gemm_sigmoid_scale_add(x, weight, b, scale)
    assert_close(out, float64_reference(x, weight, b, scale).float(), TOLERANCE["highest"])


def test_batch_dimensions_and_non_contiguous_inputs():
    model, fused = pair(96, 80, 2.0, "cuda")
    base = torch.rand(4, 96, 6, device="cuda")
    views = {
        "3-D": torch.rand(2, 5, 96, device="cuda"),
        "transposed": base.transpose(1, 2),  # (4, 6, 96), strides not row-major
        "strided rows": torch.rand(40, 96, device="cuda")[::3],
        "misaligned offset": torch.rand(1 + 7 * 96, device="cuda")[1:].view(7, 96),  # 4-byte aligned only
        "1-D": torch.rand(96, device="cuda"),
    }
    with torch.no_grad():
        for name, x in views.items():
            assert not x.is_contiguous() or name in ("3-D", "misaligned offset", "1-D")
            out = fused(x)
            assert out.shape == (*x.shape[:-1], 80), name
            assert_close(out, model(x), TOLERANCE["highest"])
        # A non-contiguous weight (a transposed view of a (K, N) tensor).
        weight_t = torch.randn(96, 80, device="cuda") / 10
        x = views["3-D"]
        out = fusetune.fused_gemm_sigmoid_scale_add(x, weight_t.T, None, 2.0)
        assert_close(out, float64_reference(x, weight_t.T, None, 2.0).float(), TOLERANCE["highest"])


def test_empty_problems():
    weight = torch.randn(16, 8, device="cuda")
    bias = torch.randn(16, device="cuda")
    empty = fusetune.fused_gemm_sigmoid_scale_add(torch.rand(0, 8, device="cuda"), weight, bias, 2.0)
    assert empty.shape == (0, 16) and empty.device.type == "cuda"
    assert fusetune.fused_gemm_sigmoid_scale_add(torch.rand(3, 0, 8, device="cuda"), weight, bias, 2.0).shape == (
        3, 0, 16)
    no_outputs = fusetune.fused_gemm_sigmoid_scale_add(torch.rand(5, 8, device="cuda"), weight[:0], bias[:0], 2.0)
    assert no_outputs.shape == (5, 0)
    # K = 0: z is the bias alone.
    x = torch.rand(5, 0, device="cuda")
    out = fusetune.fused_gemm_sigmoid_scale_add(x, torch.rand(16, 0, device="cuda"), bias, 2.0)
    assert_close(out, (bias + 2.0 * torch.sigmoid(bias)).expand(5, 16), TOLERANCE["highest"])


def test_nan_and_saturation_follow_the_model():
    weight = torch.eye(4, device="cuda")
    x = torch.tensor([[float("nan"), 0.0, 0.0, 0.0], [0.5, 1e4, -1e4, 0.0]], device="cuda")
    out = fusetune.fused_gemm_sigmoid_scale_add(x, weight, None, 2.0)
    assert torch.isnan(out[0]).all()  # NaN * 0 is NaN: the whole row, as in the model
    expected = [0.5 + 2.0 * torch.sigmoid(torch.tensor(0.5)).item(), 1e4 + 2.0, -1e4, 1.0]
    assert out[1].tolist() == pytest.approx(expected, abs=1e-6)


def test_untuned_shape_runs_through_fallbacks(tmp_path):
    fusetune.set_database(tmp_path / "missing.db")
    try:
        name, source, _ = fusetune.resolve(77, 99, 131)
        assert source in ("default", "universal") and name
        model, fused = pair(131, 99, 2.0, "cuda")
        x = torch.rand(77, 131, device="cuda")
        with torch.no_grad():
            assert_close(fused(x), model(x), TOLERANCE["highest"])
    finally:
        fusetune.set_database()
    assert fusetune.database_path() != str(tmp_path / "missing.db")


def test_corrupt_database_is_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RuntimeError, match="fusetune: tuning database"):
        fusetune.set_database(path)
    fusetune.set_database()


def check_prepared_weight_cache(m, n, k):
    """The fp32 "highest" config of (m, n, k), which must read a prepared weight: one
    preparation per weight, reused by later calls, redone when the weight changes in place
    or is replaced, dropped when the weight dies; the output follows the weight's values."""
    torch.set_float32_matmul_precision("highest")
    assert torch.ops.fusetune.prepared_weight_bytes(m, n, k, torch.float32, "highest", 0) > 0
    fusetune.clear_weight_cache()
    model, fused = pair(k, n, 2.0, "cuda")
    x = torch.rand(m, k, device="cuda")
    with torch.no_grad():
        before = model(x)
        assert_close(fused(x), before, TOLERANCE["highest"])
        assert fusetune.weight_cache_size() == 1
        # Reused, not prepared again: a write through .data moves no version counter, so the
        # kernel still reads the bytes prepared from the weight as it was.
        fused.gemm.weight.data.mul_(0.5)
        assert_close(fused(x), before, TOLERANCE["highest"])
        assert fusetune.weight_cache_size() == 1
        for step in range(3):
            # In-place updates, as an optimizer step or load_state_dict does them.
            model.gemm.weight.mul_(0.5).add_(0.01 * step)
            fused.gemm.weight.copy_(model.gemm.weight)
            for _ in range(2):
                assert_close(fused(x), model(x), TOLERANCE["highest"])
            assert fusetune.weight_cache_size() == 1
        # A new weight tensor: prepared for it; the old one's entry goes with the old tensor.
        fused.gemm.weight = torch.nn.Parameter(torch.randn(n, k, device="cuda") / k**0.5)
        model.gemm.weight.copy_(fused.gemm.weight)
        assert_close(fused(x), model(x), TOLERANCE["highest"])
        assert fusetune.weight_cache_size() == 1
        del fused
        assert fusetune.weight_cache_size() == 0  # the prepared copy dies with its weight


def test_prepared_weight_cache_with_the_default_config(compiled_in_defaults):
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("the compiled-in default of fp32 highest reads a prepared weight on sm_90 (3xTF32)")
    name, source, detail = fusetune.resolve(64, 128, 256, policy="highest")
    assert name.startswith("wgmma_3xtf32") and source == "default", (name, source, detail)
    check_prepared_weight_cache(64, 128, 256)


def test_prepared_weight_cache_with_a_tuned_3xtf32_config(tmp_path):
    """Tunes the 3xTF32 family (the one that prepares its weight) for one shape into a fresh
    database, so that the operator runs it."""
    try:
        fusetune.tune(shapes=[(64, 128, 256)], policy="highest", db=tmp_path / "3xtf32.db", max_trials=3,
                      extra_args=["--space", "wgmma_3xtf32"])
    except FileNotFoundError as error:
        pytest.skip(str(error))
    try:
        name, source, detail = fusetune.resolve(64, 128, 256, policy="highest")
        assert name.startswith("wgmma_3xtf32") and source == "exact", (name, source, detail)
        check_prepared_weight_cache(64, 128, 256)
    finally:
        fusetune.set_database()
