"""The training engine: one run lifecycle for every backend, the paper's recipe on any
number of devices, resumable exactly.

    summary = fit(Config(...))

Three pieces:
* `Run`: what a run is given, checked before anything is written: the config, devices,
  workers (dist kvstores), data, and the plan (global / per-worker batch, iterations).
* a backend: how one iteration, one evaluation and the state to save are computed.
  `GluonBackend` here (the Trainer, autograd); legacy_symbol.fit.ModuleBackend for
  mx.mod.Module. The methods a backend provides are those of `Backend`.
* `Loop`: the one loop, the same for every backend: the clock, the meter of the log
  interval, log.jsonl, the progress bar, the evaluation and checkpoint cadence, the
  divergence checks, and the summary at the end.

One Gluon iteration: the global batch is split across the devices (`split_and_load`), each
device runs forward and backward under `autograd.record()`, the Trainer aggregates the
gradients through its kvstore and applies one NAG/SGD step scaled by the global batch.
Values are read back to the host only at log, evaluation and checkpoint points: every
read is a sync point that stalls MXNet's asynchronous engine.

Exact resume rests on three things: every batch is a pure function of (seed, epoch,
batch) (data/loader.py); MXNet's generator (dropout) is re-seeded from (seed, iteration)
at the start and after every checkpoint; and a checkpoint holds the optimizer state and
the running sums of the current log interval (checkpoint.py).
"""
import abc
import contextlib
import os
import time

import mxnet as mx
import numpy as np
from mxnet import gluon

from . import checkpoint, he_init, runlog, schedule
from .data import build_data, input_size
from .devices import contexts
from .errors import TrainingDiverged
from .factory import build_net, check_dtype, check_model, kvstore_setup
from .steps import Meter, local_batch, reseed, score, sync_running_stats, train_step


class Run:
    """What a training run is given, checked in this order before any file is written:
    devices, dtype and model options, the kvstore (rank, workers), then the data (the
    slow part) and the plan: the global batch, this worker's share, iterations."""

    def __init__(self, cfg, check_network=True, preflight=None):
        """`preflight(run)`: a backend's own checks, once rank and workers are known and
        before the data is read."""
        self.cfg, self.run_dir = cfg, cfg.run.run_dir
        self.ctxs = contexts(cfg.run)
        check_dtype(cfg.optim.dtype, self.ctxs)
        if check_network:
            check_model(cfg.model, cfg.data.dataset)
        self.kv, self.rank, self.workers = kvstore_setup(cfg.run.kvstore, self.ctxs)
        self.writer = self.rank == 0                 # one worker writes the run directory
        if preflight:
            preflight(self)
        self.data = build_data(cfg.data)
        try:
            self.batch = cfg.optim.batch_size
            self.local_batch = local_batch(self.batch, self.workers, len(self.ctxs))
            self.steps = self.data.steps_per_epoch(self.batch)
            self.max_iters = cfg.optim.total_iters(self.steps)
        except BaseException:
            self.data.close()
            raise

    def input_size(self):
        return input_size(self.cfg.data, self.data)

    def rows(self, x, y):
        """This worker's rows of a global batch (workers share it in rank order)."""
        lo = self.rank * self.local_batch
        return x[lo:lo + self.local_batch], y[lo:lo + self.local_batch]

    @contextlib.contextmanager
    def closed_on_error(self):
        """Close the data loader if set-up fails (the Loop closes it after training)."""
        try:
            yield self
        except BaseException:
            self.data.close()
            raise


class Backend(abc.ABC):
    """What the Loop needs from a backend: its step, its evaluation and its state."""
    # whether state() gives a resumable checkpoint; without, the Loop writes none
    can_checkpoint = False

    @abc.abstractmethod
    def output_ctxs(self):
        """Contexts of the per-device outputs step() returns (the meter's sums live there)."""

    @abc.abstractmethod
    def step(self, x, y):
        """One iteration on this worker's rows of the global batch (x, y); returns
        [(per-image loss, scores, labels)] per output device, NDArrays not read back."""

    @abc.abstractmethod
    def evaluate(self):
        """(mean loss, top-1 error) on the test split."""

    def sync_statistics(self):
        """Wait for pending work and make the BN running statistics one value."""

    def state(self):
        """What a checkpoint holds of the backend, {'params': {name: numpy}, ...}; only
        called when can_checkpoint is set."""
        return {}

    def write_files(self, run_dir):
        """Files of the backend's own written into the run directory at the start."""

    def finish(self, run_dir, iteration):
        """Called once at the end (writer or not); returns extra summary entries."""
        return {}


