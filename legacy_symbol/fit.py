"""Train a symbol with `mx.mod.Module`, the notes' way, on the Gluon trainer's data and recipe.

    summary = fit_module(cfg, net='paper')                       # Xavier (He) init
    summary = fit_module(cfg, arg_params=arg, aux_params=aux)   # from given weights
    summary = fit_module(cfg, mirror='segments')                 # memory mirroring (mirror.py)

The notes' loop (../../shared/seeds/000_*.txt, "Implementation"): build the symbol,
`Module(symbol, context=[...])`, `bind`, `init_params(Xavier(gaussian, in, 2))`,
`init_optimizer('nag', ...)`, then forward / backward / update per batch. Everything
around the loop is the Gluon trainer's, so the two can be compared run against run:
batches from `gluon_resnet_v2.data` (pure functions of seed, epoch, batch), the schedule
of `gluon_resnet_v2.schedule` inside the optimizer, `log.jsonl` / `config.yaml` /
`curves.png` in the run directory. Two deliberate differences from the notes:

* weight decay on every parameter, as the Gluon Trainer and the paper's Torch code do.
  `init_optimizer('nag', ...)` with a name would exempt every parameter whose name does
  not end in `_weight` or `_gamma` (BN betas, biases; MXNet's `Optimizer.set_wd_mult`
  when it knows the symbol), so the optimizer is created here and passed as an object;
* the test error is accumulated on the device from a forward pass in inference mode
  (the training bind, last batch padded), not `Module.score` (one host sync per batch).

No checkpoints and no resume: the run ends with the final weights as a Module checkpoint
(`module-symbol.json`, `module-NNNN.params`, arg:/aux: names), which
`gluon_resnet_v2.evaluate --params` reads.
"""
import os
import time

import mxnet as mx
import numpy as np

from gluon_resnet_v2 import runlog, schedule
from gluon_resnet_v2.devices import contexts
from gluon_resnet_v2.errors import TrainingDiverged, UserError
from gluon_resnet_v2.factory import build_net, check_model, kvstore_setup, model_overrides
from gluon_resnet_v2.steps import Meter, input_size, local_batch, run_training

from . import mirror
from .mirror import POLICIES as MIRROR_POLICIES

NETS = ('paper', 'notes')
# The notes' initializer: N(0, sqrt(2 / fan_in)) (He et al. 2015), the distribution of the
# Gluon trainer's MSRAPrelu(factor_type='in', slope=0).
NOTES_INIT = dict(rnd_type='gaussian', factor_type='in', magnitude=2)


def build_symbol(cfg, net, classes):
    """The training symbol (SoftmaxOutput head) of `net` for a dataset of `classes` classes."""
    from . import notes, paper
    if net == 'notes':
        if classes != 10 or cfg.data.dataset == 'imagenet':
            raise UserError('--net notes is the notes\' fixed CIFAR-10 network (10 outputs, '
                            '32x32 input); the dataset has %d classes: use --net paper' % classes)
        return notes.notes_network()
    build_net(cfg.model, cfg.data.dataset, classes)      # the Gluon trainer's checks and messages
    family = 'imagenet' if cfg.data.dataset == 'imagenet' else 'cifar'
    kw = model_overrides(cfg.model, cfg.model.classes or classes)
    if cfg.model.model:
        return paper.get_training_symbol(cfg.model.model, **kw)
    return paper.get_training_symbol(cfg.model.depth, family, cfg.model.version, **kw)


def cross_entropy(prob, label):
    """Per-image -log p(label) from SoftmaxOutput's probabilities (mx.metric.CrossEntropy's eps)."""
    return -mx.nd.log(mx.nd.maximum(mx.nd.pick(prob, label, axis=1), 1e-12))


