"""What the tests compare with: the reference model, the tolerances of DESIGN.md, and pairs of
Model and ModelNew holding the same parameters."""
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
