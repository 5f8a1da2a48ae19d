"""What the benchmark's child processes run (gluon_resnet_v2.bench): each function is
called in a fresh process, with MXNet imported there, and returns a JSON-able dict.

* step: the engine's own training step (engine.GluonBackend.step: the batch split over
  the contexts, the hybridized network, the Trainer with NAG and the paper's
  hyper-parameters; --dtype bfloat16's cast plan) on two fixed synthetic batches, given as
  numpy arrays as the loader gives them; timed as engine.Loop runs it.
* gemm: the machine's GEMM peak, a size^3 FullyConnected (oneDNN, as the network's conv
  and FC layers), float32 and bfloat16.
* macs_per_image: conv/FC multiply-adds of a network for one image.
"""
import math
import time

from .errors import UserError

CLASSES, INPUT = 10, (3, 32, 32)


def step(model, batch, dtype, cpus, steps, warmup, seed):
    """img/s of engine.GluonBackend's step on synthetic batches, and the network's
    conv/FC multiply-adds per image."""
    import mxnet as mx
    backend, batches = build_step(model, batch, dtype, cpus, seed)
    seconds = timed(lambda i: backend.step(*batches[i % 2])[0][0], steps, warmup)
    return dict(img_per_sec=steps * batch / seconds, seconds=seconds,
                macs_per_image=macs_per_image(model), mxnet=mx.__version__)


def build_step(model, batch, dtype, cpus, seed, **overrides):
    """engine.GluonBackend for `model` (what it reads of a Run, without data; get_model's
    `overrides`, e.g. bottleneck_stride='3x3') and two fixed synthetic batches, numpy
    arrays as the loader gives them."""
    import types

    import numpy as np

    from .config import Config, DataConfig, ModelConfig, OptimConfig, RunConfig
    from .devices import contexts
    from .engine import GluonBackend
    from .workers import Workers
    cfg = Config(model=ModelConfig(model=model), data=DataConfig(dataset='cifar10'),
                 optim=OptimConfig(batch_size=batch, dtype=dtype),
                 run=RunConfig(cpus=cpus, seed=seed))
    run = types.SimpleNamespace(cfg=cfg, ctxs=contexts(cfg.run), kv='device', workers=1,
                                data=types.SimpleNamespace(classes=CLASSES),
                                input_size=lambda: INPUT[1:], group=Workers(), batch=batch)
    rng = np.random.RandomState(seed)
    batches = [(rng.standard_normal((batch,) + INPUT).astype('float32'),
                rng.randint(0, CLASSES, batch).astype('float32')) for _ in range(2)]
    from . import get_model
    network = (lambda classes: get_model(model, classes=classes, **overrides)) if overrides \
        else None
    return GluonBackend(run, network=network), batches


def timed(one_step, steps, warmup):
    """Seconds of `steps` calls of one_step(i) after `warmup` untimed ones; Python runs at most
    one step ahead of the engine, as engine.Loop does."""
    import mxnet as mx
    for i in range(warmup):
        one_step(i)
    mx.nd.waitall()                          # sync point: the clock starts on an idle engine
    start, previous = time.perf_counter(), None
    for i in range(steps):
        token = one_step(i)
        if previous is not None:
            previous.wait_to_read()
        previous = token
    mx.nd.waitall()                          # sync point: only finished work is counted
    return time.perf_counter() - start


def macs_per_image(model):
    """Multiply-adds of every Conv2D / Dense block for one image: output elements times
    the weights each one reads (prod of the weight's shape after its first axis), taken
    from the blocks as they run (tests check it against legacy_symbol's graph count)."""
    import mxnet as mx
    from mxnet.gluon import nn

    from . import get_model, init_model
    net = init_model(get_model(model, classes=CLASSES))
    total = []

    def hook(block, inputs, output):
        total.append(output.size * math.prod(block.weight.shape[1:]))
    net.apply(lambda b: b.register_forward_hook(hook) if isinstance(b, (nn.Conv2D, nn.Dense))
              else None)
    net(mx.nd.zeros((1,) + INPUT))
    return sum(total)


def gemm(size, seconds):
    """GFLOP/s of a size^3 FullyConnected, float32 and bfloat16 (None, and why, where this
    machine or build has no bfloat16)."""
    import mxnet as mx

    from .factory import check_dtype
    try:
        check_dtype('bfloat16', [mx.cpu()])           # what a --dtype bfloat16 run checks
        why = None
    except UserError as e:
        why = str(e)
    out = {'float32': _gemm(size, seconds, None), 'bfloat16': None, 'bf16_refusal': why}
    if why is None:
        from mxnet.contrib.amp.amp import bfloat16
        out['bfloat16'] = _gemm(size, seconds, bfloat16)
    return out


def _gemm(size, seconds, cast):
    import mxnet as mx
    x, w = mx.sym.var('x'), mx.sym.var('w')
    if cast is not None:
        x, w = mx.sym.amp_cast(x, dtype=cast), mx.sym.amp_cast(w, dtype=cast)
    y = mx.sym.FullyConnected(x, w, no_bias=True, num_hidden=size)
    exe = y.bind(mx.cpu(), {k: mx.nd.random.normal(shape=(size, size)) for k in 'xw'})
    for _ in range(2):
        exe.forward()[0].wait_to_read()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        exe.forward()[0].wait_to_read()       # sync point per call: each one is timed whole
        calls += 1
    return 2.0 * size ** 3 * calls / (time.perf_counter() - start) / 1e9
