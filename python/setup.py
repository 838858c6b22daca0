"""Builds the fusetune PyTorch package against the installed PyTorch (torch.utils.cpp_extension).

The operator library links the C++ library libfusetune.a from a CMake build of this repository
(scripts/setup.sh makes build/; FUSETUNE_BUILD_DIR names another). It uses TORCH_LIBRARY and no
Python C API, so one build serves every Python version (py_limited_api):

    pip install --no-build-isolation ./python           # or, in place:
    python3 python/setup.py build_ext --inplace
"""
import os
import re
from pathlib import Path

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension

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


library = BUILD_DIR / "libfusetune.a"
if not library.is_file():
    raise SystemExit(f"fusetune: {library} is missing; build the C++ library first (scripts/setup.sh)")
# Headers from the source tree that this library was built from.
source_dir = Path(cmake_cache("CMAKE_HOME_DIRECTORY"))
cuda_lib = Path(CUDA_HOME or "/usr/local/cuda") / "lib64"

setup(
    name="fusetune",
    version="0.1.0",
    description="Tuned fused linear + sigmoid/scale/residual kernel as a PyTorch operator",
    packages=["fusetune"],
    ext_modules=[
        CUDAExtension(
            name="fusetune._C",
            sources=["csrc/fused_linear_op.cpp", "csrc/prepared_weights.cpp"],
            include_dirs=[str(source_dir / "tuner" / "include")],
            extra_objects=[str(library), cmake_cache("SQLITE3_STATIC"), cmake_cache("XXHASH_STATIC")],
            libraries=["nvrtc", "cublas"],
            library_dirs=[str(cuda_lib)],
            # NVRTC and cuBLAS of the CUDA toolkit, as for the fusetune command; the static
            # libraries' own symbols stay inside this library.
            extra_link_args=[f"-Wl,-rpath,{cuda_lib}", "-Wl,--exclude-libs,ALL"],
            extra_compile_args={"cxx": ["-std=c++20", "-O2", "-Wall", "-Wextra"]},
            py_limited_api=True,
        )
    ],
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
    python_requires=">=3.9",
)
