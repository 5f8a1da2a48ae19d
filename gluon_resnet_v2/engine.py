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
import hashlib
import json
import os
import sys
import time
from dataclasses import replace

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from . import bf16, checkpoint, he_init, rundir, runlog, schedule
from .data import build_data, input_size
from .devices import contexts
from .errors import RunInterrupted, TrainingDiverged, UserError
from .factory import build_net, check_dtype, check_model, kvstore_setup, norm_layer
from .precision import LossScaler
from .steps import Meter, local_batch, reseed, score, sync_running_stats, train_step
from .workers import Workers


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
        self.group = Workers(self.kv, self.rank, self.workers)
        self.writer = self.rank == 0                 # one worker writes the run directory
        # One process owns a run dir, from now, before any work or any look at what the
        # dir holds: a second command on it is refused at once, and what this one finds
        # there stays as found. Refused before training, it leaves the dir as it was.
        self.owner = rundir.Ownership(self.run_dir) if self.writer else None
        if self.owner:
            self.owner.acquire()
        self.data = None
        with self.closed_on_error():
            if preflight:
                preflight(self)
            # --deterministic: batches made in the main thread, as measured bit-identical
            self.data = build_data(replace(cfg.data, num_workers=0) if cfg.run.deterministic
                                   else cfg.data)
            self.batch = cfg.optim.batch_size
            self.local_batch = local_batch(self.batch, self.workers, len(self.ctxs))
            self.steps = self.data.steps_per_epoch(self.batch)
            self.max_iters = cfg.optim.total_iters(self.steps)
            if cfg.optim.warmup_iters >= self.max_iters:
                raise UserError('--warmup-iters %d is not shorter than the run (%d iterations): '
                                'lower --warmup-iters (0 for none) or lengthen the run'
                                % (cfg.optim.warmup_iters, self.max_iters))

    def input_size(self):
        return input_size(self.cfg.data, self.data)

    def train_batches(self, epoch, first):
        """This worker's rows of the global batches first.. of `epoch` (the workers share
        each batch in rank order; a worker reads and decodes only its own images)."""
        return self.data.train_batches(self.batch, self.cfg.run.seed, epoch, first,
                                       part=(self.rank, self.workers))

    def close(self):
        """Stop the data loader and give up the run dir (the Loop calls it at the end;
        before the Loop claimed it, what taking it created goes)."""
        if self.data is not None:
            self.data.close()
        if self.owner:
            self.owner.abandon()

    @contextlib.contextmanager
    def closed_on_error(self):
        """close() if set-up fails."""
        try:
            yield self
        except BaseException:
            self.close()
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
        """One iteration on this worker's rows (x, y) of the global batch; returns
        [(per-image loss, scores, labels)] per output device, NDArrays not read back."""

    @abc.abstractmethod
    def evaluate(self, split='test'):
        """(mean loss, top-1 error) on the 'test' split or the 'val' split (--val-size)."""

    def sync_statistics(self):
        """Wait for pending work and make the BN running statistics one value over the
        devices and the workers (self.run.group)."""

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

    def __init__(self, run, saved=None, loss_fn=None, network=None):
        """`network(classes)`: an uninitialised Gluon block to train instead of the
        network cfg.model describes (library use; config.yaml still records cfg.model)."""
        cfg = self.cfg = run.cfg
        self.run, self.ctxs = run, run.ctxs
        self.loss_fn = loss_fn or gluon.loss.SoftmaxCrossEntropyLoss()
        self.net = (network(run.data.classes) if network else
                    build_net(cfg.model, cfg.data.dataset, run.data.classes,
                              norm_layer(cfg.run.sync_bn, self.ctxs, cfg.optim.dtype)))
        # float16: dynamic loss scaling, its scale and counts resumed from the checkpoint
        self.scaler = (LossScaler(saved=saved and saved.get('loss_scaler'))
                       if cfg.optim.dtype == 'float16' else None)
        mx.random.seed(cfg.run.seed)
        np.random.seed(cfg.run.seed)
        self.net.initialize(he_init(), ctx=self.ctxs)
        # the weights' (and the input's) type: a bfloat16 run keeps a float32 network and
        # trains it through a graph with bfloat16 casts (bf16.py), built once shapes are known
        self.dtype = 'float16' if cfg.optim.dtype == 'float16' else 'float32'
        if self.dtype != 'float32':
            self.net.cast(self.dtype)
        if saved:     # before any forward pass (see checkpoint.load_params_into)
            checkpoint.load_params_into(self.net, saved['params'], 'checkpoint')
        finish_shapes(self.net, self.ctxs if cfg.run.sync_bn else self.ctxs[:1],
                      (1, 3) + run.input_size(), self.dtype)
        # what step() trains; evaluations, checkpoints and BN statistics use self.net, on
        # the same Parameters (a bfloat16 run is evaluated in float32, as evaluate.py does)
        self.train_net = (bf16.training_block(self.net) if cfg.optim.dtype == 'bfloat16'
                          else self.net)
        if cfg.run.hybridize:
            self.net.hybridize(static_alloc=True, static_shape=True)
            self.train_net.hybridize(static_alloc=True, static_shape=True)
        iteration = saved['iteration'] if saved else 0
        # Only trainable parameters go to the Trainer: at its first step it broadcasts
        # every parameter it holds from device 0, and for BN running statistics that copy
        # races with (and wipes) the first iteration's update of them on every device.
        trainable = [p for p in self.net.collect_params().values() if p.grad_req != 'null']
        # the loss scaler checks the summed gradients before it updates: not on the kvstore
        self.trainer = gluon.Trainer(trainable, cfg.optim.optimizer,
                                     schedule.optimizer_params(cfg.optim, iteration),
                                     kvstore=run.kv,
                                     update_on_kvstore=(False if run.workers > 1 or self.scaler
                                                        else None))
        if saved:
            checkpoint.restore_trainer(self.trainer, saved['trainer'])
        run.group.start(self.trainer)         # several workers: the same weights everywhere
        reseed(cfg.run.seed, iteration)

    def output_ctxs(self):
        return self.ctxs

    def step(self, x, y):
        x = as_dtype(x, self.dtype, self.ctxs[0])
        losses, outs, ys = train_step(self.train_net, self.trainer, self.loss_fn, x, y, self.ctxs,
                                      self.run.batch, self.scaler)
        return list(zip(losses, outs, ys))

    def sync_statistics(self):
        sync_running_stats(self.net, self.run.group)

    def evaluate(self, split='test'):
        return evaluate(self.net, self.run.data, self.ctxs, self.run.batch, split=split)[:2]

    def state(self):
        state = dict(params=checkpoint.params_to_numpy(self.net),      # sync point
                     trainer=checkpoint.trainer_states(self.trainer))
        if self.scaler:
            state['loss_scaler'] = self.scaler.state()
        return state

    def finish(self, run_dir, iteration):
        """float16: the final loss scale and the steps skipped for overflow, in the summary."""
        if not self.scaler:
            return {}
        return {'loss_scale': self.scaler.scale, 'skipped_steps': self.scaler.skipped}


