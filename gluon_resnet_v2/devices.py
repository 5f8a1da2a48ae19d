"""Device contexts for a run: `--gpus 0,1` or `--cpus N` (several CPU contexts are how
multi-device code is exercised on machines without GPUs)."""
import mxnet as mx

from .errors import UserError


def gpu_count():
    """GPUs this MXNet build can use (0 for the CPU wheel, whatever the machine has)."""
    if not mx.runtime.Features().is_enabled('CUDA'):
        return 0
    return mx.context.num_gpus()


def contexts(run):
    """The contexts of a `RunConfig`, checked against what this build and machine have."""
    if not run.gpus:
        return [mx.cpu(i) for i in range(run.cpus)]
    have = gpu_count()
    if have == 0:
        raise UserError('--gpus %s: this MXNet build has no CUDA support (the CPU wheel); '
                        'install mxnet-cu112 as the README\'s GPU section says, or use --cpus N'
                        % ','.join(map(str, run.gpus)))
    missing = [g for g in run.gpus if g >= have]
    if missing:
        raise UserError('--gpus %s: GPU %s not found, this machine has %d (ids 0..%d)'
                        % (','.join(map(str, run.gpus)), missing[0], have, have - 1))
    return [mx.gpu(g) for g in run.gpus]
