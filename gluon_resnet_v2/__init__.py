"""gluon-resnet-v2: identity-mapping (pre-activation) ResNets in MXNet Gluon.

He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016.

Importing the package loads no MXNet and changes no environment variable; the networks'
Gluon blocks import MXNet when the first one is built. For library use set
OMP_NUM_THREADS before MXNet is imported (unset, MXNet uses half the cores); the
command-line tools do it themselves (environ.py).

The one thing importing it may load: with the GPU environment (requirements-gpu.lock:
mxnet-cu112 and NVIDIA's CUDA 11 wheels) it preloads those wheels' CUDA libraries, which
MXNet needs but cannot find by itself (cuda.py); with the CPU wheel it loads nothing.
"""
from .cuda import preload as _preload_cuda

_preload_cuda()                 # before any module of the package can import MXNet

from .models import (CIFAR_DEPTHS, PLACEMENTS, SHORTCUTS, build_resnet,  # noqa: E402
                     get_model, list_models)

__all__ = ['CIFAR_DEPTHS', 'PLACEMENTS', 'SHORTCUTS', 'build_resnet', 'get_model', 'list_models',
           'he_init', 'init_model']

__version__ = '0.1.0'


def he_init():
    """He et al. 2015 ("MSRA") initialisation: N(0, sqrt(2 / fan_in)) for conv/FC weights,
    the paper's choice (and the notes' Xavier(gaussian, in, 2), which is the same)."""
    import mxnet as mx
    return mx.init.MSRAPrelu(factor_type='in', slope=0.0)


def init_model(net, ctx=None):
    """Initialise `net` the paper's way on `ctx` (a context or a list); returns `net`."""
    import mxnet as mx
    net.initialize(he_init(), ctx=ctx or mx.cpu())
    return net
