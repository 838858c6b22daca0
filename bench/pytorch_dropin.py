"""Times the reference Model (eager and torch.compile) against fusetune's ModelNew at the headline
problem (1024 x 8192 -> 8192, s = 2.0, inputs torch.rand) for fp32 "highest", fp32 "high" and
bf16, in one process, and measures the operator's host overhead per call against launching the
kernel through the C++ runtime directly. Prints a markdown table; $OUT/dropin.json keeps it.

    PYTHONPATH=python python3 bench/pytorch_dropin.py     (after python/setup.py build_ext --inplace)
"""
import contextlib
import json
import os
import statistics
import time

import torch

import fusetune
from fusetune.reference import Model, float64_reference

M, K, N, S = 1024, 8192, 8192, 2.0
FLOP = 2 * M * N * K
flush = torch.empty(512 * 1024 * 1024 // 4, device="cuda")  # larger than L2, zeroed before each sample


def bench(fn, reps=30, warm=5):
    """Median, min, max milliseconds of `fn` (CUDA events, L2 flushed outside the timed region)."""
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        flush.zero_()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2], times[0], times[-1]


def host_us_per_call(variants, calls=200, rounds=15):
    """Host microseconds per call of each variant, {name: (fn, context)}: each batch of `calls`
    queues behind a GPU sleep, so the GPU's pace never holds the host back; variants take turns
    within each round, so drifting clocks hit all alike; the median of `rounds` batches.
    A variant whose fn takes `calls` returns its own per-call time (the C++ loop)."""
    samples = {name: [] for name in variants}
    for name, (fn, context) in variants.items():  # warm-up
        with context():
            fn(calls) if name.startswith("C++") else [fn() for _ in range(50)]
    torch.cuda.synchronize()
    for _ in range(rounds):
        for name, (fn, context) in variants.items():
            torch.cuda._sleep(40_000_000)  # about 20 ms at 2 GHz, longer than a batch takes to queue
            with context():
                if name.startswith("C++"):
                    samples[name].append(fn(calls))
                else:
                    start = time.perf_counter()
                    for _ in range(calls):
                        fn()
                    samples[name].append((time.perf_counter() - start) / calls * 1e6)
            torch.cuda.synchronize()
    return {name: statistics.median(values) for name, values in samples.items()}


def main():
    torch.manual_seed(0)
    rows, notes = [], []
    x32 = torch.rand(M, K, device="cuda")
    base = Model(K, N, S).cuda()
    with torch.no_grad():
        reference = float64_reference(x32, base.gemm.weight, base.gemm.bias, S)

    def rel_err(out):
        return ((out.double() - reference).norm() / reference.norm()).item()

    for label, dtype, precision in [("fp32 highest", torch.float32, "highest"), ("fp32 high", torch.float32, "high"),
                                    ("bf16", torch.bfloat16, "highest")]:
        torch.set_float32_matmul_precision(precision)
        model = Model(K, N, S).cuda().to(dtype)
        model.load_state_dict(base.state_dict())
        fused = fusetune.ModelNew(K, N, S).cuda().to(dtype)
        fused.load_state_dict(base.state_dict())
        x = x32.to(dtype)
        with torch.no_grad():
            eager = bench(lambda: model(x))
            rows.append((label, "Model eager", *eager, rel_err(model(x)), eager[0]))
            start = time.time()
            compiled = torch.compile(model)
            compiled(x)
            notes.append(f"{label}: torch.compile(Model) compiled in {time.time() - start:.1f} s")
            timing = bench(lambda: compiled(x))
            rows.append((label, "Model torch.compile", *timing, rel_err(compiled(x)), eager[0]))
            try:
                out = fused(x)
                timing = bench(lambda: fused(x))
                config = fusetune.resolve(M, N, K, dtype)
                rows.append((label, f"ModelNew ({config[0]}, {config[1]})", *timing, rel_err(out), eager[0]))
            except (RuntimeError, ValueError) as error:
                rows.append((label, "ModelNew", None, None, None, None, eager[0]))
                notes.append(f"{label}: ModelNew failed: {str(error).splitlines()[0]}")
        del model, fused, compiled, x
        torch.cuda.empty_cache()
    torch.set_float32_matmul_precision("highest")

    print("| dtype / policy | what | median ms | min | max | TFLOP/s | time / Model eager | rel. error vs float64 |")
    print("|---|---|---|---|---|---|---|---|")
    for label, what, median, low, high, error, eager in rows:
        if median is None:
            print(f"| {label} | {what} | failed | | | | | |")
            continue
        print(f"| {label} | {what} | {median:.4f} | {low:.4f} | {high:.4f} | {FLOP / median / 1e9:.1f} | "
              f"{median / eager:.3f} | {error:.2e} |")
    for note in notes:
        print(f"- {note}")

    # Host overhead on a tiny problem: every variant queues behind a GPU sleep (host_us_per_call),
    # the C++ runtime's own launch path included.
    small = fusetune.ModelNew(64, 64, S).cuda()
    xs = torch.rand(8, 64, device="cuda")
    w, b = small.gemm.weight.detach(), small.gemm.bias.detach()
    out = torch.empty(8, 64, device="cuda")
    op = torch.ops.fusetune.fused_gemm_sigmoid_scale_add.default
    reference_small = Model(64, 64, S).cuda()
    no_grad, inference, grad = torch.no_grad, torch.inference_mode, contextlib.nullcontext
    overhead = host_us_per_call({
        "C++ runtime run() alone": (lambda n: fusetune.ops.runtime_launch_us(xs, w, b, out, S, "highest", n), grad),
        "C++ operator call through the dispatcher, inference_mode": (
            lambda n: torch.ops.fusetune.operator_launch_us(xs, w, b, S, "auto", n), inference),
        "op (torch.ops...default), inference_mode": (lambda: op(xs, w, b, S, "auto"), inference),
        "fused_gemm_sigmoid_scale_add, inference_mode": (
            lambda: fusetune.fused_gemm_sigmoid_scale_add(xs, w, b, S), inference),
        "ModelNew, inference_mode": (lambda: small(xs), inference),
        "ModelNew, no_grad": (lambda: small(xs), no_grad),
        "ModelNew, grad enabled (parameters require grad)": (lambda: small(xs), grad),
        "nn.Linear alone, no_grad": (lambda: reference_small.gemm(xs), no_grad),
        "Model (nn.Linear, sigmoid, mul, add), no_grad": (lambda: reference_small(xs), no_grad),
        "Model, grad enabled": (lambda: reference_small(xs), grad),
    })
    print(f"\nfast path (fusetune._fast) built for this Python: {fusetune.fast_path_enabled()}")
    print("\n| host time per call (8x64x64 fp32) | us | over the runtime alone |")
    print("|---|---|---|")
    for name, value in overhead.items():
        print(f"| {name} | {value:.2f} | {value - overhead['C++ runtime run() alone']:+.2f} |")

    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "dropin.json"), "w") as file:
            json.dump({"rows": rows, "notes": notes, "host_us": overhead}, file, indent=1)


if __name__ == "__main__":
    main()
