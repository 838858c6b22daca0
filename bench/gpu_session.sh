#!/usr/bin/env bash
# One GPU-machine session (see GPU.md): unpack the bundle from bench/gpu_bundle.sh, then run
# the steps named as arguments, logging each to $OUT. Steps: tests, tune, tune-bf16,
# tune-high, tune-highest, bench, example, probe, wgmma-probe. The database is $DB (default
# $OUT/fusetune.db; carry a copy to go on from an earlier session's).
#   tests    ctest -L gpu (kernel correctness, fault isolation, kill-and-resume)
#   tune     fusetune tune of the headline problem (fp32 highest: every family) into $DB, then list
#   tune-bf16, tune-high, tune-highest   the headline problem for bf16 (half), fp32 high, fp32 highest
#   bench    fusetune bench: each policy's winner against its baselines, one process, markdown
#   example  the load-time API on an untuned shape, against that database
#   probe    bench/ffma_probe.cu built with nvcc and run (cuBLAS vs hand-picked configs)
#   pytest   python/tests (carry python/fusetune/_C.abi3.so, built here against the same torch;
#            fusetune._fast is built there, for that machine's Python)
#   dropin   bench/pytorch_dropin.py: Model vs ModelNew at the headline shape, with $DB
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
if [ -d .gpu-build ]; then rm -rf build && mv .gpu-build build; fi
mkdir -p /work && { [ -e /work/main ] || ln -s "$PWD" /work/main; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
export FUSETUNE_CACHE_DIR=/tmp/fusetune-cache
DB="${DB:-$OUT/fusetune.db}"
if [ "$DB" != "$OUT/fusetune.db" ]; then cp "$DB" "$OUT/fusetune.db" && DB="$OUT/fusetune.db"; fi
# fusetune._fast is built for one Python: build it for this machine's (the carried _C serves all).
build_fast_path() {
  (cd python && FUSETUNE_FAST_PATH_ONLY=1 python3 setup.py -q build_ext --inplace > "$OUT/fast-path-build.log" 2>&1) ||
    echo "fusetune._fast did not build (see fast-path-build.log): calls go through torch.ops only"
}
for step in "$@"; do
  echo "=== $step $(date -u +%FT%TZ)"
  case "$step" in
    tests) ctest --test-dir build -L gpu --output-on-failure 2>&1 | tee "$OUT/tests.log" | tail -25 ;;
    tune) build/fusetune tune --db "$DB" ${TUNE_ARGS:-} 2>&1 | tee "$OUT/tune.log" | tail -30
          build/fusetune list --db "$DB" --limit 0 > "$OUT/list.txt" 2>&1 ;;
    tune-bf16|tune-high|tune-highest)
      case "$step" in
        tune-bf16) args=(--dtype bf16) ;;
        tune-high) args=(--dtype fp32 --policy high) ;;
        *) args=(--dtype fp32 --policy highest) ;;
      esac
      build/fusetune tune --db "$DB" --quiet "${args[@]}" ${TUNE_ARGS:-} 2>&1 | tee "$OUT/$step.log" | tail -16
      build/fusetune list --db "$DB" "${args[@]}" --limit 0 > "$OUT/list-$step.txt" 2>&1 ;;
    bench) build/fusetune bench --db "$DB" --markdown "$OUT/bench.md" 2>&1 | tee "$OUT/bench.log" | tail -20 ;;
    example) build/fusetune_example --db "$OUT/fusetune.db" 2>&1 | tee "$OUT/example.log"
             build/fusetune_example --db "$OUT/fusetune.db" 1000x8000x8192 2>&1 | tee -a "$OUT/example.log" ;;
    probe) nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I kernel_templates bench/ffma_probe.cu \
             -lcublas -o /tmp/ffma_probe && /tmp/ffma_probe 2>&1 | tee "$OUT/probe.log" | tail -30 ;;
    wgmma-probe) nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I kernel_templates bench/wgmma_probe.cu \
             -lcublas -o /tmp/wgmma_probe && /tmp/wgmma_probe 2>&1 | tee "$OUT/wgmma-probe.log" | tail -30 ;;
    pytest) build_fast_path
            FUSETUNE_DB="$DB" PYTHONPATH=python python3 -m pytest python/tests -q -rs -p no:cacheprovider 2>&1 \
              | tee "$OUT/pytest.log" | tail -15 ;;
    dropin) build_fast_path
            FUSETUNE_DB="$DB" PYTHONPATH=python python3 bench/pytorch_dropin.py 2>&1 | tee "$OUT/dropin.log" | tail -30 ;;
    *) echo "unknown step $step" ;;
  esac
done
