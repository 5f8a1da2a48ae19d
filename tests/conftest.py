"""Run before any test module imports MXNet.

OMP_NUM_THREADS is fixed here as the command-line tools fix it (gluon_resnet_v2.environ),
but before `import mxnet`: a test module that imports mxnet first would otherwise run its
MXNet on MXNet's default (half the cores) while the subprocesses it starts get the
variable from the tools, and oneDNN's float32 BatchNorm backward rounds differently with
another thread count (the equivalence tool's MKLDNN subprocess then disagrees with the
parent in gradients by up to 7 %, measured with the variable unset; `make test` sets it).
"""
import os

os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))

# With the GPU environment (make gpu), importing the package preloads the CUDA libraries
# MXNet needs (gluon_resnet_v2/cuda.py): before any test module's `import mxnet`.
import gluon_resnet_v2  # noqa: E402,F401
