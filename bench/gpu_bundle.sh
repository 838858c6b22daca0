#!/usr/bin/env bash
# Makes .gpu-build/: the built binaries and ctest files of build/ without object files, small
# enough to travel to the GPU machine (see GPU.md: build here, run there). On that machine:
#   mv .gpu-build build && mkdir -p /work && [ -e /work/main ] || ln -s "$PWD" /work/main
# since test binaries refer to /work/main/build by absolute path.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-build
rsync -a --exclude '*.o' --exclude 'CMakeFiles/' --exclude '*.a' build/ .gpu-build/
find .gpu-build -type f -perm -u+x -exec strip --strip-debug {} + 2>/dev/null || true
du -sh .gpu-build