class ModuleRun:
    """One Module training run: set-up, the loop, logs and evaluations."""

    def __init__(self, cfg, net='paper', mirror=None, progress=True, echo=print):
        """`mirror`: None, or a `legacy_symbol.mirror` policy ('segments', 'env')."""
        if net not in NETS:
            raise UserError('unknown --net %r: choose one of %s' % (net, ', '.join(NETS)))
        if mirror is not None and mirror not in MIRROR_POLICIES:
            raise UserError('unknown mirror policy %r: choose one of %s'
                            % (mirror, ', '.join(MIRROR_POLICIES)))
        if cfg.optim.dtype != 'float32':
            raise UserError('--dtype %s: the Module trainer runs float32 only (the symbols '
                            'have no casts); use the Gluon trainer' % cfg.optim.dtype)
        self.cfg, self.net_name, self.mirror, self.progress = cfg, net, mirror, progress
        self.echo = echo
        self.ctxs = contexts(cfg.run)
        if net == 'paper':
            check_model(cfg.model, cfg.data.dataset)     # before any data is read
        self.kv, self.rank, self.workers = kvstore_setup(cfg.run.kvstore, self.ctxs)
        self.run_dir, self.writer = cfg.run.run_dir, self.rank == 0
        if self.writer and os.path.isdir(self.run_dir) and os.listdir(self.run_dir):
            raise UserError('run dir %s is not empty: the Module trainer writes no checkpoints '
                            'and does not resume; choose a new --run-dir (nothing was '
                            'overwritten)' % self.run_dir)
        from gluon_resnet_v2.data import build_data
        self.data = build_data(cfg.data)
        try:
            self._plan()
            self.symbol = build_symbol(cfg, net, self.data.classes)
        except BaseException:
            self.data.close()
            raise

    def _plan(self):
        self.batch = self.cfg.optim.batch_size
        self.local_batch = local_batch(self.batch, self.workers, len(self.ctxs))
        self.steps = self.data.steps_per_epoch(self.batch)
        self.max_iters = (self.cfg.optim.epochs * self.steps if self.cfg.optim.epochs
                          else self.cfg.optim.max_iters)
        self.input_shape = (3,) + input_size(self.cfg, self.data)

    # ---- set-up
    def start(self, arg_params=None, aux_params=None):
        """Bind, initialise (Xavier, or the given weights) and create the optimizer."""
        # Module binds are partitioned by the MKLDNN subgraph backend unless this is NONE;
        # that backend computes pre-activation ResNets wrongly in train-mode forwards of
        # gradient-free binds (README.md). MXNet reads the variable at every bind.
        os.environ.setdefault('MXNET_SUBGRAPH_BACKEND', 'NONE')
        shapes = {'data': (self.local_batch,) + self.input_shape,
                  'softmax_label': (self.local_batch,)}
        # the executor recomputes in backward the ops mirror.py marks (policy None: none)
        symbol, self.mirror_plan = mirror.apply(self.symbol, shapes, self.mirror)
        if self.writer and self.mirror == 'segments':
            plan = self.mirror_plan
            self.echo('memory mirroring: executor plan %d -> %d MB per device (%d tensors '
                      'kept, %d ops recomputed in backward)' % (
                          plan['unmirrored_mb'], plan['planned_mb'], len(plan['kept']),
                          plan['marked']))
        mx.random.seed(self.cfg.run.seed)
        np.random.seed(self.cfg.run.seed)
        self.mod = mx.mod.Module(symbol, data_names=['data'], label_names=['softmax_label'],
                                 context=self.ctxs)
        with mirror.bind_env(self.mirror):
            self.mod.bind([mx.io.DataDesc('data', shapes['data'])],
                          [mx.io.DataDesc('softmax_label', shapes['softmax_label'])],
                          for_training=True)
        self.mod.init_params(mx.init.Xavier(**NOTES_INIT), arg_params=arg_params,
                             aux_params=aux_params, allow_missing=False)
        self.mod.init_optimizer(kvstore=self.kv,
                                optimizer=schedule.module_optimizer(self.cfg.optim))
        self.meter = Meter([self.ctxs[0]])
        self.best, self.last_test, self.iteration = (None, None), (None, None), 0
        self._inflight = None      # the last iteration's output, see step()
        self.log = runlog.JsonlLog(self.run_dir)
        if self.writer:
            self._write_config()

    def _write_config(self):
        import yaml
        runlog.write_config(self.run_dir, self.cfg.to_dict())
        # what config.yaml (readable by --config) cannot hold: which net, how it ran
        with open(os.path.join(self.run_dir, 'module.yaml'), 'w') as f:
            plan = self.mirror_plan or {}
            yaml.safe_dump(dict(api='mx.mod.Module', net=self.net_name, mirror=self.mirror,
                                mirror_kept=plan.get('kept'), mirror_marked=plan.get('marked'),
                                mirror_planned_mb=plan.get('planned_mb'),
                                mirror_unmirrored_mb=plan.get('unmirrored_mb'),
                                MXNET_SUBGRAPH_BACKEND=os.environ.get('MXNET_SUBGRAPH_BACKEND'),
                                MXNET_MKLDNN_ENABLED=os.environ.get('MXNET_MKLDNN_ENABLED')),
                           f, sort_keys=False)

    # ---- the loop
    def step(self, x, y):
        """forward / backward / update on this worker's rows of the global batch."""
        lo = self.rank * self.local_batch
        label = mx.nd.array(y[lo:lo + self.local_batch], dtype='float32')
        self.mod.forward(mx.io.DataBatch([mx.nd.array(x[lo:lo + self.local_batch])], [label]),
                         is_train=True)
        self.mod.backward()
        self.mod.update()
        prob = self.mod.get_outputs()[0]                    # all devices, on the first
        label = label.as_in_context(prob.context)
        self.meter.add(0, cross_entropy(prob, label), prob, label)
        self.meter.images += self.local_batch
        # at most one iteration ahead of the devices, as the Gluon engine (memory bound)
        if self._inflight is not None:
            self._inflight.wait_to_read()
        self._inflight = prob

    def train(self):
        """Iterations 0 .. max_iters - 1; returns the summary dict."""
        return run_training(self)

    def after_step(self, bar):
        it, run = self.iteration, self.cfg.run
        done = it >= self.max_iters
        if it % run.log_interval == 0 or done:
            self._log_train(bar)
        begin = time.time()                      # evaluation is not training time
        if (run.eval_interval and it % run.eval_interval == 0) or done:
            self._evaluate()
        self.paused += time.time() - begin

    def _log_train(self, bar):
        loss_sum, err_sum, images = self.meter.totals()          # sync point
        seconds = time.time() - self.tick - self.paused
        self.tick, self.paused = time.time(), 0.0
        loss = loss_sum / images
        if not np.isfinite(loss):
            raise TrainingDiverged('training loss became %s at iteration %d: the Module run '
                                   'stopped (it keeps no checkpoints); lower --lr or raise '
                                   '--warmup-iters' % (loss, self.iteration))
        rate = images * self.workers / max(seconds, 1e-9)
        lr = schedule.lr_at(self.cfg.optim, self.iteration - 1)   # the interval's last
        self._write(lr=lr, train_loss=loss, train_err=err_sum / images, img_per_sec=rate)
        bar.set_postfix(loss='%.3f' % loss, lr='%g' % lr, img_s='%.0f' % rate, refresh=False)
        self.meter.reset()

    def sync_running_stats(self):
        """Wait for BN's statistics (written in backward, unordered for later reads) and, on
        several devices, give each the average, as the Gluon engine does before evaluating."""
        mx.nd.waitall()
        if len(self.ctxs) > 1:
            arg_params, aux_params = self.mod.get_params()     # averaged over the devices
            self.mod.set_params(arg_params, aux_params)        # and copied back to each

    def _evaluate(self):
        self.sync_running_stats()
        ctx = self.ctxs[0]
        loss_sum, err_sum, count = mx.nd.zeros(1, ctx=ctx), mx.nd.zeros(1, ctx=ctx), 0
        with self.data.test_batches(self.local_batch) as batches:
            for x, y in batches:
                n = len(y)
                if n < self.local_batch:     # pad the last batch to the bound shape
                    x = np.concatenate([x, np.zeros((self.local_batch - n,) + x.shape[1:],
                                                    x.dtype)])
                self.mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)
                prob = self.mod.get_outputs()[0][:n]
                label = mx.nd.array(y, ctx=prob.context, dtype='float32')
                loss_sum += cross_entropy(prob, label).sum()
                err_sum += (prob.argmax(axis=1) != label).sum()
                count += n
        loss, err = loss_sum.asscalar() / count, err_sum.asscalar() / count   # sync point
        self._write(test_loss=float(loss), test_err=float(err))
        if self.best[0] is None or err < self.best[0]:
            self.best = (float(err), self.iteration)
        self.last_test = (float(err), self.iteration)

    def _write(self, **values):
        if self.writer:
            self.log.write(iteration=self.iteration, epoch=self.iteration / self.steps,
                           time=round(time.time() - self.started, 3), **values)

    def _finish(self):
        self.sync_running_stats()
        summary = dict(iteration=self.iteration, final_test_err=self.last_test[0],
                       best_test_err=self.best[0], best_iteration=self.best[1],
                       run_dir=self.run_dir, writer=self.writer, rank=self.rank)
        if self.writer:
            from gluon_resnet_v2.plotting import plot_runs
            prefix = os.path.join(self.run_dir, 'module')
            self.mod.save_checkpoint(prefix, self.iteration)   # arg:/aux: names, averaged
            self.symbol.save(prefix + '-symbol.json')         # the net, without mirror marks
            summary['params'] = '%s-%04d.params' % (prefix, self.iteration)
            summary['curves'] = plot_runs({os.path.basename(os.path.normpath(self.run_dir)):
                                           self.run_dir}, os.path.join(self.run_dir, 'curves.png'))
        return summary


def fit_module(cfg, net='paper', mirror=None, arg_params=None, aux_params=None, progress=True,
               echo=print):
    """Train the run `cfg` describes with mx.mod.Module; returns a summary dict like
    `gluon_resnet_v2.engine.fit`'s (plus 'params', the final Module checkpoint).

    `arg_params` / `aux_params` ({name: NDArray}, e.g. from legacy_symbol.weights.
    gluon_to_symbol) replace the Xavier initialisation; every weight must be given."""
    run = ModuleRun(cfg, net, mirror, progress, echo)
    try:
        run.start(arg_params, aux_params)
    except BaseException:
        run.data.close()
        raise
    return run.train()
