"""Builds the fusetune PyTorch package against the installed PyTorch (torch.utils.cpp_extension).

Two extension modules:
- fusetune._C, the operator library: links the C++ library libfusetune.a from a CMake build of
  this repository (scripts/setup.sh makes build/; FUSETUNE_BUILD_DIR names another). It uses
  TORCH_LIBRARY and no Python C API, so one build of it serves every Python version.
- fusetune._fast, the host fast path (csrc/fast_path.cpp): a small pybind11 module built for the
  running Python that calls into _C without the torch.ops binding. It needs neither the CMake
  build nor CUDA; FUSETUNE_FAST_PATH_ONLY=1 builds just it (e.g. where _C was built elsewhere,
  for another Python). Without it the package works, through torch.ops only.

    pip install --no-build-isolation ./python           # or, in place:
    python3 python/setup.py build_ext --inplace
"""
import os
import re
from pathlib import Path

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

HERE = Path(__file__).resolve().parent
BUILD_DIR = Path(os.environ.get("FUSETUNE_BUILD_DIR", HERE.parent / "build")).resolve()


def cmake_cache(name):
    """A value of the CMake build's cache (paths of the library's own static dependencies)."""
    cache = BUILD_DIR / "CMakeCache.txt"
    if not cache.is_file():
        raise SystemExit(f"fusetune: no CMake build at {BUILD_DIR}; run scripts/setup.sh first "
                         "or set FUSETUNE_BUILD_DIR to a build of this repository")
    found = re.search(rf"^{name}:[A-Z]+=(.*)$", cache.read_text(), re.MULTILINE)
    if not found:
        raise SystemExit(f"fusetune: {cache} has no {name}")
    return found.group(1)


FAST_PATH_ONLY = os.environ.get("FUSETUNE_FAST_PATH_ONLY", "") not in ("", "0")
COMPILE_ARGS = {"cxx": ["-std=c++20", "-O2", "-Wall", "-Wextra"]}

# (Not -Wextra here: the pybind11 headers of PyTorch are noisy under it.)
fast_path = CppExtension(name="fusetune._fast", sources=["csrc/fast_path.cpp"],
                         extra_compile_args={"cxx": ["-std=c++20", "-O2", "-Wall"]})


def operator_library():
    library = BUILD_DIR / "libfusetune.a"
    if not library.is_file():
        raise SystemExit(f"fusetune: {library} is missing; build the C++ library first (scripts/setup.sh)")
    # Headers from the source tree that this library was built from.
    source_dir = Path(cmake_cache("CMAKE_HOME_DIRECTORY"))
    cuda_lib = Path(CUDA_HOME or "/usr/local/cuda") / "lib64"
    return CUDAExtension(
        name="fusetune._C",
        sources=["csrc/fused_linear_op.cpp", "csrc/prepared_weights.cpp"],
        include_dirs=[str(source_dir / "tuner" / "include")],
        extra_objects=[str(library), cmake_cache("SQLITE3_STATIC"), cmake_cache("XXHASH_STATIC")],
        libraries=["nvrtc", "cublas"],
        library_dirs=[str(cuda_lib)],
        # NVRTC and cuBLAS of the CUDA toolkit, as for the fusetune command; the static
        # libraries' own symbols stay inside this library.
        extra_link_args=[f"-Wl,-rpath,{cuda_lib}", "-Wl,--exclude-libs,ALL"],
        extra_compile_args=COMPILE_ARGS,
        py_limited_api=True,
    )


setup(
    name="fusetune",
    version="0.1.0",
    description="Tuned fused linear + sigmoid/scale/residual kernel as a PyTorch operator",
    packages=["fusetune"],
    ext_modules=[fast_path] if FAST_PATH_ONLY else [operator_library(), fast_path],
    cmdclass={"build_ext": BuildExtension},
    python_requires=">=3.9",
)
