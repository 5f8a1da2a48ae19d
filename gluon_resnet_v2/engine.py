"""The training engine: the paper's recipe on any number of devices, resumable exactly.

    summary = fit(Config(...))

One iteration: the global batch is split across the devices (`split_and_load`), each
device runs forward and backward under `autograd.record()`, the Trainer aggregates the
gradients through its kvstore and applies one NAG/SGD step scaled by the global batch.
Values are read back to the host only at log, evaluation and checkpoint points: every
read is a sync point that stalls MXNet's asynchronous engine.

Exact resume rests on three things: every batch is a pure function of (seed, epoch,
batch) (data/loader.py); MXNet's generator (dropout) is re-seeded from (seed, iteration)
at the start and after every checkpoint; and a checkpoint holds the optimizer state and
the running sums of the current log interval (checkpoint.py).
"""
import os
import time

import mxnet as mx
import numpy as np
from mxnet import gluon

from . import checkpoint, runlog, schedule
from .devices import contexts
from .errors import TrainingDiverged, UserError
from .evaluate import evaluate
from .factory import build_net, check_dtype, check_model, kvstore_setup
from .steps import (Meter, input_size, local_batch, reseed, run_training, sync_running_stats,
                    train_step)

# configuration that must not change when a run is resumed (the rest may, e.g. --max-iters)
FROZEN_ON_RESUME = {'model': None, 'data': ('dataset', 'subset', 'pad', 'crop_size'),
                    'optim': ('optimizer', 'lr', 'momentum', 'wd', 'batch_size', 'warmup_iters',
                              'warmup_lr', 'lr_steps', 'lr_factor', 'dtype'),
                    'run': ('seed',)}


