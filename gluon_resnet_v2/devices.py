"""Device contexts for a run: `--gpus 0,1` or `--cpus N` (several CPU contexts are how
multi-device code is exercised on machines without GPUs).

A `--gpus` list is checked before anything runs, in this order: each id once, a CUDA build
of MXNet, ids that exist, and cards this build can run. The checks are one pure function
of the ids and what the machine reported (`check_gpus`), so they are tested without a GPU.
"""
import ctypes
from collections import namedtuple

import mxnet as mx

from .errors import UserError

# A GPU as the driver reports it: its name and compute capability (major, minor).
Card = namedtuple('Card', 'name capability')

# mxnet-cu112 1.9.1's libmxnet.so holds cubins for sm_50, 60, 70, 80 and 86 and no PTX (its
# fatbinary headers say so), so nothing is compiled for a newer architecture at run time. A
# cubin runs on its own major architecture at the same or a higher minor (sm_80's on 8.0,
# 8.6, 8.7, 8.9 Ada) and on no other major: every 5.x to 8.x card runs, Kepler (3.x) and
# Hopper (9.0) or newer do not.
MAJORS = range(5, 9)
SUPPORTED = 'compute capability 5.0 to 8.x (Maxwell, Pascal, Volta, Turing, Ampere, Ada)'

# CUdevice_attribute values of the driver API (cuda.h)
_MAJOR, _MINOR = 75, 76


def gpu_count():
    """GPUs this MXNet build sees; None for a build without CUDA (the CPU wheel), whatever
    the machine has."""
    if not mx.runtime.Features().is_enabled('CUDA'):
        return None
    return mx.context.num_gpus()


def card(device_id):
    """The name and compute capability of GPU `device_id`, from the driver (libcuda.so.1);
    None if the driver cannot say. (mx.util.get_cuda_compute_capability asks for
    'libcuda.so', the development symlink that driver installs often lack.)"""
    try:
        cuda = ctypes.CDLL('libcuda.so.1')
    except OSError:
        return None
    dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    if (cuda.cuInit(0) or cuda.cuDeviceGet(ctypes.byref(dev), device_id)
            or cuda.cuDeviceGetAttribute(ctypes.byref(major), _MAJOR, dev)
            or cuda.cuDeviceGetAttribute(ctypes.byref(minor), _MINOR, dev)):
        return None                           # a CUresult other than CUDA_SUCCESS (0)
    cuda.cuDeviceGetName(name, len(name), dev)    # left empty if it fails: 'unnamed'
    return Card(name.value.decode(errors='replace') or 'unnamed', (major.value, minor.value))


def check_gpus(ids, count, cards):
    """Refuse a `--gpus` list with a UserError naming the GPU and why. `count`: GPUs this
    MXNet build sees (None: a build without CUDA); `cards`: {id: Card or None} for the
    listed ids below `count` (None: the driver did not say; not refused)."""
    ids = list(ids)
    listed = '--gpus ' + ','.join(map(str, ids))
    twice = [g for g in dict.fromkeys(ids) if ids.count(g) > 1]
    if twice:
        raise UserError('%s: GPU %d is listed %d times: list each GPU once, e.g. --gpus %s'
                        % (listed, twice[0], ids.count(twice[0]),
                           ','.join(map(str, dict.fromkeys(ids)))))
    if count is None:
        raise UserError('%s: this MXNet build has no CUDA support (the CPU wheel): run with '
                        "the GPU environment's Python (make gpu builds .venv-gpu; README, GPU), "
                        'or use --cpus N' % listed)
    if count == 0:
        raise UserError('%s: no GPU found: the CUDA driver reports none (nvidia-smi lists the '
                        'GPUs; CUDA_VISIBLE_DEVICES, if set, hides the others): use a machine '
                        'with an NVIDIA GPU, or use --cpus N' % listed)
    missing = [g for g in ids if g >= count]
    if missing:
        raise UserError('%s: GPU %d not found, this machine has %d (ids 0..%d): list ids below '
                        '%d, or use --cpus N' % (listed, missing[0], count, count - 1, count))
    for g in ids:
        c = cards.get(g)
        if c is not None and c.capability[0] not in MAJORS:
            raise UserError('%s: GPU %d (%s) has compute capability %d.%d, which mxnet-cu112 '
                            '1.9.1 cannot run (its kernels are for 5.0 to 8.6 with no PTX, so '
                            'none run on Kepler or on Hopper and newer): list only GPUs of %s '
                            '(nvidia-smi --query-gpu=index,name,compute_cap --format=csv), or '
                            'use --cpus N' % ((listed, g, c.name) + tuple(c.capability)
                                              + (SUPPORTED,)))


def contexts(run):
    """The contexts of a `RunConfig`, checked against what this build and machine have."""
    if not run.gpus:
        return [mx.cpu(i) for i in range(run.cpus)]
    count = gpu_count()
    check_gpus(run.gpus, count, {g: card(g) for g in set(run.gpus) if g < (count or 0)})
    return [mx.gpu(g) for g in run.gpus]
