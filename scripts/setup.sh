#!/usr/bin/env bash
# Installs what fusetune builds with (Debian/Ubuntu packages; the CUDA toolkit is expected
# at /usr/local/cuda) and builds it into build/. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make python3 libboost-program-options-dev libsqlite3-dev libgtest-dev
          nlohmann-json3-dev libxxhash-dev clang-format)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
  echo "setup: no CUDA toolkit at $CUDA_HOME (nvcc missing); install CUDA 12.8+ or set CUDA_HOME" >&2
  exit 1
fi
export PATH="$CUDA_HOME/bin:$PATH"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" >/dev/null
cmake --build build -j"$(nproc)"
