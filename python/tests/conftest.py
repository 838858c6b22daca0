"""Shared fixtures of the PyTorch tests. Each test module skips itself (with the reason) where
PyTorch is not installed; GPU tests skip where torch.cuda.is_available() is False."""
import pytest


@pytest.fixture
def gpu():
    """Skips the test where there is no CUDA GPU; restores the settings tests change."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU (torch.cuda.is_available() is False)")
    precision = torch.get_float32_matmul_precision()
    yield torch.device("cuda")
    torch.set_float32_matmul_precision(precision)
