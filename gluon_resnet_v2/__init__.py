"""gluon-resnet-v2: identity-mapping (pre-activation) ResNets in MXNet Gluon.

He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016.
"""
import os

# MXNet sizes its CPU thread pool when it is imported; unset, it uses half the cores
# (measured 0.64x speed on 2 cores). Respect a value the user set.
os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))

import mxnet as mx  # noqa: E402  (must follow the environment set-up above)

from .models import (CIFAR_DEPTHS, PLACEMENTS, SHORTCUTS, build_resnet,  # noqa: E402,F401
                     get_model, list_models)

__version__ = '0.1.0'


def he_init():
    """He et al. 2015 ("MSRA") initialisation: N(0, sqrt(2 / fan_in)) for conv/FC weights,
    the paper's choice (and the notes' Xavier(gaussian, in, 2), which is the same)."""
    return mx.init.MSRAPrelu(factor_type='in', slope=0.0)


def init_model(net, ctx=None):
    """Initialise `net` the paper's way on `ctx` (a context or a list); returns `net`."""
    net.initialize(he_init(), ctx=ctx or mx.cpu())
    return net