class GluonBackend(Backend):
    """The Gluon network, its Trainer and the loss, on the run's devices."""
    can_checkpoint = True

    def __init__(self, run, saved=None, loss_fn=None):
        cfg = self.cfg = run.cfg
        self.run, self.ctxs = run, run.ctxs
        self.loss_fn = loss_fn or gluon.loss.SoftmaxCrossEntropyLoss()
        self.net = build_net(cfg.model, cfg.data.dataset, run.data.classes)
        mx.random.seed(cfg.run.seed)
        np.random.seed(cfg.run.seed)
        self.net.initialize(he_init(), ctx=self.ctxs)
        if cfg.optim.dtype != 'float32':
            self.net.cast(cfg.optim.dtype)
        if saved:     # before any forward pass (see checkpoint.load_params_into)
            checkpoint.load_params_into(self.net, saved['params'], 'checkpoint')
        self.net(mx.nd.zeros((1, 3) + run.input_size(), ctx=self.ctxs[0],
                             dtype=cfg.optim.dtype))     # finish deferred shapes
        if cfg.run.hybridize:
            self.net.hybridize(static_alloc=True, static_shape=True)
        iteration = saved['iteration'] if saved else 0
        # Only trainable parameters go to the Trainer: at its first step it broadcasts
        # every parameter it holds from device 0, and for BN running statistics that copy
        # races with (and wipes) the first iteration's update of them on every device.
        trainable = [p for p in self.net.collect_params().values() if p.grad_req != 'null']
        self.trainer = gluon.Trainer(trainable, cfg.optim.optimizer,
                                     schedule.optimizer_params(cfg.optim, iteration),
                                     kvstore=run.kv,
                                     update_on_kvstore=False if run.workers > 1 else None)
        if saved:
            checkpoint.restore_trainer(self.trainer, saved['trainer'])
        reseed(cfg.run.seed, iteration)

    def output_ctxs(self):
        return self.ctxs

    def step(self, x, y):
        x, y = self.run.rows(x, y)
        losses, outs, ys = train_step(self.net, self.trainer, self.loss_fn,
                                      x.astype(self.cfg.optim.dtype, copy=False), y, self.ctxs,
                                      self.run.batch)
        return list(zip(losses, outs, ys))

    def sync_statistics(self):
        sync_running_stats(self.net)

    def evaluate(self):
        return evaluate(self.net, self.run.data, self.ctxs, self.run.batch)[:2]

    def state(self):
        return dict(params=checkpoint.params_to_numpy(self.net),      # sync point
                    trainer=checkpoint.trainer_states(self.trainer))