class Run:
    """The state of one training run and the operations of its loop."""

    def __init__(self, cfg, progress=True, echo=print):
        self.cfg, self.echo = cfg, echo
        self.ctxs = contexts(cfg.run)
        check_dtype(cfg.optim.dtype, self.ctxs)
        check_model(cfg.model, cfg.data.dataset)
        self.kv, self.rank, self.workers = kvstore_setup(cfg.run.kvstore, self.ctxs)
        self.writer = self.rank == 0                 # one worker writes the run directory
        self.run_dir = cfg.run.run_dir
        self.progress = progress
        from .data import build_data                 # decoding happens here, after the
        self.data = build_data(cfg.data)             # config and devices were checked
        self.batch = cfg.optim.batch_size
        self.local_batch = local_batch(self.batch, self.workers, len(self.ctxs))
        self.steps = self.data.steps_per_epoch(self.batch)
        self.max_iters = (cfg.optim.epochs * self.steps if cfg.optim.epochs
                          else cfg.optim.max_iters)
        self.net = build_net(cfg.model, cfg.data.dataset, self.data.classes)
        self.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    # ---- set-up: fresh or from the latest checkpoint
    def start(self):
        saved = self._saved_state()
        mx.random.seed(self.cfg.run.seed)
        np.random.seed(self.cfg.run.seed)
        self.net.initialize(mx.init.MSRAPrelu(factor_type='in', slope=0.0), ctx=self.ctxs)
        if self.cfg.optim.dtype != 'float32':
            self.net.cast(self.cfg.optim.dtype)
        if saved:     # before any forward pass (see checkpoint.load_params_into)
            checkpoint.load_params_into(self.net, saved['params'], 'checkpoint')
        self.net(mx.nd.zeros((1, 3) + self.input_size(), ctx=self.ctxs[0],
                             dtype=self.cfg.optim.dtype))     # finish deferred shapes
        if self.cfg.run.hybridize:
            self.net.hybridize(static_alloc=True, static_shape=True)
        self.iteration = saved['iteration'] if saved else 0
        # Only trainable parameters go to the Trainer: at its first step it broadcasts
        # every parameter it holds from device 0, and for BN running statistics that copy
        # races with (and wipes) the first iteration's update of them on every device.
        trainable = [p for p in self.net.collect_params().values() if p.grad_req != 'null']
        self.trainer = gluon.Trainer(trainable, self.cfg.optim.optimizer,
                                     schedule.optimizer_params(self.cfg.optim, self.iteration),
                                     kvstore=self.kv,
                                     update_on_kvstore=False if self.workers > 1 else None)
        if saved:
            checkpoint.restore_trainer(self.trainer, saved['trainer'])
        self.meter = Meter(self.ctxs, saved and saved['meter'])
        self.best = saved['best'] if saved else (None, None)
        self.elapsed = saved['elapsed'] if saved else 0.0
        self.log = runlog.JsonlLog(self.run_dir)
        if self.writer:
            if saved:
                self.log.truncate_after(self.iteration)    # redo what followed the checkpoint
            runlog.write_config(self.run_dir, self.cfg.to_dict())
        reseed(self.cfg.run.seed, self.iteration)
        return saved is not None

    def input_size(self):
        return input_size(self.cfg, self.data)

    def _saved_state(self):
        latest = checkpoint.path(self.run_dir, 'latest')
        has_run = os.path.exists(latest) or os.path.exists(os.path.join(self.run_dir, 'log.jsonl'))
        if not self.cfg.run.resume:
            if has_run and self.writer:
                raise UserError('run dir %s already holds a run: pass --resume to continue it, '
                                'or choose a new --run-dir (nothing was overwritten)' % self.run_dir)
            return None
        if not os.path.exists(latest):
            if os.path.exists(os.path.join(self.run_dir, 'log.jsonl')) and self.writer:
                raise UserError('run dir %s has a log.jsonl but no checkpoint to resume from: '
                                'choose a new --run-dir or delete it' % self.run_dir)
            return None
        state = checkpoint.load(latest)
        check_same_config(state['config'], self.cfg.to_dict(), latest)
        if state['iteration'] > self.max_iters:
            raise UserError('%s is at iteration %d, past --max-iters %d: raise --max-iters to '
                            'train on, or use a new --run-dir' % (latest, state['iteration'],
                                                                 self.max_iters))
        return state

    # ---- the loop
    def step(self, x, y):
        """One iteration on the global batch (x, y: numpy)."""
        lo = self.rank * self.local_batch                  # this worker's rows
        losses, outs, ys = train_step(self.net, self.trainer, self.loss_fn,
                                      x[lo:lo + self.local_batch].astype(self.cfg.optim.dtype,
                                                                         copy=False),
                                      y[lo:lo + self.local_batch], self.ctxs, self.batch)
        for i, (loss, out, yi) in enumerate(zip(losses, outs, ys)):
            self.meter.add(i, loss, out, yi)
        self.meter.images += self.local_batch
        # Let Python run at most one iteration ahead of the devices: the engine is
        # asynchronous, and an unbounded queue would hold every queued batch in memory.
        if self._inflight is not None:
            self._inflight.wait_to_read()
        self._inflight = losses[0]

    def train(self):
        """Run from the current iteration to max_iters; returns the summary dict."""
        return run_training(self)

    def now(self):
        """Seconds this run has spent so far, over all its sessions (the log's `time`)."""
        return self.elapsed + time.time() - self.started

    def after_step(self, bar):
        it, run = self.iteration, self.cfg.run
        done = it >= self.max_iters
        if it % run.log_interval == 0 or done:
            self._log_train(bar)
            self.tick, self.paused = time.time(), 0.0
        begin = time.time()                    # evaluation and saving are not training time
        if (run.eval_interval and it % run.eval_interval == 0) or done:
            self._evaluate()
        if (run.checkpoint_interval and it % run.checkpoint_interval == 0) or done:
            self.save('latest')
            reseed(run.seed, it)
        self.paused += time.time() - begin

    def _log_train(self, bar):
        loss_sum, err_sum, images = self.meter.totals()     # sync point: all work is done
        seconds = time.time() - self.tick - self.paused
        if not images:
            return
        loss = loss_sum / images
        if not np.isfinite(loss):
            raise TrainingDiverged(
                'training loss became %s at iteration %d: the run stopped, its last good '
                'checkpoint is kept in %s; lower --lr or raise --warmup-iters and rerun with a '
                'new --run-dir' % (loss, self.iteration, self.run_dir))
        rate = images * self.workers / max(seconds, 1e-9)
        lr = self.trainer.learning_rate
        self._write(lr=lr, train_loss=loss, train_err=err_sum / images, img_per_sec=rate)
        bar.set_postfix(loss='%.3f' % loss, lr='%g' % lr, img_s='%.0f' % rate, refresh=False)
        self.meter.reset()

    def _evaluate(self):
        sync_running_stats(self.net)
        loss, err, _ = evaluate(self.net, self.data, self.ctxs, self.batch)
        self._write(test_loss=loss, test_err=err)
        if self.best[0] is None or err < self.best[0]:
            self.best = (err, self.iteration)
            self.save('best')
        self.last_test = (err, self.iteration)

    def _write(self, **values):
        if self.writer:
            self.log.write(iteration=self.iteration, epoch=self.iteration / self.steps,
                           time=round(self.now(), 3), **values)

    def save(self, which):
        sync_running_stats(self.net)        # every worker: they must stay identical
        if not self.writer:
            return
        params = checkpoint.params_to_numpy(self.net)       # sync point
        bad = [n for n, v in params.items() if not np.all(np.isfinite(v))]
        if bad:
            raise TrainingDiverged('parameter %s became NaN/inf at iteration %d: the run stopped, '
                                   'its last good checkpoint is kept in %s; lower --lr and rerun '
                                   'with a new --run-dir' % (bad[0], self.iteration, self.run_dir))
        checkpoint.save(checkpoint.path(self.run_dir, which), dict(
            params=params, trainer=checkpoint.trainer_states(self.trainer),
            iteration=self.iteration, meter=self.meter.state(), best=self.best,
            elapsed=self.now(), config=self.cfg.to_dict(),
            rng={'seed': self.cfg.run.seed, 'reseeded_at': self.iteration}))

    def _finish(self):
        if not hasattr(self, 'last_test'):      # rerun of a finished run: from its log
            tests = [r for r in runlog.read_log(self.run_dir) if r['test_err'] is not None]
            self.last_test = (tests[-1]['test_err'], tests[-1]['iteration']) if tests else (None,
                                                                                          None)
        summary = dict(iteration=self.iteration, final_test_err=self.last_test[0],
                       best_test_err=self.best[0], best_iteration=self.best[1],
                       run_dir=self.run_dir, writer=self.writer, rank=self.rank)
        if self.writer:
            from .plotting import plot_runs
            summary['curves'] = plot_runs({os.path.basename(os.path.normpath(self.run_dir)):
                                           self.run_dir}, os.path.join(self.run_dir, 'curves.png'))
        return summary


def check_same_config(saved, current, where):
    """Refuse to resume a checkpoint written with a different model/data/recipe."""
    for section, keys in FROZEN_ON_RESUME.items():
        for key in keys or sorted(current[section]):
            old, new = saved.get(section, {}).get(key), current[section].get(key)
            if isinstance(old, list):
                old = tuple(old)
            if old != new:
                raise checkpoint.CheckpointError(
                    '%s was written with %s.%s = %r, this command asks for %r: rerun with the '
                    "run's own settings (see its config.yaml), or use a new --run-dir"
                    % (where, section, key, old, new))


def fit(cfg, progress=True, echo=print):
    """Train (or resume) the run `cfg` describes; returns a summary dict."""
    run = Run(cfg, progress, echo)
    try:
        resumed = run.start()
    except BaseException:
        run.data.close()
        raise
    if resumed:
        echo('resuming %s at iteration %d of %d' % (run.run_dir, run.iteration, run.max_iters))
    summary = run.train()
    summary['resumed'] = resumed
    return summary
