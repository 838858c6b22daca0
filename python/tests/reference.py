"""What the tests compare with: the reference model, the tolerances of DESIGN.md, pairs of
Model and ModelNew holding the same parameters, and whether a problem's config reads a prepared
weight."""
import pytest
import torch

from fusetune import ModelNew
from fusetune.reference import Model, float64_reference  # noqa: F401 (re-exported for the tests)

# atol = rtol of the per-element check: 1e-4 for fp32 "highest", 1e-2 otherwise.
TOLERANCE = {"highest": 1e-4, "high": 1e-2, torch.bfloat16: 1e-2, torch.float16: 1e-2}


def pair(input_size, hidden_size, scale, device, dtype=torch.float32):
    """A fresh Model and a ModelNew holding the same parameters, both on `device` in `dtype`."""
    model = Model(input_size, hidden_size, scale).to(device, dtype)
    fused = ModelNew(input_size, hidden_size, scale).to(device, dtype)
    fused.load_state_dict(model.state_dict())
    return model, fused


def skip_unless_prepared(m, n, k, policy="highest"):
    """Skips the test where the fp32 config that (m, n, k) resolves to reads W as it is (no
    prepared weight, nothing cached): the compiled-in default of policy "highest" reads one
    on sm_90 (3xTF32)."""
    if torch.ops.fusetune.prepared_weight_bytes(m, n, k, torch.float32, policy, torch.cuda.current_device()) == 0:
        pytest.skip(f"the {policy} config of {m}x{n}x{k} on this GPU reads no prepared weight")
