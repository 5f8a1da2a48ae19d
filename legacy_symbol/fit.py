"""Train a symbol with `mx.mod.Module`, the notes' way, on the Gluon trainer's data and recipe.

    summary = fit_module(cfg, net='paper')                       # Xavier (He) init
    summary = fit_module(cfg, arg_params=arg, aux_params=aux)   # from given weights
    summary = fit_module(cfg, mirror='segments')      # memory mirroring (gluon_resnet_v2.mirror)

The notes' loop (../../shared/seeds/000_*.txt, "Implementation"): build the symbol,
`Module(symbol, context=[...])`, `bind`, `init_params(Xavier(gaussian, in, 2))`,
`init_optimizer('nag', ...)`, then forward / backward / update per batch. That is the
`ModuleBackend` of the engine's one training loop (gluon_resnet_v2.engine.Loop), so
everything around it is the Gluon trainer's and the two can be compared run against run:
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

import mxnet as mx
import numpy as np
import yaml

from gluon_resnet_v2 import bf16, environ, rundir, schedule
from gluon_resnet_v2 import mirror as mirroring
from gluon_resnet_v2.data import dataset_spec
from gluon_resnet_v2.engine import Backend, Loop, Run
from gluon_resnet_v2.errors import UserError
from gluon_resnet_v2.factory import build_net, model_overrides
from gluon_resnet_v2.steps import score

from .train import NETS

# The notes' initializer: N(0, sqrt(2 / fan_in)) (He et al. 2015), the distribution of the
# Gluon trainer's MSRAPrelu(factor_type='in', slope=0).
NOTES_INIT = dict(rnd_type='gaussian', factor_type='in', magnitude=2)
# Module binds are partitioned by the MKLDNN subgraph backend unless this is NONE; that
# backend computes pre-activation ResNets wrongly in train-mode forwards of gradient-free
# binds (README.md). MXNet reads the variable at every bind; a value the user set stands.
EXACT_BACKEND = {'MXNET_SUBGRAPH_BACKEND': 'NONE'}


def build_symbol(cfg, net, classes):
    """The training symbol (SoftmaxOutput head) of `net` for a dataset of `classes` classes."""
    from . import notes, paper
    if net == 'notes':
        if classes != 10 or dataset_spec(cfg.data.dataset).family != 'cifar':
            raise UserError('--net notes is the notes\' fixed CIFAR-10 network (10 outputs, '
                            '32x32 input); the dataset has %d classes: use --net paper' % classes)
        return notes.notes_network()
    build_net(cfg.model, cfg.data.dataset, classes)      # the Gluon trainer's checks and messages
    kw = model_overrides(cfg.model, cfg.model.classes or classes)
    if cfg.model.model:
        return paper.get_training_symbol(cfg.model.model, **kw)
    return paper.get_training_symbol(cfg.model.depth, dataset_spec(cfg.data.dataset).family,
                                     cfg.model.version, **kw)


def cross_entropy(prob, label):
    """Per-image -log p(label) from SoftmaxOutput's probabilities (mx.metric.CrossEntropy's eps)."""
    return -mx.nd.log(mx.nd.maximum(mx.nd.pick(prob, label, axis=1), 1e-12))


def bind_module(symbol, ctxs, batch, input_shape, policy=None, for_training=True,
                shared_module=None):
    """A Module of a training symbol (SoftmaxOutput head, label `softmax_label`) bound for
    `batch` images (over all devices) of shape `input_shape`, with the MXNet environment a bind
    needs (the exact subgraph backend; mirroring as `policy` says, gluon_resnet_v2.mirror).
    `shared_module`: a bound, initialised Module whose weights (and memory) this one uses.
    Returns (module, mirror plan or None). Every Module set-up of the project is this."""
    shapes = {'data': (batch,) + tuple(input_shape), 'softmax_label': (batch,)}
    with environ.scoped(defaults=EXACT_BACKEND), \
            environ.native_log_without(environ.NONE_BACKEND_LINE):   # planning binds too
        # the executor recomputes in backward the ops mirror.py marks (policy None: none)
        symbol, plan = mirroring.apply(symbol, shapes, policy)
        mod = mx.mod.Module(symbol, data_names=['data'], label_names=['softmax_label'],
                            context=ctxs)
        with mirroring.bind_env(policy):
            mod.bind([mx.io.DataDesc('data', shapes['data'])],
                     [mx.io.DataDesc('softmax_label', shapes['softmax_label'])],
                     for_training=for_training, shared_module=shared_module)
    return mod, plan


def init_module(mod, optim, kvstore=None, arg_params=None, aux_params=None):
    """The notes' Xavier (He) initialisation, or the given weights (every one of them),
    and the optimizer of `optim` (weight decay on every parameter, see the module doc)."""
    mod.init_params(mx.init.Xavier(**NOTES_INIT), arg_params=arg_params,
                    aux_params=aux_params, allow_missing=False)
    mod.init_optimizer(kvstore=kvstore, optimizer=schedule.module_optimizer(optim))


class ModuleBackend(Backend):
    """mx.mod.Module on the run's devices: forward / backward / update per batch."""

    def __init__(self, run, net='paper', mirror=None, arg_params=None, aux_params=None,
                 echo=print):
        """`mirror`: None, or a `gluon_resnet_v2.mirror` policy ('segments', 'env')."""
        cfg = run.cfg
        self.run, self.net_name, self.mirror = run, net, mirror
        self.symbol = build_symbol(cfg, net, run.data.classes)
        self.backend_env = os.environ.get('MXNET_SUBGRAPH_BACKEND',
                                          EXACT_BACKEND['MXNET_SUBGRAPH_BACKEND'])
        mx.random.seed(cfg.run.seed)
        np.random.seed(cfg.run.seed)
        # --dtype bfloat16: the Module trains the symbol with AMP's bfloat16 casts (bf16.py)
        bfloat16 = cfg.optim.dtype == 'bfloat16'
        trained = bf16.cast_symbol(self.symbol, ('data', 'softmax_label')) if bfloat16 \
            else self.symbol
        self.mod, self.mirror_plan = bind_module(trained, run.ctxs, run.local_batch,
                                                 (3,) + run.input_size(), mirror)
        if run.writer and mirror == 'segments':
            plan = self.mirror_plan
            echo('memory mirroring: executor plan %d -> %d MB per device (%d tensors kept, '
                 '%d ops recomputed in backward)' % (plan['unmirrored_mb'], plan['planned_mb'],
                                                     len(plan['kept']), plan['marked']))
        init_module(self.mod, cfg.optim, run.kv, arg_params, aux_params)
        # evaluations run in float32, as the Gluon backend's: a bfloat16 run gets an
        # inference bind of the float32 symbol on the training bind's weights and memory
        self.eval_mod = bind_module(self.symbol, run.ctxs, run.local_batch,
                                    (3,) + run.input_size(), for_training=False,
                                    shared_module=self.mod)[0] if bfloat16 else self.mod

    def output_ctxs(self):
        return [self.run.ctxs[0]]            # get_outputs() merges the devices on the first

    def step(self, x, y):
        """forward / backward / update on this worker's rows of the global batch."""
        label = mx.nd.array(y, dtype='float32')
        self.mod.forward(mx.io.DataBatch([mx.nd.array(x)], [label]), is_train=True)
        self.mod.backward()
        self.mod.update()
        prob = self.mod.get_outputs()[0]
        label = label.as_in_context(prob.context)
        return [(cross_entropy(prob, label), prob, label)]

    def sync_statistics(self):
        """Wait for BN's statistics (written in backward, unordered for later reads) and, on
        several devices or workers, give each the average, as the Gluon engine does."""
        mx.nd.waitall()
        if len(self.run.ctxs) > 1 or self.run.workers > 1:
            arg_params, aux_params = self.mod.get_params()     # averaged over the devices
            names = sorted(aux_params)                         # then over the workers
            self.run.group.mean('running statistics', [aux_params[n] for n in names])
            self.mod.set_params(arg_params, aux_params)        # and copied back to each

    def evaluate(self, split='test'):
        """Inference-mode forwards of the training bind (of its float32 twin in a bfloat16
        run); the last batch padded to its shape."""
        size = self.run.local_batch

        def predict(x, y):
            n = len(y)
            if n < size:
                x = np.concatenate([x, np.zeros((size - n,) + x.shape[1:], x.dtype)])
            self.eval_mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)
            prob = self.eval_mod.get_outputs()[0][:n]
            label = mx.nd.array(y, ctx=prob.context, dtype='float32')
            return [(cross_entropy(prob, label), prob, label)]
        with self.run.data.eval_batches(split, size) as batches:
            return score(batches, predict, self.output_ctxs())[:2]

    def write_files(self, run_dir):
        """module.yaml: what config.yaml (readable by --config) cannot hold."""
        plan = self.mirror_plan or {}
        with open(os.path.join(run_dir, 'module.yaml'), 'w') as f:
            yaml.safe_dump(dict(api='mx.mod.Module', net=self.net_name, mirror=self.mirror,
                                mirror_kept=plan.get('kept'), mirror_marked=plan.get('marked'),
                                mirror_planned_mb=plan.get('planned_mb'),
                                mirror_unmirrored_mb=plan.get('unmirrored_mb'),
                                MXNET_SUBGRAPH_BACKEND=self.backend_env,
                                MXNET_MKLDNN_ENABLED=os.environ.get('MXNET_MKLDNN_ENABLED')),
                           f, sort_keys=False)

    def finish(self, run_dir, iteration):
        """The final weights as a Module checkpoint (arg:/aux: names, BN averaged)."""
        self.sync_statistics()
        if not self.run.writer:
            return {}
        prefix = os.path.join(run_dir, 'module')
        self.mod.save_checkpoint(prefix, iteration)
        self.symbol.save(prefix + '-symbol.json')          # the net, without mirror marks
        return {'params': '%s-%04d.params' % (prefix, iteration)}


