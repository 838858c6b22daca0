#!/usr/bin/env bash
# Fails if any C++/CUDA source differs from .clang-format; `--fix` rewrites them instead.
# Exit code 77 (a skip for ctest) where clang-format is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format not installed: format not checked"; exit 77; }
mapfile -t files < <(find tuner db tests examples kernel_templates bench \
  \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -not -path '*/data/*' | sort)
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run -Werror "${files[@]}"
  echo "format: ${#files[@]} files match .clang-format"
fi
