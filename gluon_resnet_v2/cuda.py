"""Preload the CUDA 11 libraries of NVIDIA's pip wheels (requirements-gpu.lock) so that
mxnet-cu112, which links them but does not ship them, loads without LD_LIBRARY_PATH.

The wheels put each library in site-packages/nvidia/<part>/lib/, a folder the dynamic
loader never searches, so `import mxnet` would fail on libmxnet.so's first CUDA
dependency. A library already loaded with RTLD_GLOBAL satisfies a later DT_NEEDED (or a
dlopen) of the same soname, so loading them here, each after the ones it needs, before
libmxnet.so is loaded, is enough. The package's __init__ calls `preload()`, the one place
that runs before any module of the package imports MXNet.

It acts only when the MXNet installed beside the wheels is a CUDA 11 wheel (an
`mxnet_cu11*` dist-info next to `mxnet/`): with the CPU wheel it checks a few paths and
loads nothing, and CUDA 12 wheels that other packages bring are never touched (their
sonames are not in the table). It sets no environment variable.
"""
import os
import sys

# (wheel folder under nvidia/, library file = its soname) in load order: each after the
# libraries it needs, as the wheels' own DT_NEEDED entries say (readelf -d, the wheels of
# requirements-gpu.lock): cublas needs cublasLt; the cuDNN 8 sub-libraries need ops_infer,
# *_train their *_infer; cusolver needs cublas and cublasLt. nvrtc refers to its builtins'
# functions as weak symbols, bound at load only to a builtins library loaded before it with
# RTLD_GLOBAL. Others dlopen a library later by soname, which then finds it loaded:
# libcudnn.so.8 its sub-libraries, cuDNN nvrtc (its RUNPATH names nvidia/nvrtc/lib, while
# the wheel installs nvidia/cuda_nvrtc/lib) and cuBLAS. libmxnet.so needs cudart, cublas,
# cudnn, nccl, cufft, cusolver, curand, nvrtc and nvToolsExt, and the driver's libcuda.so.1,
# which no wheel supplies.
LIBRARIES = (
    ('cuda_runtime', 'libcudart.so.11.0'),
    ('cublas', 'libcublasLt.so.11'),
    ('cublas', 'libcublas.so.11'),
    ('cuda_nvrtc', 'libnvrtc-builtins.so.11.8'),
    ('cuda_nvrtc', 'libnvrtc.so.11.2'),
    ('cudnn', 'libcudnn_ops_infer.so.8'),
    ('cudnn', 'libcudnn_ops_train.so.8'),
    ('cudnn', 'libcudnn_cnn_infer.so.8'),
    ('cudnn', 'libcudnn_cnn_train.so.8'),
    ('cudnn', 'libcudnn_adv_infer.so.8'),
    ('cudnn', 'libcudnn_adv_train.so.8'),
    ('cudnn', 'libcudnn.so.8'),
    ('nccl', 'libnccl.so.2'),
    ('cufft', 'libcufft.so.10'),
    ('curand', 'libcurand.so.10'),
    ('cusolver', 'libcusolver.so.11'),
    ('nvtx', 'libnvToolsExt.so.1'),
)

# What preload() did in this process: the files loaded, in order, and (file, error) for
# those that would not load (MXNet's own import then names what it misses).
loaded, failed = [], []


def mxnet_site(paths):
    """The first folder of `paths` that holds the `mxnet` package, if its dist-info says it
    is a CUDA 11 wheel (mxnet-cu110, mxnet-cu112); else None."""
    for folder in paths:
        if os.path.isdir(os.path.join(folder or '.', 'mxnet')):
            names = os.listdir(folder or '.')
            cuda = any(n.startswith('mxnet_cu11') and n.endswith('.dist-info') for n in names)
            return folder if cuda else None
    return None


def library_files(paths):
    """The files of LIBRARIES present under `paths` (each from the first folder that has
    it), in load order."""
    found = []
    for part, name in LIBRARIES:
        for folder in paths:
            path = os.path.join(folder or '.', 'nvidia', part, 'lib', name)
            if os.path.isfile(path):
                found.append(path)
                break
    return found


def preload(paths=None):
    """Load the wheels' CUDA libraries with RTLD_GLOBAL, in dependency order, when a CUDA
    11 MXNet wheel is installed; returns the files loaded by this call (none for the CPU
    wheel, and none the second time). `paths`: where to look (default sys.path)."""
    paths = sys.path if paths is None else paths
    if loaded or mxnet_site(paths) is None:
        return []
    import ctypes                             # only now: the CPU wheel's import stays free
    for path in library_files(paths):
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            loaded.append(path)
        except OSError as e:                  # not fatal here: `import mxnet` reports it
            failed.append((path, str(e)))
    return list(loaded)
