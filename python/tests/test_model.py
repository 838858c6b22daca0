"""ModelNew as a module: the reference model's constructor and parameter names, so that state
dicts load both ways. Needs no GPU."""
import inspect

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed; the fusetune PyTorch tests need it")
from reference import Model  # noqa: E402

from fusetune import ModelNew  # noqa: E402


def test_state_dict_round_trip():
    model = Model(64, 32, 2.0)
    fused = ModelNew(64, 32, 2.0)
    assert list(fused.state_dict()) == list(model.state_dict()) == ["gemm.weight", "gemm.bias"]
    fused.load_state_dict(model.state_dict(), strict=True)
    back = Model(64, 32, 2.0)
    back.load_state_dict(fused.state_dict(), strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value) and torch.equal(fused.state_dict()[key], value)
    assert fused.scaling_factor == 2.0


def test_constructor_matches_the_model():
    model_parameters = list(inspect.signature(Model).parameters)
    assert list(inspect.signature(ModelNew).parameters)[:3] == model_parameters
    fused = ModelNew(8, 4, -0.5)
    assert fused.gemm.in_features == 8 and fused.gemm.out_features == 4 and fused.scaling_factor == -0.5
    assert "scaling_factor=-0.5" in repr(fused)
