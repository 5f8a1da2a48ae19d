"""One training iteration and the small pieces around it that the engine and the tests
share: the multi-device step, the on-device running sums of a log interval, the averaging
of BatchNorm statistics over devices, and the re-seeding that makes dropout resumable."""
import contextlib

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from .errors import UserError


def reseed(seed, iteration):
    """Seed MXNet's generators (dropout) as a function of the position in the run."""
    mx.random.seed(int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0]))


class Meter:
    """Running sums of loss and errors of the current log interval, kept on the devices so
    accumulating costs no host sync; `state()` is the sync point. Sums are saved and
    restored per device, so a resumed run adds the same float32 numbers in the same order."""

    def __init__(self, ctxs, saved=None):
        self.ctxs = ctxs
        self.loss = [mx.nd.zeros(1, ctx=c) for c in ctxs]
        self.err = [mx.nd.zeros(1, ctx=c) for c in ctxs]
        self.images = 0
        if saved:
            for key, sums in (('loss', self.loss), ('err', self.err)):
                values = list(saved[key])
                if len(values) != len(ctxs):       # resumed on another number of devices
                    values = [sum(values)] + [0.0] * (len(ctxs) - 1)
                for v, s in zip(values, sums):
                    s[:] = v
            self.images = saved['images']

    def add(self, i, loss, out, label):
        self.loss[i] += loss.sum()
        self.err[i] += (out.argmax(axis=1) != label.astype(out.dtype)).sum()

    def state(self):
        return {'loss': [float(v.asscalar()) for v in self.loss],
                'err': [float(v.asscalar()) for v in self.err], 'images': self.images}

    def totals(self):
        s = self.state()
        return sum(s['loss']), sum(s['err']), s['images']

    def reset(self):
        for v in self.loss + self.err:
            v[:] = 0
        self.images = 0


def sync_running_stats(net):
    """Average the BatchNorm running statistics over the devices.

    Each device normalises its own share of the batch (as the paper's 2 x 64 setup) and so
    accumulates its own running mean/variance; evaluation and checkpoints need one value.
    Training-mode forward passes use batch statistics, so training is unaffected."""
    # BatchNorm writes its running statistics during backward without the engine ordering
    # later reads after those writes (measured in MXNet 1.9): wait for all pending work.
    mx.nd.waitall()
    for p in net.collect_params().values():
        ctxs = p.list_ctx()
        if p.grad_req != 'null' or len(ctxs) < 2:
            continue
        arrays = [p.data(c) for c in ctxs]
        mean = mx.nd.add_n(*[a.as_in_context(ctxs[0]) for a in arrays]) / len(arrays)
        for a in arrays:
            mean.copyto(a)


def train_step(net, trainer, loss_fn, x, y, ctxs, global_batch):
    """Forward and backward of (x, y) split over `ctxs`, then one optimizer step.

    The losses are per-image sums, so `trainer.step(global_batch)` makes the update the
    mean over the global batch however many devices (and workers) share it."""
    xs = gluon.utils.split_and_load(x, ctxs)
    ys = gluon.utils.split_and_load(y, ctxs)
    with autograd.record():
        outs = [net(xi) for xi in xs]
        losses = [loss_fn(o, yi) for o, yi in zip(outs, ys)]
    autograd.backward(losses)
    trainer.step(global_batch)
    return losses, outs, ys


def local_batch(batch, workers, devices):
    """Images of the global batch one worker processes: an equal share per device."""
    per_device, rest = divmod(batch, workers * devices)
    if rest or not per_device:
        raise UserError('--batch-size %d cannot be split evenly over %d device(s)%s: use a '
                        'multiple of %d' % (batch, devices, ' x %d workers' % workers
                                            if workers > 1 else '', workers * devices))
    return per_device * devices


def input_size(cfg, data):
    """(height, width) of a training image: the crop for ImageNet, the stored size else."""
    if cfg.data.dataset == 'imagenet':
        return (cfg.data.crop_size,) * 2
    return tuple(data.train_x.shape[1:3])


def run_training(run):
    """The whole training phase of `run` (the Gluon engine's Run or the Module trainer's
    ModuleRun): a progress bar from run.iteration, the clock, `loop`, then the bar and the
    data loader closed whatever happens; returns run._finish()."""
    import time

    from tqdm import tqdm
    bar = tqdm(total=run.max_iters, initial=run.iteration, unit='it', dynamic_ncols=True,
               disable=not (run.progress and run.writer), leave=False)
    run.started = run.tick = time.time()
    run.paused = 0.0
    run._inflight = None           # the last step's output, waited on by the next step
    try:
        loop(run, bar)
    finally:
        bar.close()
        run.data.close()
    return run._finish()


def loop(run, bar):
    """Iterations run.iteration .. run.max_iters - 1, epoch by epoch from the exact batch
    where the run stands. `run` provides data, batch, steps, max_iters, cfg, step(x, y) and
    after_step(bar): the Gluon engine and the Module trainer share this loop."""
    while run.iteration < run.max_iters:
        epoch, first = divmod(run.iteration, run.steps)
        batches = run.data.train_batches(run.batch, run.cfg.run.seed, epoch, first)
        with contextlib.closing(batches):
            for x, y in batches:
                run.step(x, y)
                run.iteration += 1
                bar.update(1)
                run.after_step(bar)
                if run.iteration >= run.max_iters:
                    break
