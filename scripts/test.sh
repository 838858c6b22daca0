#!/usr/bin/env bash
# The test suite: set up, build, run every GoogleTest through ctest. Tests labelled "gpu"
# skip with the reason where there is no GPU; `scripts/test.sh -L gpu` runs only those.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