def _new_run_dir(run):
    if run.writer and set(os.listdir(run.run_dir)) - {rundir.LOCK}:      # run.lock: ours
        raise UserError('run dir %s is not empty: the Module trainer writes no checkpoints '
                        'and does not resume; choose a new --run-dir (nothing was '
                        'overwritten)' % run.run_dir)


def module_run(cfg, net='paper', mirror=None, arg_params=None, aux_params=None, progress=True,
               echo=print):
    """(Run, ModuleBackend, Loop) of a Module training run, set up and ready to train.
    The run dir must be new or empty: the Module trainer neither resumes nor overwrites."""
    if net not in NETS:
        raise UserError('unknown --net %r: choose one of %s' % (net, ', '.join(NETS)))
    if mirror is not None and mirror not in mirroring.POLICIES:
        raise UserError('unknown mirror policy %r: choose one of %s'
                        % (mirror, ', '.join(mirroring.POLICIES)))
    if cfg.optim.dtype == 'float16':
        raise UserError('--dtype float16: the Module trainer runs float32 or bfloat16 only (no '
                        'loss scaling, which float16 needs); use the Gluon trainer')
    run = Run(cfg, check_network=net == 'paper', preflight=_new_run_dir)
    with run.closed_on_error():
        backend = ModuleBackend(run, net, mirror, arg_params, aux_params, echo)
        return run, backend, Loop(run, backend, progress=progress)


def fit_module(cfg, net='paper', mirror=None, arg_params=None, aux_params=None, progress=True,
               echo=print):
    """Train the run `cfg` describes with mx.mod.Module; returns a summary dict like
    `gluon_resnet_v2.engine.fit`'s (plus 'params', the final Module checkpoint).

    `arg_params` / `aux_params` ({name: NDArray}, e.g. from legacy_symbol.weights.
    gluon_to_symbol) replace the Xavier initialisation; every weight must be given."""
    _, _, loop = module_run(cfg, net, mirror, arg_params, aux_params, progress, echo)
    return loop.train()