def evaluate(net, data, ctxs, batch_size, topk=5, split='test'):
    """(mean loss, top-1 error, top-k error) of a Gluon `net` over a split of `data`."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    dtype = next(iter(net.collect_params().values())).dtype

    def predict(x, y):
        xs = gluon.utils.split_and_load(as_dtype(x, dtype, ctxs[0]), ctxs, even_split=False)
        ys = gluon.utils.split_and_load(y, ctxs, even_split=False)
        outs = [(net(xi).astype('float32'), yi.astype('float32')) for xi, yi in zip(xs, ys)]
        return [(loss_fn(out, label), out, label) for out, label in outs]
    with data.eval_batches(split, batch_size) as batches:
        return score(batches, predict, ctxs, topk)


def finish_shapes(net, ctxs, shape, dtype):
    """Finish the deferred parameter shapes with a forward pass of zeros on `ctxs`.

    In training mode: an inference-mode forward lets oneDNN reorder the convolution weights
    in place into its own layout, which the dist kvstore cannot push ("Reorder2Default()
    first"); BN's running statistics are written in backward only (MXNet 1.9), so this
    forward leaves them alone. --sync-bn needs every device (each training-mode
    SyncBatchNorm waits for all of them: measured, on the first alone it never returns)."""
    with autograd.train_mode():
        for ctx in ctxs:
            net(mx.nd.zeros(shape, ctx=ctx, dtype=dtype))


def as_dtype(x, dtype, ctx):
    """A numpy batch for a network of `dtype`: split_and_load makes float32 of any numpy
    array, so a float16 batch goes to the first device as an NDArray of that dtype (a
    float32 one stays numpy and goes straight to each device)."""
    return x if dtype == 'float32' else mx.nd.array(x, ctx=ctx, dtype=dtype)


class Loop:
    """The training loop of every backend: iterations run.iteration .. max_iters - 1,
    epoch by epoch from the exact batch where the run stands, with the log, evaluation
    and checkpoint cadence of cfg.run, the divergence checks and the summary.

    The writer owns the run dir while it trains (rundir.py: run.lock) and keeps
    status.json up to date: running, then finished, interrupted, diverged or failed."""

    def __init__(self, run, backend, saved=None, progress=True, echo=print):
        self.run, self.backend, self.cfg, self.echo = run, backend, run.cfg, echo
        self.iteration = saved['iteration'] if saved else 0
        self.meter = Meter(backend.output_ctxs(), saved and meter_of(saved['meter'], run.rank))
        self.best = tuple(saved['best']) if saved else (None, None)
        self.elapsed = saved['elapsed'] if saved else 0.0     # of earlier sessions
        self.last_test = self.last_train = None
        self.progress = progress
        self.log = runlog.JsonlLog(run.run_dir)
        if run.writer:
            run.owner.acquire()
            run.owner.claim()
            if saved:                          # redo what followed the checkpoint
                aside = self.log.truncate_after(self.iteration)
                if aside:
                    echo('note: %d line(s) of %s set aside in %s (damaged, or logged after the '
                         'checkpoint and redone now)' % (aside, self.log.path, runlog.ASIDE))
            runlog.write_config(run.run_dir, self.cfg.to_dict())
            backend.write_files(run.run_dir)
            self._status('running')

    def train(self):
        """Run to max_iters; the progress bar, the data loader and the run dir are given up
        whatever happens. Returns the summary dict."""
        from tqdm import tqdm
        self.bar = tqdm(total=self.run.max_iters, initial=self.iteration, unit='it',
                        dynamic_ncols=True, disable=not (self.progress and self.run.writer),
                        leave=False)
        self.started = self.tick = time.time()
        self.paused = 0.0             # seconds of the interval spent evaluating and saving
        try:
            self._iterate()
            self.bar.close()
            summary = self._summary()
            self._status('finished')
            return summary
        except TrainingDiverged as e:
            self._status('diverged', str(e))
            raise
        except KeyboardInterrupt:
            self._status('interrupted')
            raise RunInterrupted(self._interrupted()) from None
        except BaseException as e:
            self._status('failed', '%s: %s' % (type(e).__name__, e))
            raise
        finally:
            self.bar.close()
            self.run.close()

    def now(self):
        """Seconds this run has spent so far, over all its sessions (the log's `time`)."""
        return self.elapsed + time.time() - self.started

    def _status(self, state, message=None):
        if self.run.writer:
            rundir.write_status(self.run.run_dir, state, self.iteration, self.run.max_iters,
                                message)

    def _iterate(self):
        run, inflight = self.run, None
        while self.iteration < run.max_iters:
            epoch, first = divmod(self.iteration, run.steps)
            batches = run.train_batches(epoch, first)
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
                    self.bar.update(1)
                    self._after_step()
                    if self.iteration >= run.max_iters:
                        break

    def _after_step(self):
        it, cadence = self.iteration, self.cfg.run
        done = it >= self.run.max_iters
        if it % cadence.log_interval == 0 or done:
            self._log_train()
            self.tick, self.paused = time.time(), 0.0
        begin = time.time()                    # evaluation and saving are not training time
        if (cadence.eval_interval and it % cadence.eval_interval == 0) or done:
            self._evaluate()
        if self.backend.can_checkpoint and (
                (cadence.checkpoint_interval and it % cadence.checkpoint_interval == 0) or done):
            self.save('latest')
            reseed(cadence.seed, it)
        self.paused += time.time() - begin

    def _log_train(self):
        # sync point: all work is done; the sums are those of the global batches (every
        # worker's rows), so a loss that diverges on one worker's rows stops them all
        loss_sum, err_sum, images = self.run.group.total('meter', self.meter.totals())
        seconds = time.time() - self.tick - self.paused
        if not images:
            return
        loss = loss_sum / images
        if not np.isfinite(loss):
            raise TrainingDiverged('training loss became %s at iteration %d: %s; %s'
                                   % (loss, self.iteration, self._kept(), self._advice()))
        rate = images / max(seconds, 1e-9)
        lr = schedule.lr_at(self.cfg.optim, self.iteration - 1)    # the interval's last
        self._write(lr=lr, train_loss=loss, train_err=err_sum / images, img_per_sec=rate)
        self.bar.set_postfix(loss='%.3f' % loss, lr='%g' % lr, img_s='%.0f' % rate,
                             refresh=False)
        self.last_train = (loss, lr, rate)
        self.meter.reset()

    def _kept(self):
        """What of the run survives a divergence, said only when it is true."""
        latest = checkpoint.path(self.run.run_dir, 'latest')
        if not (self.backend.can_checkpoint and self.run.writer and os.path.exists(latest)):
            return 'the run stopped (no checkpoint was written before)'
        return ('the run stopped; its last good checkpoint (iteration %d) is kept in %s'
                % (checkpoint.load(latest)['iteration'], self.run.run_dir))

    def _advice(self):
        """The setting most likely to blame, and a way to rerun that works: the recipe is
        frozen on resume, so a changed one needs --restart or a new --run-dir."""
        how = ('rerun with --restart (moves this run aside) or a new --run-dir'
               if self.backend.can_checkpoint else 'rerun with a new --run-dir')
        return '%s, and %s' % (divergence_cause(self.cfg.optim, self.iteration), how)

    def _evaluate(self):
        self.backend.sync_statistics()
        values = {}
        if self.run.data.num_val:
            values['val_loss'], values['val_err'] = self.backend.evaluate('val')
        values['test_loss'], values['test_err'] = self.backend.evaluate('test')
        # the workers' values can differ in the last bit (kernels); their mean is one value
        # on every worker, so all of them make the same choice of the best checkpoint
        values = dict(zip(values, self.run.group.mean_of('evaluation', list(values.values()))))
        self._write(**values)
        selected = values.get('val_err', values['test_err'])   # validation when there is one
        if self.best[0] is None or selected < self.best[0]:
            self.best = (selected, self.iteration)
            if self.backend.can_checkpoint:
                self.save('best')
        self.last_test = (values['test_err'], self.iteration)
        if self.progress and self.run.writer:
            self.bar.write(self._evaluation_line(values))

    def _evaluation_line(self, values):
        """One line per evaluation above the progress bar."""
        parts = ['iteration %d/%d (epoch %.2f)' % (self.iteration, self.run.max_iters,
                                                  self.iteration / self.run.steps)]
        if self.last_train:
            parts.append('train loss %.4f' % self.last_train[0])
        if 'val_err' in values:
            parts.append('val error %.2f %%' % (100 * values['val_err']))
        parts.append('test error %.2f %%' % (100 * values['test_err']))
        parts.append('best %s %.2f %% at %d' % ('val' if 'val_err' in values else 'test',
                                                100 * self.best[0], self.best[1]))
        if self.last_train:
            parts.append('lr %g, %.0f img/s' % self.last_train[1:])
        return ', '.join(parts)

    def _interrupted(self):
        """What Ctrl-C leaves and how to continue."""
        latest = checkpoint.path(self.run.run_dir, 'latest')
        if self.backend.can_checkpoint and os.path.exists(latest):
            return ('interrupted at iteration %d; the checkpoint of iteration %d is kept in %s: '
                    'rerun the same command to resume (%s)'
                    % (self.iteration, checkpoint.load(latest)['iteration'], self.run.run_dir,
                       ' '.join(sys.argv) if sys.argv and sys.argv[0] else 'same options'))
        return 'interrupted at iteration %d; no checkpoint was written' % self.iteration

    def _write(self, **values):
        if self.run.writer:
            self.log.write(iteration=self.iteration, epoch=self.iteration / self.run.steps,
                           time=round(self.now(), 3), **values)

    def save(self, which):
        """A checkpoint of the run: the backend's state and the loop's position."""
        self.backend.sync_statistics()      # every worker: they must stay identical
        meter = self._meter_state()
        state = self.backend.state()        # every worker checks: all of them stop alike
        bad = [n for n, v in state['params'].items() if not np.all(np.isfinite(v))]
        if bad:
            raise TrainingDiverged('parameter %s became NaN/inf at iteration %d: %s; %s'
                                   % (bad[0], self.iteration, self._kept(), self._advice()))
        if not self.run.writer:
            return
        checkpoint.save(checkpoint.path(self.run.run_dir, which), dict(
            state, iteration=self.iteration, meter=meter, best=self.best,
            elapsed=self.now(), config=self.cfg.to_dict(),
            data=data_fingerprint(self.run.data),
            rng={'seed': self.cfg.run.seed, 'reseeded_at': self.iteration}))

    def _meter_state(self):
        """The running sums of the log interval for a checkpoint; of a distributed run,
        every worker's (by rank: the rank decides the rows of the batch a worker reads)."""
        state = self.meter.state()
        if self.run.workers == 1:
            return state
        n = len(state['loss'])
        rows = self.run.group.gather('meter state', state['loss'] + state['err']
                                     + [state['images']])
        return dict(state, workers=[dict(loss=r[:n], err=r[n:2 * n], images=int(r[2 * n]))
                                    for r in rows])

    def _summary(self):
        run = self.run
        last = self.last_test
        if last is None:      # nothing evaluated in this session (a rerun of a finished run)
            tests = [r for r in runlog.read_log(run.run_dir) if r['test_err'] is not None]
            last = (tests[-1]['test_err'], tests[-1]['iteration']) if tests else (None, None)
        rates = [r['img_per_sec'] for r in runlog.read_log(run.run_dir, warn=None)
                 if r['img_per_sec'] is not None] if run.writer else []
        summary = dict(iteration=self.iteration, max_iters=run.max_iters, final_test_err=last[0],
                       final_iteration=last[1], best_err=self.best[0],
                       best_iteration=self.best[1],
                       selected_on='val' if run.data.num_val else 'test',
                       seconds=self.now(), img_per_sec=float(np.median(rates)) if rates else None,
                       checkpoints=self.backend.can_checkpoint,
                       run_dir=run.run_dir, writer=run.writer, rank=run.rank)
        summary.update(self.backend.finish(run.run_dir, self.iteration))
        if run.writer:
            from .plotting import plot_runs
            summary['curves'] = plot_runs({os.path.basename(os.path.normpath(run.run_dir)):
                                           run.run_dir}, os.path.join(run.run_dir, 'curves.png'))
        return summary


def meter_of(saved, rank):
    """A worker's running sums in a checkpoint's meter state."""
    return saved['workers'][rank] if 'workers' in saved else saved


def divergence_cause(optim, iteration):
    """The recipe setting most likely to have made the loss diverge at `iteration`."""
    if optim.momentum >= 0.99:
        return 'the momentum (--momentum %g) is the likely cause: lower it (paper: 0.9)' % (
            optim.momentum)
    if optim.warmup_iters and iteration <= optim.warmup_iters:
        if optim.warmup_mode == 'linear':
            return ('it diverged during the linear warm-up (the rate rising from %g to %g, '
                    '%.3g at iteration %d): lengthen --warmup-iters or lower --lr'
                    % (optim.warmup_lr, optim.lr, schedule.lr_at(optim, iteration - 1), iteration))
        return ('it diverged during the warm-up at --warmup-lr %g: lower --warmup-lr'
                % optim.warmup_lr)
    if not optim.warmup_iters and iteration <= 2000:
        return ('it diverged early at --lr %g without a warm-up: add one (--warmup-iters 400 '
                '--warmup-lr 0.01, the paper\'s for ResNet-110) or lower --lr' % optim.lr)
    return 'the learning rate (--lr %g) is the likely cause: lower it' % optim.lr


def data_fingerprint(data):
    """What identifies the data a checkpoint was trained on, beyond the dataset's name:
    its sizes and per-channel statistics (another --data-dir with other files shows)."""
    return dict(classes=data.classes, num_train=data.num_train, num_val=data.num_val,
                num_test=data.num_test, mean=[round(float(m), 6) for m in data.mean],
                std=[round(float(v), 6) for v in data.std],
                class_names=list(data.class_names) if data.class_names else None)


def check_resumed_data(saved, cfg, data, echo):
    """Resuming on other data files is reported; on other data (sizes or statistics that
    differ from the checkpoint's) refused: the batches would not be the run's."""
    then, now = saved.get('data'), data_fingerprint(data)
    old_dir = saved['config']['data'].get('data_dir')
    if then is not None and then != now:
        differ = ', '.join(k for k in now if then.get(k) != now[k])
        raise checkpoint.CheckpointError(
            'the run was trained on other data than --data-dir %s holds (%s differ): rerun with '
            'its own --data-dir %s, or start afresh with --restart'
            % (cfg.data.data_dir, differ, old_dir))
    if old_dir != cfg.data.data_dir:
        echo('note: resuming with --data-dir %s; the run was trained with --data-dir %s (same '
             'dataset name, sizes and statistics)' % (cfg.data.data_dir, old_dir))


def check_same_start(run, saved):
    """Every worker of a distributed run starts where worker 0 does, with its recipe: they
    all read the checkpoint from the run dir, which must therefore be on a filesystem all
    of them share (each worker's weights, BN statistics and momentum come from it)."""
    start = saved['iteration'] if saved else 0
    digest = int(hashlib.sha256(json.dumps(run.cfg.to_dict(), sort_keys=True).encode())
                 .hexdigest()[:6], 16)                  # < 2**24: exact in float32
    if run.group.disagreeing('start', [start, digest]):
        raise UserError('the workers would not start alike (this worker, rank %d: from %s of '
                        '%s; another: elsewhere, or with other options): give every worker the '
                        'same command, and a --run-dir on a filesystem all of them share'
                        % (run.rank, 'iteration %d' % start if saved else 'scratch',
                           run.run_dir))


def where(ctxs):
    """The devices a run trains on, and on CPUs its OpenMP threads (MXNet's pool, sized
    by OMP_NUM_THREADS when MXNet was imported)."""
    names = ', '.join(map(str, ctxs))
    if all(c.device_type == 'cpu' for c in ctxs):
        threads = os.environ.get('OMP_NUM_THREADS')
        names += ', %s OpenMP thread%s' % (threads, '' if threads == '1' else 's') \
            if threads else ''
    return names


def fit(cfg, progress=True, echo=print, network=None):
    """Train (or resume) the run `cfg` describes with the Gluon backend; returns a summary.
    `network(classes)` replaces cfg.model's network (see GluonBackend).
    --restart moves an earlier run in the run dir aside instead of resuming it."""
    run = Run(cfg)
    with run.closed_on_error():
        restart = cfg.run.restart
        saved = None if restart else checkpoint.resume_state(cfg, run.writer, run.max_iters)
        if saved:
            check_resumed_data(saved, cfg, run.data, echo)
        check_same_start(run, saved)
        from .memory import MirroredBackend     # --memory-saving (it imports this module)
        backend = (MirroredBackend(run, saved, network=network, echo=echo)
                   if cfg.run.memory_saving else GluonBackend(run, saved, network=network))
        if restart and run.writer:
            moved = rundir.move_aside(run.run_dir, run.owner)
            if moved:
                echo('restart: the earlier contents of %s are now in %s' % (run.run_dir, moved))
    echo('%s on %s' % ('resuming %s at iteration %d of %d' % (
        run.run_dir, saved['iteration'], run.max_iters) if saved else 'training %s: %d iterations'
        % (run.run_dir, run.max_iters), where(run.ctxs)))
    summary = Loop(run, backend, saved, progress, echo).train()
    summary['resumed'] = saved is not None
    return summary
