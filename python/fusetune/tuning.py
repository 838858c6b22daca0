"""tune(): tunes the problems a model runs (or the shapes named) with the `fusetune tune`
command, into the tuning database the operator reads, then reloads that database."""
import os
import shutil
import subprocess
from pathlib import Path

import torch

from . import ops
from .model import ModelNew

_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def _policy(dtype, policy):
    if dtype != torch.float32:
        return "half"
    if policy != "auto":
        return policy
    return "highest" if torch.get_float32_matmul_precision() == "highest" else "high"


def _problems_of(model, example_inputs):
    """(m, n, k, dtype, policy) of every ModelNew call in one forward of `model`."""
    problems = []

    def record(module, args):
        x = args[0]
        n, k = module.gemm.weight.shape
        problems.append((x.numel() // max(k, 1), n, k, x.dtype, _policy(x.dtype, module.policy)))

    hooks = [module.register_forward_pre_hook(record) for module in model.modules() if isinstance(module, ModelNew)]
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return problems


def _find_cli(cli):
    if cli is not None:
        candidates = [cli]
    else:
        candidates = [os.environ.get("FUSETUNE_CLI"), shutil.which("fusetune"),
                      Path(__file__).resolve().parents[2] / "build" / "fusetune"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(f"fusetune: the `fusetune` command was not found (tried {', '.join(map(str, filter(None, candidates)))}); "
                            "build it (scripts/setup.sh), put it on PATH, or pass cli= or set $FUSETUNE_CLI")


def tune(model=None, *example_inputs, shapes=(), dtype=torch.float32, policy="auto", db=None, cli=None,
         max_minutes=None, max_trials=None, extra_args=(), quiet=True):
    """Tunes every problem a model runs, then makes the operator use the results.

    model, example_inputs: one forward of `model` on them records the (M, N, K, dtype, policy)
    of each ModelNew inside it. shapes: further (M, N, K) problems, of `dtype` and `policy`.
    db: the tuning database (default: the one the operator reads now). cli: the `fusetune`
    command (default: $FUSETUNE_CLI, then PATH, then build/fusetune of this repository).
    max_minutes / max_trials: budget per problem. Returns {(m, n, k, dtype name, policy):
    the command's last output line}. Raises RuntimeError with the command's message if a
    tuning run fails, FileNotFoundError if there is no `fusetune` command.
    """
    problems = _problems_of(model, example_inputs) if model is not None else []
    problems += [(m, n, k, dtype, _policy(dtype, policy)) for m, n, k in shapes]
    db = str(db) if db is not None else ops.database_path()
    command = _find_cli(cli)
    results = {}
    for m, n, k, problem_dtype, problem_policy in dict.fromkeys(problems):
        if min(m, n, k) < 1:
            continue  # empty problems run no kernel
        key = (m, n, k, _DTYPE_NAMES[problem_dtype], problem_policy)
        argv = [command, "tune", "--shape", f"{m}x{n}x{k}", "--dtype", key[3], "--policy", problem_policy, "--db", db]
        argv += ["--quiet"] if quiet else []
        argv += ["--max-minutes", str(max_minutes)] if max_minutes else []
        argv += ["--max-trials", str(max_trials)] if max_trials else []
        argv += list(extra_args)
        run = subprocess.run(argv, capture_output=True, text=True)
        if run.returncode != 0:
            message = (run.stderr or run.stdout).strip().splitlines()
            raise RuntimeError(f"fusetune: `{' '.join(argv)}` failed (exit {run.returncode}): "
                               f"{message[-1] if message else 'no output'}")
        lines = run.stdout.strip().splitlines()
        results[key] = lines[-1] if lines else ""
    ops.set_database(db)
    return results
