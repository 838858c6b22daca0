#!/usr/bin/env bash
# The test suite: set up, build, run every GoogleTest through ctest. Tests labelled "gpu"
# skip with the reason where there is no GPU; `scripts/test.sh -L gpu` runs only those.
# Then the PyTorch package's tests (python/tests), where python3 has PyTorch and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
if python3 -c 'import torch, pytest' >/dev/null 2>&1; then
  (cd python && FUSETUNE_BUILD_DIR=../build python3 setup.py -q build_ext --inplace >/dev/null)
  python3 -m pytest python/tests -q -rs -p no:cacheprovider
else
  echo "python tests skipped: python3 has no PyTorch or no pytest (pip install torch pytest to run python/tests)"
fi