def evaluate(net, data, ctxs, batch_size, topk=5):
    """(mean loss, top-1 error, top-k error) of a Gluon `net` over the test split of `data`."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    dtype = next(iter(net.collect_params().values())).dtype

    def predict(x, y):
        xs = gluon.utils.split_and_load(x.astype(dtype, copy=False), ctxs, even_split=False)
        ys = gluon.utils.split_and_load(y, ctxs, even_split=False)
        outs = [(net(xi).astype('float32'), yi.astype('float32')) for xi, yi in zip(xs, ys)]
        return [(loss_fn(out, label), out, label) for out, label in outs]
    with data.test_batches(batch_size) as batches:
        return score(batches, predict, ctxs, topk)


class Loop:
    """The training loop of every backend: iterations run.iteration .. max_iters - 1,
    epoch by epoch from the exact batch where the run stands, with the log, evaluation
    and checkpoint cadence of cfg.run, the divergence checks and the summary."""

    def __init__(self, run, backend, saved=None, progress=True):
        self.run, self.backend, self.cfg = run, backend, run.cfg
        self.iteration = saved['iteration'] if saved else 0
        self.meter = Meter(backend.output_ctxs(), saved and saved['meter'])
        self.best = tuple(saved['best']) if saved else (None, None)
        self.elapsed = saved['elapsed'] if saved else 0.0     # of earlier sessions
        self.last_test = None
        self.progress = progress
        self.log = runlog.JsonlLog(run.run_dir)
        if run.writer:
            if saved:
                self.log.truncate_after(self.iteration)    # redo what followed the checkpoint
            runlog.write_config(run.run_dir, self.cfg.to_dict())
            backend.write_files(run.run_dir)

    def train(self):
        """Run to max_iters; the progress bar and the data loader are closed whatever
        happens. Returns the summary dict."""
        from tqdm import tqdm
        bar = tqdm(total=self.run.max_iters, initial=self.iteration, unit='it',
                   dynamic_ncols=True, disable=not (self.progress and self.run.writer),
                   leave=False)
        self.started = self.tick = time.time()
        self.paused = 0.0             # seconds of the interval spent evaluating and saving
        try:
            self._iterate(bar)
        finally:
            bar.close()
            self.run.data.close()
        return self._summary()

    def now(self):
        """Seconds this run has spent so far, over all its sessions (the log's `time`)."""
        return self.elapsed + time.time() - self.started

    def _iterate(self, bar):
        run, inflight = self.run, None
        while self.iteration < run.max_iters:
            epoch, first = divmod(self.iteration, run.steps)
            batches = run.data.train_batches(run.batch, self.cfg.run.seed, epoch, first)
            with contextlib.closing(batches):
                for x, y in batches:
                    outputs = self.backend.step(x, y)
                    for i, (loss, out, label) in enumerate(outputs):
                        self.meter.add(i, loss, out, label)
                    self.meter.images += run.local_batch
                    # Let Python run at most one iteration ahead of the devices: the engine
                    # is asynchronous, and an unbounded queue would hold every queued batch.
                    if inflight is not None:
                        inflight.wait_to_read()
                    inflight = outputs[0][0]
                    self.iteration += 1
                    bar.update(1)
                    self._after_step(bar)
                    if self.iteration >= run.max_iters:
                        break

    def _after_step(self, bar):
        it, cadence = self.iteration, self.cfg.run
        done = it >= self.run.max_iters
        if it % cadence.log_interval == 0 or done:
            self._log_train(bar)
            self.tick, self.paused = time.time(), 0.0
        begin = time.time()                    # evaluation and saving are not training time
        if (cadence.eval_interval and it % cadence.eval_interval == 0) or done:
            self._evaluate()
        if self.backend.can_checkpoint and (
                (cadence.checkpoint_interval and it % cadence.checkpoint_interval == 0) or done):
            self.save('latest')
            reseed(cadence.seed, it)
        self.paused += time.time() - begin

    def _log_train(self, bar):
        loss_sum, err_sum, images = self.meter.totals()     # sync point: all work is done
        seconds = time.time() - self.tick - self.paused
        if not images:
            return
        loss = loss_sum / images
        if not np.isfinite(loss):
            raise TrainingDiverged('training loss became %s at iteration %d: %s; lower --lr or '
                                   'raise --warmup-iters%s' % (loss, self.iteration, self._kept(),
                                                               self._rerun()))
        rate = images * self.run.workers / max(seconds, 1e-9)
        lr = schedule.lr_at(self.cfg.optim, self.iteration - 1)    # the interval's last
        self._write(lr=lr, train_loss=loss, train_err=err_sum / images, img_per_sec=rate)
        bar.set_postfix(loss='%.3f' % loss, lr='%g' % lr, img_s='%.0f' % rate, refresh=False)
        self.meter.reset()

    def _kept(self):
        if self.backend.can_checkpoint:
            return 'the run stopped, its last good checkpoint is kept in %s' % self.run.run_dir
        return 'the run stopped (this trainer keeps no checkpoints)'

    def _rerun(self):
        return ' and rerun with a new --run-dir' if self.backend.can_checkpoint else ''

    def _evaluate(self):
        self.backend.sync_statistics()
        loss, err = self.backend.evaluate()
        self._write(test_loss=loss, test_err=err)
        if self.best[0] is None or err < self.best[0]:
            self.best = (err, self.iteration)
            if self.backend.can_checkpoint:
                self.save('best')
        self.last_test = (err, self.iteration)

    def _write(self, **values):
        if self.run.writer:
            self.log.write(iteration=self.iteration, epoch=self.iteration / self.run.steps,
                           time=round(self.now(), 3), **values)

    def save(self, which):
        """A checkpoint of the run: the backend's state and the loop's position."""
        self.backend.sync_statistics()      # every worker: they must stay identical
        if not self.run.writer:
            return
        state = self.backend.state()
        bad = [n for n, v in state['params'].items() if not np.all(np.isfinite(v))]
        if bad:
            raise TrainingDiverged('parameter %s became NaN/inf at iteration %d: %s; lower --lr '
                                   'and rerun with a new --run-dir'
                                   % (bad[0], self.iteration, self._kept()))
        checkpoint.save(checkpoint.path(self.run.run_dir, which), dict(
            state, iteration=self.iteration, meter=self.meter.state(), best=self.best,
            elapsed=self.now(), config=self.cfg.to_dict(),
            rng={'seed': self.cfg.run.seed, 'reseeded_at': self.iteration}))

    def _summary(self):
        run = self.run
        last = self.last_test
        if last is None:      # nothing evaluated in this session (a rerun of a finished run)
            tests = [r for r in runlog.read_log(run.run_dir) if r['test_err'] is not None]
            last = (tests[-1]['test_err'], tests[-1]['iteration']) if tests else (None, None)
        summary = dict(iteration=self.iteration, final_test_err=last[0],
                       best_test_err=self.best[0], best_iteration=self.best[1],
                       run_dir=run.run_dir, writer=run.writer, rank=run.rank)
        summary.update(self.backend.finish(run.run_dir, self.iteration))
        if run.writer:
            from .plotting import plot_runs
            summary['curves'] = plot_runs({os.path.basename(os.path.normpath(run.run_dir)):
                                           run.run_dir}, os.path.join(run.run_dir, 'curves.png'))
        return summary


def fit(cfg, progress=True, echo=print):
    """Train (or resume) the run `cfg` describes with the Gluon backend; returns a summary."""
    run = Run(cfg)
    with run.closed_on_error():
        saved = checkpoint.resume_state(cfg, run.writer, run.max_iters)
        backend = GluonBackend(run, saved)
    if saved:
        echo('resuming %s at iteration %d of %d' % (run.run_dir, saved['iteration'], run.max_iters))
    summary = Loop(run, backend, saved, progress).train()
    summary['resumed'] = saved is not None
    return summary
