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


@pytest.fixture
def compiled_in_defaults(gpu, tmp_path):
    """The operator reads an empty tuning database during the test, so that every shape runs
    the compiled-in default config (or the universal one) whatever $FUSETUNE_DB has tuned."""
    import fusetune

    fusetune.set_database(tmp_path / "empty.db")
    yield gpu
    fusetune.set_database()
