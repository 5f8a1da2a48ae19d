"""One training iteration and the small pieces around it that the backends, the loop and
the tests share: the multi-device step, the on-device running sums of a log interval,
scoring a test split, the averaging of BatchNorm statistics over devices, and the
re-seeding that makes dropout resumable."""
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


def sync_running_stats(net, workers=None):
    """Average the BatchNorm running statistics over the devices, then over the workers
    of a distributed run (`workers`: a workers.Workers).

    Each device normalises its own share of the batch (as the paper's 2 x 64 setup) and so
    accumulates its own running mean/variance; evaluation and checkpoints need one value.
    Training-mode forward passes use batch statistics, so training is unaffected."""
    # BatchNorm writes its running statistics during backward without the engine ordering
    # later reads after those writes (measured in MXNet 1.9): wait for all pending work.
    mx.nd.waitall()
    stats = [p for p in net.collect_params().values() if p.grad_req == 'null']
    for p in stats:
        ctxs = p.list_ctx()
        if len(ctxs) < 2:
            continue
        arrays = [p.data(c) for c in ctxs]
        mean = mx.nd.add_n(*[a.as_in_context(ctxs[0]) for a in arrays]) / len(arrays)
        for a in arrays:
            mean.copyto(a)
    if workers is not None and workers.count > 1 and stats:
        firsts = workers.mean('running statistics', [p.data(p.list_ctx()[0]) for p in stats])
        for p, value in zip(stats, firsts):
            for a in p.list_data()[1:]:
                value.copyto(a)
        mx.nd.waitall()


def train_step(net, trainer, loss_fn, x, y, ctxs, global_batch, scaler=None):
    """Forward and backward of (x, y) split over `ctxs`, then one optimizer step.

    The losses are per-image sums, so `trainer.step(global_batch)` makes the update the
    mean over the global batch however many devices (and workers) share it. With a
    `scaler` (precision.LossScaler, --dtype float16) the losses are scaled for backward
    and a step whose gradients overflow is skipped. Scores and losses are float32 either
    way: float16 scores are cast before the loss (a float32 run casts nothing)."""
    xs = gluon.utils.split_and_load(x, ctxs)
    ys = gluon.utils.split_and_load(y, ctxs)
    with autograd.record():
        outs = [net(xi).astype('float32', copy=False) for xi in xs]
        losses = [loss_fn(o, yi) for o, yi in zip(outs, ys)]
    if scaler is None:
        autograd.backward(losses)
        trainer.step(global_batch)
    else:
        scaler.backward(losses)
        scaler.step(trainer, global_batch)
    return losses, outs, ys


def local_batch(batch, workers, devices):
    """Images of the global batch one worker processes: an equal share per device."""
    per_device, rest = divmod(batch, workers * devices)
    if rest or not per_device:
        raise UserError('--batch-size %d cannot be split evenly over %d device(s)%s: use a '
                        'multiple of %d' % (batch, devices, ' x %d workers' % workers
                                            if workers > 1 else '', workers * devices))
    return per_device * devices


def score(batches, predict, ctxs, topk=5):
    """(mean loss, top-1 error, top-k error) over `batches` of (x, y).

    predict(x, y) -> [(per-image loss, scores, float labels)], one entry per context of
    `ctxs` it used (either backend's forward pass). Sums stay on the devices until the
    end: one host sync per evaluation."""
    sums = [[mx.nd.zeros(1, ctx=c) for c in ctxs] for _ in range(3)]     # loss, top-1, top-k
    count = 0
    for x, y in batches:
        for i, (loss, out, label) in enumerate(predict(x, y)):
            k = min(topk, out.shape[1])
            hits = (mx.nd.topk(out, axis=1, k=k) == label.reshape((-1, 1))).sum(axis=1)
            for acc, value in zip(sums, (loss.sum(), (out.argmax(axis=1) != label).sum(),
                                         (1 - hits).sum())):
                acc[i] += value
        count += len(y)
    return tuple(float(sum(v.asscalar() for v in acc) / count) for acc in sums)   # sync point
