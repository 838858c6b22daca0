#!/usr/bin/env bash
# The main job: set up, build, then tune the headline problem (1024x8192x8192, fp32,
# policy highest) into the default database (./fusetune.db) and print the winner against
# cuBLAS. Extra arguments go to `fusetune tune` (see `build/fusetune tune --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/fusetune tune "$@"
