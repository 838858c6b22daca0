"""The PyTorch model that ModelNew replaces (as issue 4 states it), and its float64 value: the
references of the tests and of bench/pytorch_dropin.py."""
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, input_size, hidden_size, scaling_factor):
        super().__init__()
        self.gemm = nn.Linear(input_size, hidden_size)
        self.scaling_factor = scaling_factor

    def forward(self, x):
        x = self.gemm(x)
        original_x = x
        x = torch.sigmoid(x)
        x = x * self.scaling_factor
        return x + original_x


def float64_reference(x, weight, bias, scale):
    """z + scale * sigmoid(z), z = x @ weight.T + bias, computed in float64."""
    z = x.double() @ weight.double().T + (0 if bias is None else bias.double())
    return z + scale * torch.sigmoid(z)
