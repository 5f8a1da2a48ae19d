"""float16 training (--dtype float16): dynamic loss scaling.

Mixed precision as Micikevicius et al. ("Mixed Precision Training", ICLR 2018) describe it:
* weights, activations and gradients in float16, except BatchNorm, whose gamma, beta and
  running statistics stay float32 (Gluon's BatchNorm.cast leaves them so);
* float32 master weights in the optimizer (`multi_precision`, schedule.optimizer_params):
  MXNet's mp_nag_mom_update / mp_sgd_mom_update make the step in float32 and round the
  result to the float16 weights;
* the loss is multiplied by a scale S before backward, so that small gradients are not
  flushed to zero in float16, and the update divides by S again: Trainer.update(batch * S).

The scale is dynamic. A step whose gradients hold an inf or NaN is skipped (no update, the
momentum untouched) and S halved; after `window` clean steps in a row S doubles, up to
2**24. The gradients are checked after the Trainer has summed them over the devices (and
the workers of a dist kvstore), so every device and worker reads the same sums and makes
the same decision. A skipped step still counts as an iteration of the learning-rate
schedule, which schedule.py counts in iterations.

The decision is taken on the host: one sync point per step, as in MXNet's own AMP. Float32
runs do not scale (steps.train_step calls trainer.step as before), so they are unchanged.
"""
import mxnet as mx
from mxnet import autograd

from .errors import TrainingDiverged

MAX_SCALE = 2.0 ** 24
MIN_SCALE = 1.0      # gradients that overflow float16 even unscaled: the run has diverged
CHUNK = 200          # arrays per multi_all_finite call: MXNet 1.9 crashes above 200 (measured)


class LossScaler:
    """The dynamic loss scale of a float16 run; its state() goes into every checkpoint,
    so a resumed run continues with the same scale and the same count of clean steps."""

    def __init__(self, scale=2.0 ** 16, window=2000, saved=None):
        self.scale, self.window = float(scale), window
        self.clean = 0        # clean steps in a row since the last change of the scale
        self.skipped = 0      # steps skipped (gradient overflow) over the whole run
        if saved:
            self.scale, self.clean, self.skipped = (float(saved['scale']), saved['clean'],
                                                    saved['skipped'])

    def state(self):
        return {'scale': self.scale, 'clean': self.clean, 'skipped': self.skipped}

    def backward(self, losses):
        """Backward of the per-image losses, each multiplied by the scale: the head gradient
        is S instead of 1, so every gradient is S times the unscaled one (exactly so in
        float32, S being a power of two)."""
        autograd.backward(losses, [mx.nd.full(loss.shape, self.scale, ctx=loss.context,
                                              dtype=loss.dtype) for loss in losses])

    def step(self, trainer, batch_size):
        """Sum the gradients over devices and workers, then the optimizer step of the mean
        gradient (sum / (batch_size * S)), or none if any gradient is inf or NaN; the scale
        follows. `trainer` needs update_on_kvstore=False. Returns whether it updated."""
        trainer.allreduce_grads()
        finite = all_finite(gradients(trainer))             # sync point
        if finite:
            trainer.update(batch_size * self.scale)
        else:
            count_skipped_update(trainer)
        self.record(finite)
        return finite

    def record(self, finite):
        """Halve the scale after an overflow, double it after `window` clean steps."""
        if finite:
            self.clean += 1
            if self.clean >= self.window:
                self.scale, self.clean = min(self.scale * 2, MAX_SCALE), 0
            return
        if self.scale <= MIN_SCALE:
            raise TrainingDiverged(
                'float16 gradients are inf/NaN even with the loss scale down to %g (%d steps '
                'skipped): the run diverged, or its gradients exceed float16\'s range; rerun '
                'with --dtype float32 (a new --run-dir, or --restart)' % (self.scale,
                                                                        self.skipped + 1))
        self.scale, self.clean = self.scale / 2, 0
        self.skipped += 1


def gradients(trainer):
    """The gradient of every trainable parameter on its first device: after
    allreduce_grads every device holds the same sums."""
    return [p.list_grad()[0] for p in trainer._params if p.grad_req != 'null']


def all_finite(arrays):
    """Whether no element of `arrays` is inf or NaN. One multi_all_finite per dtype (it
    refuses mixed float16/float32 inputs: float16 weights, float32 BN parameters) and per
    CHUNK arrays, all into one flag on the first array's device."""
    flag = mx.nd.ones((1,), ctx=arrays[0].context)
    for dtype in sorted({a.dtype.__name__ for a in arrays}):
        group = [a for a in arrays if a.dtype.__name__ == dtype]
        for i in range(0, len(group), CHUNK):
            chunk = group[i:i + CHUNK]
            mx.nd.multi_all_finite(*chunk, num_arrays=len(chunk), init_output=False, out=flag)
    return bool(flag.asscalar())                  # sync point: the host decides


def count_skipped_update(trainer):
    """Advance the optimizer's update count as a made step would. MXNet derives the
    learning rate from that count (kept per device in MXNet 1.x) and only an update
    advances it; without this the schedule would fall behind the iterations by the
    number of skipped steps, and the log's learning rate would be wrong."""
    optimizer = trainer.optimizer
    indices = [i for i, p in enumerate(trainer._params) if p.grad_req != 'null']
    for ctx in trainer._contexts:
        optimizer._set_current_context(ctx.device_id)
        optimizer._update_count(indices)
