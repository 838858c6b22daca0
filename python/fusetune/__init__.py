"""fusetune for PyTorch: the tuned fused kernel out = z + s * sigmoid(z), z = x @ W.T + b, as a
registered operator (torch.ops.fusetune.fused_gemm_sigmoid_scale_add) and as ModelNew, a
drop-in for the nn.Linear -> sigmoid -> scale -> residual model. See README.md, "PyTorch"."""
from .model import ModelNew
from .ops import (clear_weight_cache, database_path, fast_path_enabled, fused_gemm_sigmoid_scale_add, resolve,
                  set_database, weight_cache_size)
from .tuning import tune

__all__ = ["ModelNew", "fused_gemm_sigmoid_scale_add", "tune", "set_database", "database_path", "resolve",
           "weight_cache_size", "clear_weight_cache", "fast_path_enabled"]
